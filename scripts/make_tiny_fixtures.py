#!/usr/bin/env python3
"""make_tiny_fixtures.py -- tiny random GLM-4.1V checkpoints and their transformers reference.

Builds small random checkpoints with the real transformers classes
(Glm4vForConditionalGeneration), saves them with save_pretrained in the real file layout
(config.json, model.safetensors in BF16, tokenizer.json, tokenizer_config.json,
chat_template.jinja, preprocessor/video_preprocessor/generation configs), reloads them in
float32 with eager attention, and records for a text-only, a one-image and a two-image prompt:
input ids, pixel_values, image_grid_thw, M-RoPE position ids, rope_delta, the key vision stages,
every decoder layer, the last prompt token's logits and a greedy continuation with top-2 margins.

The tokenizer is the real GLM-4.1V tokenizer.json cut down to its first N ordinary tokens (a valid
byte-level BPE: merges kept when both parts and the result survive), with the same added tokens
renumbered right after them. Run on a machine with torch + transformers (CPU is enough):

  python3 scripts/make_tiny_fixtures.py --assets ../shared/assets --out tests/fixtures

Output per checkpoint (tests/fixtures/tiny*/): the checkpoint files plus ref_<case>.bin (raw
little-endian arrays) and ref_<case>.idx (one line per array: name dtype offset ndim dims...),
and ref_<case>.json (prompt, text, tokens; for humans and the tokenizer tests).
"""
import argparse
import inspect
import json
import os
import shutil
import sys

try:
    import numpy as np
except ImportError:  # the tokenizer step alone needs no numpy
    np = None

SPECIALS = [
    # (content, special) in the real tokenizer's order (ids 151329..151353)
    ("<|endoftext|>", True), ("[MASK]", True), ("[gMASK]", True), ("[sMASK]", True),
    ("<sop>", True), ("<eop>", True), ("<|system|>", True), ("<|user|>", True),
    ("<|assistant|>", True), ("<|observation|>", True), ("<|begin_of_image|>", True),
    ("<|end_of_image|>", True), ("<|begin_of_video|>", True), ("<|end_of_video|>", True),
    ("<|image|>", True), ("<|video|>", True), ("<|begin_of_audio|>", True),
    ("<|end_of_audio|>", True), ("<|begin_of_transcription|>", True), ("</answer>", True),
    ("<think>", False), ("</think>", False), ("<answer>", False), ("<|begin_of_box|>", False),
    ("<|end_of_box|>", False),
]

# Two shapes. "tiny": the real layout scaled down (text head_dim 128, mrope [8,12,12], a 24x24
# learned position table resampled down). "tiny2": head_dim 32, mrope [2,3,3], rope_theta 1000,
# 3 heads over 1 kv head, a 4x4 position table resampled up, 3 layers.
SHAPES = {
    "tiny": dict(
        n_ordinary=480, vocab=512,
        text=dict(hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, rope_theta=10000.0,
                  partial_rotary_factor=0.5, mrope_section=[8, 12, 12],
                  max_position_embeddings=4096, rms_norm_eps=1e-5),
        vision=dict(depth=2, hidden_size=128, num_heads=2, out_hidden_size=256,
                    intermediate_size=256, image_size=336, patch_size=14,
                    temporal_patch_size=2, spatial_merge_size=2, rms_norm_eps=1e-5),
        longest_edge=2 * 28 * 28 * 20, shortest_edge=28 * 28 * 4, seed=1234),
    "tiny2": dict(
        n_ordinary=480, vocab=520,
        text=dict(hidden_size=96, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=3, num_key_value_heads=1, rope_theta=1000.0,
                  partial_rotary_factor=0.5, mrope_section=[2, 3, 3],
                  max_position_embeddings=2048, rms_norm_eps=1e-5),
        vision=dict(depth=3, hidden_size=64, num_heads=2, out_hidden_size=96,
                    intermediate_size=160, image_size=56, patch_size=14,
                    temporal_patch_size=2, spatial_merge_size=2, rms_norm_eps=1e-5),
        longest_edge=2 * 28 * 28 * 12, shortest_edge=28 * 28 * 4, seed=777),
}

CASES = {
    "text": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Tell me a short story about the sea."}]},
    ],
    "image1": [
        {"role": "user", "content": [{"type": "image", "image": "coco_000000039769.png"},
                                     {"type": "text", "text": "What is in this image?"}]},
    ],
    "image2": [
        {"role": "user", "content": [{"type": "image", "image": "coco_000000039769.png"},
                                     {"type": "image", "image": "llava_extreme_ironing.jpg"},
                                     {"type": "text", "text": "Compare the two pictures."}]},
    ],
}

N_GEN = 32


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------------
# tokenizer: the real one cut down
# ----------------------------------------------------------------------------------------------

def make_tokenizer(real_path, n_ordinary, out_dir):
    t = json.load(open(real_path, encoding="utf-8"))
    vocab = {s: i for s, i in t["model"]["vocab"].items() if i < n_ordinary}
    merges = []
    for m in t["model"]["merges"]:
        a, b = (m if isinstance(m, list) else m.split(" ", 1))
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append([a, b])
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    added = []
    for k, (content, special) in enumerate(SPECIALS):
        added.append({"id": n_ordinary + k, "content": content, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": special})
    t["added_tokens"] = added
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(t, f, ensure_ascii=False)
    ids = {content: n_ordinary + k for k, (content, _) in enumerate(SPECIALS)}
    # the real checkpoint's tokenizer_config.json, as it is
    tc = json.load(open(os.path.join(os.path.dirname(real_path), "tokenizer_config.json")))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)
    log(f"tokenizer: {len(vocab)} ordinary, {len(merges)} merges, {len(added)} added")
    return ids


# ----------------------------------------------------------------------------------------------
# config + random weights
# ----------------------------------------------------------------------------------------------

def make_config(shape, ids):
    import transformers
    from transformers import Glm4vConfig
    try:
        from transformers import Glm4vTextConfig
        text_params = inspect.signature(Glm4vTextConfig.__init__).parameters
    except Exception:  # noqa
        text_params = {}
    tx = dict(shape["text"])
    theta, prf, sect = tx.pop("rope_theta"), tx.pop("partial_rotary_factor"), tx.pop("mrope_section")
    eos = [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"], ids["</answer>"]]
    tx.update(vocab_size=shape["vocab"], attention_bias=True, tie_word_embeddings=False,
              hidden_act="silu", initializer_range=0.04, pad_token_id=ids["<|endoftext|>"],
              eos_token_id=eos, image_token_id=ids["<|image|>"], video_token_id=ids["<|video|>"])
    if "rope_parameters" in text_params:
        tx["rope_parameters"] = {"rope_type": "default", "rope_theta": theta,
                                 "partial_rotary_factor": prf, "mrope_section": sect}
    else:
        tx.update(rope_theta=theta, partial_rotary_factor=prf,
                  rope_scaling={"type": "default", "rope_type": "default", "mrope_section": sect})
    vx = dict(shape["vision"], hidden_act="silu", attention_bias=False, in_channels=3,
              initializer_range=0.04)
    cfg = Glm4vConfig(
        text_config=tx, vision_config=vx,
        image_token_id=ids["<|image|>"], video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"], image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"], video_end_token_id=ids["<|end_of_video|>"],
        tie_word_embeddings=False)
    log("transformers", transformers.__version__)
    return cfg, eos


def perturb(model, seed):
    """Random init gives norms of exactly 1 and zero biases; make every parameter matter."""
    import torch
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                if "bias" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.2)
            elif "position_embedding" in name or "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def write_proc_configs(out_dir, shape, ids, eos):
    mean = [0.48145466, 0.4578275, 0.40821073]
    std = [0.26862954, 0.26130258, 0.27577711]
    common = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "do_rescale": True,
              "rescale_factor": 0.00392156862745098, "do_normalize": True, "image_mean": mean,
              "image_std": std, "resample": 3, "do_convert_rgb": True,
              "processor_class": "Glm4vProcessor"}
    pp = dict(common, image_processor_type="Glm4vImageProcessor",
              size={"shortest_edge": shape["shortest_edge"], "longest_edge": shape["longest_edge"]})
    json.dump(pp, open(os.path.join(out_dir, "preprocessor_config.json"), "w"), indent=2)
    vp = dict(common, video_processor_type="Glm4vVideoProcessor", fps=2, max_duration=300,
              do_sample_frames=True,
              size={"shortest_edge": shape["shortest_edge"], "longest_edge": 28 * 28 * 2 * 64})
    json.dump(vp, open(os.path.join(out_dir, "video_preprocessor_config.json"), "w"), indent=2)
    gc = {"_from_model_config": False, "do_sample": True, "eos_token_id": eos,
          "pad_token_id": ids["<|endoftext|>"], "temperature": 0.8, "top_k": 2, "top_p": 0.6,
          "repetition_penalty": 1.1, "max_new_tokens": 512}
    json.dump(gc, open(os.path.join(out_dir, "generation_config.json"), "w"), indent=2)


# ----------------------------------------------------------------------------------------------
# reference run
# ----------------------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.arrays = []  # (name, np array)

    def add(self, name, a):
        import torch
        if isinstance(a, (tuple, list)):
            a = a[0]
        if isinstance(a, torch.Tensor):
            a = a.detach().to("cpu")
            a = a.float().numpy() if a.is_floating_point() else a.to(torch.int32).numpy()
        a = np.ascontiguousarray(a)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        if a.dtype == np.int64:
            a = a.astype(np.int32)
        self.arrays = [(n, x) for n, x in self.arrays if n != name]
        self.arrays.append((name, a))

    def save(self, path_base):
        off = 0
        lines = []
        with open(path_base + ".bin", "wb") as f:
            for name, a in self.arrays:
                dt = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32"}[a.dtype]
                b = a.astype("<" + a.dtype.str[1:]).tobytes()
                f.write(b)
                lines.append(f"{name} {dt} {off} {a.ndim} " + " ".join(str(d) for d in a.shape))
                off += len(b)
        with open(path_base + ".idx", "w") as f:
            f.write("\n".join(lines) + "\n")
        return off


def load_images(msgs, img_dir):
    from PIL import Image
    imgs = []
    for m in msgs:
        if isinstance(m["content"], list):
            for it in m["content"]:
                if it.get("type") == "image":
                    imgs.append(Image.open(os.path.join(img_dir, it["image"])))
    return imgs


def run_case(model, processor, msgs, img_dir, rec, meta):
    import torch
    imgs = load_images(msgs, img_dir)
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    meta["rendered"] = text
    kw = dict(text=[text], return_tensors="pt")
    if imgs:
        kw["images"] = imgs
    inputs = processor(**kw)
    ids = inputs["input_ids"]
    rec.add("input_ids", ids[0])
    meta["input_ids"] = ids[0].tolist()
    fwd = {"input_ids": ids}
    if imgs:
        rec.add("pixel_values", inputs["pixel_values"])
        rec.add("image_grid_thw", inputs["image_grid_thw"])
        fwd["pixel_values"] = inputs["pixel_values"]
        fwd["image_grid_thw"] = inputs["image_grid_thw"]
        meta["image_grid_thw"] = inputs["image_grid_thw"].tolist()
    for k in inputs.keys():
        if k not in ("input_ids", "pixel_values", "image_grid_thw", "attention_mask") and k not in fwd:
            fwd[k] = inputs[k]

    inner = model.model
    lm = inner.language_model
    vis = inner.visual
    hooks = []

    def out_hook(name):
        def h(mod, args, out):
            rec.add(name, out)
        return h

    hooks.append(vis.patch_embed.register_forward_hook(out_hook("v.patch_embed")))
    hooks.append(vis.post_conv_layernorm.register_forward_hook(out_hook("v.post_conv_norm")))
    hooks.append(vis.embeddings.register_forward_hook(out_hook("v.pos_embed")))
    for i, b in enumerate(vis.blocks):
        hooks.append(b.register_forward_hook(out_hook(f"v.block.{i}")))
    hooks.append(vis.post_layernorm.register_forward_hook(out_hook("v.post_norm")))
    hooks.append(vis.downsample.register_forward_hook(out_hook("v.downsample")))
    hooks.append(vis.merger.register_forward_hook(out_hook("v.merger")))
    for i, l in enumerate(lm.layers):
        hooks.append(l.register_forward_hook(out_hook(f"t.layer.{i}")))
    hooks.append(lm.norm.register_forward_hook(out_hook("t.norm")))
    captured = {}

    def lm_pre(mod, args, kwargs):
        if "position_ids" in kwargs and kwargs["position_ids"] is not None:
            captured["pos"] = kwargs["position_ids"].detach().clone()
        if kwargs.get("inputs_embeds") is not None:
            captured["emb"] = kwargs["inputs_embeds"].detach().clone()
    hooks.append(lm.register_forward_pre_hook(lm_pre, with_kwargs=True))

    with torch.no_grad():
        out = model(**fwd, use_cache=False)
    for h in hooks:
        h.remove()
    S = ids.shape[1]
    if "v.downsample" in dict(rec.arrays):
        d = dict(rec.arrays)["v.downsample"]
        rec.add("v.downsample", d.reshape(d.shape[0], -1))
    if "pos" in captured:
        p = captured["pos"]
        meta["position_ids_raw_shape"] = list(p.shape)
        if p.ndim == 3:
            p = p[:, 0, :]
        if p.shape[0] == 4:
            p = p[1:]
        rec.add("position_ids", p)
    else:
        log("warning: no position ids captured")
    if "emb" in captured:
        rec.add("t.inputs_embeds", captured["emb"][0])
    rd = getattr(inner, "rope_deltas", None)
    if "pos" in captured:
        pp = dict(rec.arrays)["position_ids"]
        meta["rope_delta_from_pos"] = int(pp.max()) + 1 - S
        if rd is None:
            rd = torch.tensor([meta["rope_delta_from_pos"]])
    if rd is not None:
        rec.add("rope_delta", torch.as_tensor(rd).reshape(-1)[:1])
        meta["rope_delta"] = int(torch.as_tensor(rd).reshape(-1)[0])
    for name, a in list(rec.arrays):
        if (name.startswith("t.layer.") or name == "t.norm") and a.ndim == 3:
            rec.add(name, a[0])
    logits = out.logits[0, -1].float()
    rec.add("logits_last", logits)

    # greedy continuation, full recompute each step (no cache: the reference is unambiguous)
    cur = ids
    gen, margins = [], []
    with torch.no_grad():
        for step in range(N_GEN):
            f2 = dict(fwd)
            f2["input_ids"] = cur
            for k in list(f2.keys()):
                if k == "mm_token_type_ids":
                    pad = torch.zeros((1, cur.shape[1] - f2[k].shape[1]), dtype=f2[k].dtype)
                    f2[k] = torch.cat([fwd[k], pad], dim=1)
            lo = model(**f2, use_cache=False).logits[0, -1].float()
            top = torch.topk(lo, 2)
            nxt = int(top.indices[0])
            gen.append(nxt)
            margins.append(float(top.values[0] - top.values[1]))
            cur = torch.cat([cur, torch.tensor([[nxt]], dtype=cur.dtype)], dim=1)
            if step == 0 and abs(float((lo - logits).abs().max())) > 1e-4:
                log("warning: recompute logits differ from the first pass")
    rec.add("greedy_ids", np.array(gen, dtype=np.int32))
    rec.add("greedy_margin", np.array(margins, dtype=np.float32))
    meta["greedy_ids"] = gen
    meta["greedy_margin"] = margins
    meta["greedy_text"] = processor.tokenizer.decode(gen)
    log(f"  S={S} gen={gen[:12]}... min margin {min(margins):.4g}")


def build(name, shape, args):
    import torch
    from transformers import AutoProcessor, Glm4vForConditionalGeneration
    out_dir = os.path.join(args.out, name)
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(shape["seed"])
    ids = make_tokenizer(os.path.join(args.assets, "glm4-tokenizer", "tokenizer.json"),
                         shape["n_ordinary"], out_dir)
    cfg, eos = make_config(shape, ids)
    model = Glm4vForConditionalGeneration(cfg).float()
    perturb(model, shape["seed"])
    model = model.to(torch.bfloat16)
    model.save_pretrained(out_dir, safe_serialization=True)
    shutil.copy(os.path.join(args.assets, "glm41v", "chat_template.jinja"),
                os.path.join(out_dir, "chat_template.jinja"))
    write_proc_configs(out_dir, shape, ids, eos)
    # save_pretrained may have written its own generation_config; ours wins (written after)
    del model

    kw = {"attn_implementation": "eager"}
    try:
        model = Glm4vForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32, **kw)
    except TypeError:
        model = Glm4vForConditionalGeneration.from_pretrained(out_dir, torch_dtype=torch.float32, **kw)
    model.eval()
    log(f"{name}: config {json.dumps(json.load(open(os.path.join(out_dir, 'config.json'))))[:2000]}")
    try:
        processor = AutoProcessor.from_pretrained(out_dir)
    except Exception as e:  # noqa
        log(f"AutoProcessor failed ({e!r}); building Glm4vProcessor by hand")
        import transformers as tf
        tok = tf.PreTrainedTokenizerFast(tokenizer_file=os.path.join(out_dir, "tokenizer.json"),
                                         eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        pp = json.load(open(os.path.join(out_dir, "preprocessor_config.json")))
        ip = tf.Glm4vImageProcessor(**{k: v for k, v in pp.items()
                                       if k not in ("image_processor_type", "processor_class")})
        vp = None
        try:
            vp = tf.Glm4vVideoProcessor()
        except Exception:  # noqa
            pass
        processor = tf.Glm4vProcessor(image_processor=ip, tokenizer=tok, video_processor=vp,
                                      chat_template=open(os.path.join(out_dir, "chat_template.jinja")).read())
    log(f"{name}: processor {type(processor).__name__} image {type(processor.image_processor).__name__}")
    summary = {"transformers": __import__("transformers").__version__, "torch": torch.__version__,
               "image_processor": type(processor.image_processor).__name__, "cases": {}}
    img_dir = os.path.join(args.assets, "images")
    for case, msgs in CASES.items():
        rec, meta = Recorder(), {"messages": msgs}
        try:
            run_case(model, processor, msgs, img_dir, rec, meta)
        except Exception as e:  # keep going: record what we have
            import traceback
            traceback.print_exc()
            meta["error"] = repr(e)
        nbytes = rec.save(os.path.join(out_dir, f"ref_{case}"))
        json.dump(meta, open(os.path.join(out_dir, f"ref_{case}.json"), "w"), indent=1,
                  ensure_ascii=False)
        summary["cases"][case] = {"bytes": nbytes, "error": meta.get("error")}
        log(f"{name}/{case}: {nbytes} bytes, arrays {[n for n, _ in rec.arrays]}")
    json.dump(summary, open(os.path.join(out_dir, "ref_summary.json"), "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", default="../shared/assets")
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name, shape in SHAPES.items():
        if args.only and name != args.only:
            continue
        build(name, shape, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""train.py -- trains the glmv demo model: a tiny Glm4vForConditionalGeneration, in the HF file layout.

One run on one GPU (H200: about 5 minutes): trains a byte-level BPE tokenizer with the `tokenizers`
library in the structure of the real GLM-4 tokenizer.json (Split with the GLM regex + ByteLevel, the same
added tokens in the same order after the ordinary vocabulary), writes the processor configs (2025 layout)
and the real chat template, builds the model from a small config with transformers' own Glm4v classes,
makes a dry run of every later stage (a few steps, save, reload, eval, fixtures), then trains on samples
generated on the fly by gen_data.py in DataLoader workers and fed through the exact HF Glm4vProcessor
loaded from the output folder, saves BF16 safetensors and calls eval_hf.py. --init DIR continues from a
checkpoint (keeping its tokenizer and config). The workers also compute the M-RoPE position ids, which
are used only when the dry run shows they give HF's logits exactly. Normally started by run_gpu.sh.
usage: python3 scripts/demo/train.py --out models/demo --eval-set tests/fixtures/demo_eval --seconds 300
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_data as G  # noqa: E402
import fastdata as FD  # noqa: E402

# (content, special) in the real tokenizer's order; ids follow the ordinary vocabulary.
ADDED = [("<|endoftext|>", True), ("[MASK]", True), ("[gMASK]", True), ("[sMASK]", True), ("<sop>", True),
         ("<eop>", True), ("<|system|>", True), ("<|user|>", True), ("<|assistant|>", True),
         ("<|observation|>", True), ("<|begin_of_image|>", True), ("<|end_of_image|>", True),
         ("<|begin_of_video|>", True), ("<|end_of_video|>", True), ("<|image|>", True), ("<|video|>", True),
         ("</answer>", True), ("<think>", False), ("</think>", False), ("<answer>", False),
         ("<|begin_of_box|>", False), ("<|end_of_box|>", False)]
GLM_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
MAX_MERGED_TOKENS = 144                     # per image: longest_edge = 28*28*2*144 (336x336 unscaled)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def digits_split(text):
    import re
    return re.sub(r"(\d)(?=\d)", r"\1 ", text)


def build_tokenizer(extra_files, vocab_target):
    """Train the BPE and return the tokenizer.json dict laid out like the real GLM-4 one."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    corpus = G.tokenizer_corpus(6000)
    for f in extra_files:
        with open(f, encoding="utf-8") as fh:
            corpus += [digits_split(line) for line in fh.read().split("\n") if line.strip()]
    trainer = trainers.BpeTrainer(vocab_size=vocab_target, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(corpus, trainer)
    mine = json.loads(tok.to_str())
    vocab = mine["model"]["vocab"]
    merges = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in mine["model"]["merges"]]
    n = len(vocab)
    assert sorted(vocab.values()) == list(range(n)), "vocabulary ids are not dense"
    added = [{"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": sp} for i, (c, sp) in enumerate(ADDED)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": GLM_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": merges},
    }


def token_ids(tj):
    return {a["content"]: a["id"] for a in tj["added_tokens"]}


def write_model_files(out, tj, assets, max_image_tokens=MAX_MERGED_TOKENS):
    """Everything but the weights: tokenizer, template, processor configs. Returns the ids."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    ids = token_ids(tj)
    added_dec = {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word",
                                                  "special")} for a in tj["added_tokens"]}
    tc = {"added_tokens_decoder": added_dec, "clean_up_tokenization_spaces": False,
          "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "model_max_length": 65536,
          "padding_side": "left", "tokenizer_class": "PreTrainedTokenizerFast", "processor_class": "Glm4vProcessor"}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)
    shutil.copyfile(os.path.join(assets, "chat_template.jinja"), os.path.join(out, "chat_template.jinja"))
    common = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
              "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "merge_size": 2, "patch_size": 14,
              "resample": 3, "rescale_factor": 1 / 255, "temporal_patch_size": 2}
    pp = dict(common, size={"shortest_edge": 12544, "longest_edge": 28 * 28 * 2 * max_image_tokens},
              image_processor_type="Glm4vImageProcessor", processor_class="Glm4vProcessor")
    vp = dict(common, size={"shortest_edge": 12544, "longest_edge": 28 * 28 * 2 * 1000}, fps=2.0,
              do_sample_frames=True, video_processor_type="Glm4vVideoProcessor", processor_class="Glm4vProcessor")
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pp, f, indent=2)
    with open(os.path.join(out, "video_preprocessor_config.json"), "w") as f:
        json.dump(vp, f, indent=2)
    return ids


def eos_ids(ids):
    return [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"], ids["</answer>"]]


def make_config(n_rows, ids, sz):
    """Glm4vConfig of the demo model; sz: the size arguments (text_hidden, text_layers, text_mlp, vision_hidden,
    vision_depth, vision_heads, merger). Head dim 64 in the text model, two KV heads, half the head dim
    rotated (mrope_section [4, 6, 6] as the real model's [8, 12, 12] halved)."""
    from transformers import Glm4vConfig
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
            "mrope_section": [4, 6, 6]}
    text = dict(vocab_size=n_rows, hidden_size=sz.text_hidden, intermediate_size=sz.text_mlp,
                num_hidden_layers=sz.text_layers, num_attention_heads=sz.text_hidden // 64, num_key_value_heads=2,
                hidden_act="silu", max_position_embeddings=4096,
                rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=True, attention_dropout=0.0,
                rope_parameters=rope, pad_token_id=ids["<|endoftext|>"], eos_token_id=eos_ids(ids),
                image_token_id=ids["<|image|>"], video_token_id=ids["<|video|>"])
    vision = dict(depth=sz.vision_depth, hidden_size=sz.vision_hidden, num_heads=sz.vision_heads,
                  intermediate_size=sz.merger, out_hidden_size=sz.text_hidden,
                  patch_size=14, temporal_patch_size=2, spatial_merge_size=2, image_size=336, in_channels=3,
                  rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False)
    return Glm4vConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image|>"],
                       video_token_id=ids["<|video|>"], image_start_token_id=ids["<|begin_of_image|>"],
                       image_end_token_id=ids["<|end_of_image|>"], video_start_token_id=ids["<|begin_of_video|>"],
                       video_end_token_id=ids["<|end_of_video|>"], tie_word_embeddings=False,
                       pad_token_id=ids["<|endoftext|>"], eos_token_id=eos_ids(ids))


def load_processor(model_dir):
    from transformers import AutoProcessor
    proc = AutoProcessor.from_pretrained(model_dir)
    if not getattr(proc, "chat_template", None):
        with open(os.path.join(model_dir, "chat_template.jinja")) as f:
            proc.chat_template = f.read()
    return proc


def render_prompt(proc, question):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def rope_positions(ids, grid_thw, image_token_id, merge=2):
    """3-D M-RoPE positions [3, L] of one sequence holding one image (GLM4V.md 4.2, HF get_rope_index):
    text runs count on all axes; the image run gets (next, next+row, next+col), then next += max(H, W)."""
    import torch
    L = ids.shape[0]
    pos = torch.arange(L).unsqueeze(0).repeat(3, 1)
    idx = (ids == image_token_id).nonzero().flatten()
    if idx.numel() == 0:
        return pos
    s, e = int(idx[0]), int(idx[-1]) + 1
    H, W = int(grid_thw[1]) // merge, int(grid_thw[2]) // merge
    assert e - s == H * W == idx.numel(), "image tokens must form one run of H*W"
    pos[0, s:e] = s
    pos[1, s:e] = s + torch.arange(H).repeat_interleave(W)
    pos[2, s:e] = s + torch.arange(W).repeat(H)
    pos[:, e:] = s + max(H, W) + torch.arange(L - e).unsqueeze(0)
    return pos


def encode(proc, image, question, target=None):
    """Processor inputs for one sample as plain tensors; with target: its ids appended and labels."""
    enc = proc(text=[render_prompt(proc, question)], images=[image], return_tensors="pt")
    L = enc["input_ids"].shape[1]
    item = {"_tok": {}, "_other": {}, "prompt_len": L}
    for k, v in enc.items():
        if v.ndim == 2 and v.shape[0] == 1 and v.shape[1] == L:
            item["_tok"][k] = v[0]
        else:
            item["_other"][k] = v
    if target is not None:
        import torch
        tid = proc.tokenizer(target, add_special_tokens=False)["input_ids"]
        t = torch.tensor(tid, dtype=item["_tok"]["input_ids"].dtype)
        for k in list(item["_tok"]):
            fill = t if k == "input_ids" else torch.full_like(t, 1 if k == "attention_mask" else 0)
            item["_tok"][k] = torch.cat([item["_tok"][k], fill])
        item["labels"] = torch.cat([torch.full((L,), -100, dtype=torch.long), t.long()])
    return item


def collate(items, pad_id):
    """Right-padded batch. Token-aligned keys are padded (input_ids with pad_id, the rest with 0)."""
    import torch
    T = max(len(it["_tok"]["input_ids"]) for it in items)
    out = {}
    for k in items[0]["_tok"]:
        rows = []
        for it in items:
            v = it["_tok"][k]
            rows.append(torch.cat([v, torch.full((T - len(v),), pad_id if k == "input_ids" else 0, dtype=v.dtype)]))
        out[k] = torch.stack(rows)
    if "labels" in items[0]:
        out["labels"] = torch.stack([torch.cat([it["labels"], torch.full((T - len(it["labels"]),), -100,
                                                                         dtype=torch.long)]) for it in items])
    for k in items[0]["_other"]:
        out[k] = torch.cat([it["_other"][k] for it in items])
    return out


class Stream:
    """Endless training batches: gen_data samples encoded by fastdata in DataLoader workers."""

    def __init__(self, enc, batch, seed0, pad_id, preset, weights=None):
        self.enc, self.batch, self.seed0, self.pad_id, self.preset = enc, batch, seed0, pad_id, preset
        self.weights = weights  # {question type: weight}; None = uniform

    def qtype(self, seed):
        if not self.weights:
            return None
        import numpy as np
        names = list(self.weights)
        p = np.array([self.weights[n] for n in names], dtype=np.float64)
        return names[np.random.default_rng(seed ^ 0x5EED).choice(len(names), p=p / p.sum())]

    def dataset(self):
        import torch

        outer = self

        class DS(torch.utils.data.IterableDataset):
            def __iter__(self):
                torch.set_num_threads(1)
                wi = torch.utils.data.get_worker_info()
                wid, nw = (wi.id, wi.num_workers) if wi else (0, 1)
                k = 0
                while True:
                    items = []
                    for _ in range(outer.batch):
                        seed = outer.seed0 + k * nw + wid
                        s = G.make_sample(seed, outer.qtype(seed), outer.preset)
                        k += 1
                        items.append(outer.enc.sample(s["image"], s["question"], G.target_text(s) + "<|user|>"))
                    yield FD.collate(items, outer.pad_id)
        return DS()


# ---- the vision tower without its per-image Python loops (training speed; checked against HF's own code)
_ROT_CACHE = {}
_PAD_CACHE = {}


def _vision_attention(self, hidden_states, cu_seqlens, rotary_pos_emb=None, position_embeddings=None, **kwargs):
    """Glm4vVisionAttention.forward with every image of the batch in one padded SDPA call (HF's non-flash
    path makes one call per image); attention stays within each image, as in HF."""
    import torch
    import torch.nn.functional as F
    from transformers.models.glm4v import modeling_glm4v as M
    n = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    if position_embeddings is None:
        emb = torch.cat((rotary_pos_emb, rotary_pos_emb), dim=-1)
        position_embeddings = (emb.cos(), emb.sin())
    q, k = M.apply_rotary_pos_emb_vision(q, k, *position_embeddings)
    dev = q.device
    cl = tuple(cu_seqlens.tolist())
    pad = _PAD_CACHE.get("last")
    if pad is None or pad[0] != (cl, str(dev), n):
        lens = [b - a for a, b in zip(cl[:-1], cl[1:])]
        B, Lmax = len(lens), max(lens)
        lt = torch.tensor(lens, device=dev)
        bidx = torch.repeat_interleave(torch.arange(B, device=dev), lt)
        pidx = torch.arange(n, device=dev) - torch.repeat_interleave(torch.tensor(cl[:-1], device=dev), lt)
        mask = (torch.arange(Lmax, device=dev)[None, :] < lt[:, None])[:, None, None, :]
        pad = ((cl, str(dev), n), bidx, pidx, mask, B, Lmax)
        _PAD_CACHE["last"] = pad
    _, bidx, pidx, mask, B, Lmax = pad

    def padded(x):
        out = x.new_zeros(B, Lmax, x.shape[1], x.shape[2])
        out[bidx, pidx] = x
        return out.transpose(1, 2)

    o = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=mask, scale=self.scaling)
    o = o.transpose(1, 2)[bidx, pidx].reshape(n, -1)
    return self.proj(o)


def _rot_pos_emb(self, grid_thw):
    """HF's rot_pos_emb, computed once per image shape and cached (it loops over the images in Python)."""
    import torch
    outs = []
    for row in grid_thw.tolist():
        key = (tuple(row), str(grid_thw.device), int(self.rotary_pos_emb.inv_freq.numel()))
        r = _ROT_CACHE.get(key)
        if r is None:
            with torch.no_grad():
                r = type(self)._glmv_orig_rot(self, grid_thw.new_tensor([row]))
            _ROT_CACHE[key] = r
        outs.append(r)
    if isinstance(outs[0], tuple):
        return tuple(torch.cat([o[i] for o in outs]) for i in range(len(outs[0])))
    return torch.cat(outs)


def set_fast_vision(on):
    from transformers.models.glm4v import modeling_glm4v as M
    A, V = M.Glm4vVisionAttention, M.Glm4vVisionModel
    if not hasattr(A, "_glmv_orig_forward"):
        A._glmv_orig_forward = A.forward
        V._glmv_orig_rot = getattr(V, "rot_pos_emb", None)  # absent in some transformers versions
    A.forward = _vision_attention if on else A._glmv_orig_forward
    if V._glmv_orig_rot is not None:
        V.rot_pos_emb = _rot_pos_emb if on else V._glmv_orig_rot


def reset_rope(model):
    """Forget the cached rope deltas of the last call (each of our calls is a fresh prefill)."""
    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def save_bf16(model, out, gen_cfg):
    """The model in BF16 (a copy: the FP32 master weights stay as they are)."""
    import copy
    import torch
    m = copy.deepcopy(model).to(torch.bfloat16)
    m.generation_config = gen_cfg
    m.save_pretrained(out, safe_serialization=True)
    del m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--eval-set", default="tests/fixtures/demo_eval")
    ap.add_argument("--assets", default=os.path.join(HERE, "assets"), help="folder with chat_template.jinja")
    ap.add_argument("--corpus", nargs="*", default=[], help="extra text files for the BPE")
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--tokenizer", default=None, help="take tokenizer.json from this folder instead of training one")
    ap.add_argument("--seconds", type=float, default=300, help="training time (at most)")
    ap.add_argument("--deadline", type=float, default=0,
                    help="the whole script ends within this many seconds: training stops early enough to save "
                         "and evaluate (--reserve seconds)")
    ap.add_argument("--reserve", type=float, default=70)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--type-weights", default="",
                    help="how often each question type is drawn, e.g. count=2,digits=3 (others 1); default uniform")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=300, help="warm-up steps")
    ap.add_argument("--min-lr", type=float, default=0.05, help="the cosine ends at this fraction of --lr")
    ap.add_argument("--save-every", type=float, default=150, help="seconds between checkpoints")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--text-hidden", type=int, default=384)
    ap.add_argument("--text-layers", type=int, default=4)
    ap.add_argument("--text-mlp", type=int, default=1024)
    ap.add_argument("--vision-hidden", type=int, default=192)
    ap.add_argument("--vision-depth", type=int, default=6)
    ap.add_argument("--vision-heads", type=int, default=3)
    ap.add_argument("--merger", type=int, default=768, help="vision merger MLP width (vision intermediate_size)")
    ap.add_argument("--max-mb", type=float, default=25.0, help="refuse a model larger than this in BF16")
    ap.add_argument("--max-image-tokens", type=int, default=MAX_MERGED_TOKENS,
                    help="merged tokens per image at most (processor longest_edge); the first checkpoint used 100")
    ap.add_argument("--init", default=None, help="continue from this checkpoint (its tokenizer and config)")
    ap.add_argument("--preset", default=G.DEFAULT_PRESET, choices=sorted(G.PRESETS), help="gen_data sizes")
    ap.add_argument("--example", default=None, help="example image (count question), added to the fixtures")
    ap.add_argument("--report", default=None, help="folder for logs, eval results and fixtures")
    a = ap.parse_args()
    import torch
    from transformers import GenerationConfig, Glm4vForConditionalGeneration
    import eval_hf

    t_start = time.time()
    report = a.report or os.path.join(a.out, "_report")
    os.makedirs(report, exist_ok=True)
    logf = open(os.path.join(report, "train_log.txt"), "w")

    def log(*xs):
        s = " ".join(str(x) for x in xs)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    tok_src = a.init or a.tokenizer
    if tok_src:
        with open(os.path.join(tok_src, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
    else:
        tj = build_tokenizer(a.corpus, a.vocab)
    ids = write_model_files(a.out, tj, a.assets, a.max_image_tokens)
    n_ord = len(tj["model"]["vocab"])
    n_rows = (n_ord + len(ADDED) + 63) // 64 * 64
    digit_merges = [t for t in tj["model"]["vocab"] if sum(ch.isdigit() for ch in t) > 1]
    log(f"tokenizer{' from ' + tok_src if tok_src else ''}: {n_ord} ordinary tokens, {len(ADDED)} added "
        f"(ids {n_ord}..{n_ord + len(ADDED) - 1}), embedding rows {n_rows}, multi-digit tokens {len(digit_merges)}")
    if a.init:
        from transformers import Glm4vConfig
        cfg = Glm4vConfig.from_pretrained(a.init)
        n_rows = cfg.text_config.vocab_size
    else:
        cfg = make_config(n_rows, ids, a)
    gen_cfg = GenerationConfig(do_sample=False, eos_token_id=eos_ids(ids), pad_token_id=ids["<|endoftext|>"],
                               max_new_tokens=128)
    proc = load_processor(a.out)
    log("processor:", type(proc).__name__, type(proc.image_processor).__name__, type(proc.tokenizer).__name__)
    s0 = G.make_sample(1, None, a.preset)
    log("prompt:", repr(render_prompt(proc, s0["question"])))
    tk = proc.tokenizer
    for c, _ in ADDED:
        assert tk.convert_tokens_to_ids(c) == ids[c], (c, tk.convert_tokens_to_ids(c), ids[c])
    probe = G.target_text(s0)
    log("target:", probe, "->", tk(probe, add_special_tokens=False)["input_ids"])
    back = tk.decode(tk(probe, add_special_tokens=False)["input_ids"])
    log("decode round trip:", "ok" if back == probe else "DIFFERS: " + repr(back))

    dev = torch.device("cuda")

    def new_model():
        torch.manual_seed(0)
        if a.init:
            m = Glm4vForConditionalGeneration.from_pretrained(a.init, dtype=torch.float32)
        else:
            m = Glm4vForConditionalGeneration(cfg)
        return m.to(dev).train()

    model = new_model()
    rot = [(n, m.inv_freq.numel()) for n, m in model.named_modules() if hasattr(m, "inv_freq")]
    mb = n_params(model) * 2 / 1e6
    log(f"params {n_params(model) / 1e6:.2f} M ({mb:.1f} MB in BF16), rotary tables {rot} (text wants 16)")
    log("config:", cfg.to_json_string(use_diff=False).replace("\n", " "))
    assert all(k == 16 for n, k in rot if "visual" not in n), "partial_rotary_factor not applied"
    if mb > a.max_mb:
        raise SystemExit(f"the model would be {mb:.1f} MB in BF16, over --max-mb {a.max_mb}")

    # ---- fastdata must give exactly what the HF processor gives (ids, labels, grid, token types) and the same
    # pixels (the resize variant that matches best is kept); its M-RoPE positions are checked below, by logits
    tgt = lambda s: G.target_text(s) + "<|user|>"  # noqa: E731
    marked = render_prompt(proc, FD.MARK)
    assert marked.count(FD.MARK) == 1
    prefix, suffix = marked.split(FD.MARK)
    ip = proc.image_processor
    def size_of(k):
        try:
            return int(ip.size[k])
        except (TypeError, KeyError):
            return int(getattr(ip.size, k))
    enc = FD.Encoder(os.path.join(a.out, "tokenizer.json"), prefix, suffix, ids["<|image|>"],
                     size_of("shortest_edge"), size_of("longest_edge"))
    from PIL import Image
    probes = [G.make_sample(7_000_000 + i, None, a.preset) for i in range(32)]
    rows = eval_hf.read_set(a.eval_set)[:48]
    probes += [{"image": Image.open(os.path.join(a.eval_set, r["file"])).convert("RGB"), "question": r["question"],
                "think": r["think"], "answer": r["answer"]} for r in rows]
    worst = {"uint8": 0.0, "float": 0.0}
    t0 = time.time()
    for s in probes:
        ref = encode(proc, s["image"], s["question"], tgt(s))
        for mode in worst:
            enc.resize_mode = mode
            mine = enc.sample(s["image"], s["question"], tgt(s))
            assert torch.equal(mine["input_ids"], ref["_tok"]["input_ids"].long()), \
                (mine["input_ids"].tolist(), ref["_tok"]["input_ids"].tolist())
            assert torch.equal(mine["labels"], ref["labels"])
            assert list(mine["grid"]) == ref["_other"]["image_grid_thw"][0].tolist()
            if "mm_token_type_ids" in ref["_tok"]:
                assert torch.equal(mine["mm_token_type_ids"], ref["_tok"]["mm_token_type_ids"].long()), \
                    ref["_tok"]["mm_token_type_ids"].tolist()
            d = (FD.to_pixel_values(mine["patches"]) - ref["_other"]["pixel_values"].float()).abs().max().item()
            worst[mode] = max(worst[mode], d)
    pick = min(worst, key=worst.get)
    log(f"fastdata vs HF processor on {len(probes)} samples: ids, labels, grids and token types identical; "
        f"max pixel difference {worst} -> resize {pick} ({time.time() - t0:.1f} s)")
    if worst[pick] > 0.02:
        raise SystemExit("fastdata's pixels differ from the HF processor's")
    enc.resize_mode = pick
    t0 = time.time()
    for i in range(200):
        s = G.make_sample(7_100_000 + i, None, a.preset)
        enc.sample(s["image"], s["question"], tgt(s))
    log(f"fastdata: {200 / (time.time() - t0):.0f} samples/s on one core")

    seed0 = 0 if not a.init else 500_000_000 + int(time.time()) % 100_000 * 1000  # fresh samples when continuing
    weights = None
    if a.type_weights:
        weights = {t: 1.0 for t in G.QTYPES}
        for kv in a.type_weights.split(","):
            k, v = kv.split("=")
            if k not in weights:
                raise SystemExit(f"--type-weights: no question type {k!r} (types: {', '.join(G.QTYPES)})")
            weights[k] = float(v)
        log("question types drawn with weights", weights)
    stream = Stream(enc, a.batch, seed0, ids["<|endoftext|>"], a.preset, weights)
    loader = torch.utils.data.DataLoader(stream.dataset(),
                                         batch_size=None, num_workers=a.workers, prefetch_factor=4,
                                         pin_memory=True, persistent_workers=True)
    it = iter(loader)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01, eps=1e-8)

    use_pos = False

    def step(batch, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        inp = FD.to_model_inputs(batch, dev)
        if not use_pos:
            inp.pop("position_ids")
        reset_rope(model)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(**inp, use_cache=False)
        out.loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss, gn

    # ---- dry run of every stage, so a broken later stage fails in seconds, not after training
    b = next(it)
    log("batch keys:", {k: tuple(v.shape) for k, v in b.items()})
    # the fast vision tower and our position ids must give the logits of HF's own code on the HF processor's
    # inputs (with the processor's pixels, so that only the model code is compared)
    pad_id = ids["<|endoftext|>"]
    refb = collate([encode(proc, s["image"], s["question"]) for s in probes[:6]], pad_id)
    refb = {k: v.to(dev) for k, v in refb.items()}
    refb["pixel_values"] = refb["pixel_values"].float()
    sb = FD.to_model_inputs(FD.collate([enc.sample(s["image"], s["question"]) for s in probes[:6]], pad_id), dev)
    sb["pixel_values"] = refb["pixel_values"]
    assert torch.equal(sb["input_ids"], refb["input_ids"]) and torch.equal(sb["attention_mask"], refb["attention_mask"])
    model.eval()

    def logits(fast, pos, inp):
        set_fast_vision(fast)
        reset_rope(model)
        with torch.no_grad():
            return model(**{k: v for k, v in inp.items() if pos or k != "position_ids"}, use_cache=False).logits

    def differs(x, y):
        return ((x - y).abs().amax(-1) * sb["attention_mask"]).max().item()  # pad rows do not matter

    fast_ok, found = False, False
    ref_logits = logits(False, False, refb)
    for fast, pos in ((True, True), (True, False), (False, True), (False, False)):
        try:
            d = differs(logits(fast, pos, sb), ref_logits)
        except Exception as ex:  # noqa: BLE001 -- a transformers version whose internals differ
            log(f"fast vision {fast}, precomputed positions {pos}: failed: {ex!r}")
            continue
        log(f"fast vision {fast}, precomputed positions {pos}: max logit difference {d:.3g}")
        if d < 1e-4:
            fast_ok, use_pos, found = fast, pos, True
            break
    if not found:
        raise SystemExit("fastdata's inputs do not give the logits of the HF processor's inputs")
    set_fast_vision(fast_ok)
    log(f"-> fast vision tower {'used' if fast_ok else 'NOT used'}, precomputed positions "
        f"{'used' if use_pos else 'NOT used'}")
    model.train()
    for i in range(3):
        t0 = time.time()
        loss, gn = step(b if i == 0 else next(it), 1e-4)
        log(f"dry step {i} loss {loss.item():.4f} ({time.time() - t0:.2f} s)")
    dry = os.path.join(report, "dry_model")
    write_model_files(dry, tj, a.assets, a.max_image_tokens)
    save_bf16(model, dry, gen_cfg)
    set_fast_vision(False)
    r = eval_hf.run(dry, a.eval_set, os.path.join(report, "dry_eval"), limit=10, n_fixtures=1,
                    example=a.example, log=log)
    set_fast_vision(fast_ok)
    log("dry eval ok:", json.dumps(r["overall"]))
    shutil.rmtree(dry)
    shutil.rmtree(os.path.join(report, "dry_eval"), ignore_errors=True)

    # ---- training from a fresh init (or the --init checkpoint)
    model = new_model()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01, eps=1e-8)
    budget = a.seconds
    if a.deadline:
        budget = min(budget, a.deadline - (time.time() - t_start) - a.reserve)
    log(f"training for {budget:.0f} s (batch {a.batch}, lr {a.lr}, warm-up {a.warmup} steps, "
        f"cosine to {a.min_lr} of it)")
    t0 = time.time()
    nstep, seen, ema, t_wait, t_saved = 0, 0, None, 0.0, time.time()
    try:
        while True:
            el = time.time() - t0
            frac = el / budget
            if frac >= 1.0:
                break
            lr = a.lr * min(1.0, (nstep + 1) / a.warmup) * \
                (a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * frac)))
            tw = time.time()
            batch = next(it)
            t_wait += time.time() - tw
            loss, gn = step(batch, lr)
            nstep += 1
            seen += batch["input_ids"].shape[0]
            if nstep % 100 == 0:
                lv = loss.item()
                ema = lv if ema is None else 0.8 * ema + 0.2 * lv
                log(f"step {nstep} t {el:.0f}s samples {seen} ({seen / max(el, 1e-9):.0f}/s) lr {lr:.2e} "
                    f"loss {lv:.4f} ema {ema:.4f} gnorm {gn.item():.2f} data-wait {t_wait:.0f}s")
            if time.time() - t_saved > a.save_every:
                save_bf16(model, a.out, gen_cfg)
                t_saved = time.time()
    except Exception as ex:  # keep what was trained so far
        import traceback
        log("TRAINING STOPPED EARLY:", repr(ex), traceback.format_exc())
    train_s = time.time() - t0
    log(f"trained {nstep} steps, {seen} samples in {train_s:.0f} s")
    save_bf16(model, a.out, gen_cfg)
    del it, loader
    set_fast_vision(False)
    info = {"steps": nstep, "samples": seen, "train_seconds": round(train_s, 1), "batch": a.batch, "lr": a.lr,
            "warmup": a.warmup, "min_lr": a.min_lr, "init": a.init, "preset": a.preset,
            "type_weights": weights,
            "max_image_tokens": a.max_image_tokens, "script_commit": os.environ.get("DEMO_COMMIT"),
            "fast_vision": fast_ok, "precomputed_positions": use_pos, "resize": pick,
            "data_wait_seconds": round(t_wait), "params": n_params(model), "ordinary_vocab": n_ord,
            "embedding_rows": n_rows, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    prev = os.path.join(a.init, "train_info.json") if a.init else None
    if prev and os.path.exists(prev):
        with open(prev) as f:
            p = json.load(f)
        info["history"] = p.get("history", []) + [{k: p.get(k) for k in ("steps", "samples", "train_seconds",
                                                                        "batch", "lr", "init")}]
    import transformers
    info["transformers"] = transformers.__version__
    with open(os.path.join(report, "train_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    shutil.copyfile(os.path.join(report, "train_info.json"), os.path.join(a.out, "train_info.json"))
    eval_hf.run(a.out, a.eval_set, report, limit=None, n_fixtures=4,
                example=a.example, log=log, fast_batch=fast_ok)
    log(f"total {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()

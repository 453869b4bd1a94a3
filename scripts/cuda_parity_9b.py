#!/usr/bin/env python3
"""cuda_parity_9b.py -- glmv's CUDA backend against transformers at the full GLM-4.1V-9B shape.

Builds Glm4vForConditionalGeneration with the 9B configuration (GLM4V.md section 1) and random
weights on the GPU (norm weights and biases perturbed, as scripts/make_tiny_fixtures.py does, so
that every parameter matters), saves it with save_pretrained as BF16 safetensors, reloads it in
float32 with eager attention (the reference computes in fp32 from the same BF16 weights), and runs
`bench_cuda logits` (tests/bench_cuda.c, glmv on CUDA) on the same checkpoint and prompt. Compares
the last prompt token's logits (NMSE <= --max-nmse, default 1e-3: glmv rounds GEMM inputs and
attention operands to bf16) and the greedy tokens, which must agree at every step up to the first
one whose reference top-2 margin is below --margin (a near-tie may go either way).

Text decoder only: the prompt has no image (the vision tower is covered by tests/test_cuda.c op
by op and by the tiny fixtures). Run on the GPU machine (about 45 GB of GPU memory, 21 GB disk):

  make CUDA=1 bench-cuda
  python3 scripts/cuda_parity_9b.py --bench build/cuda/tests/bench_cuda --dir /tmp/glm9b

Exit status 0 when both checks pass.

--fidelity adds the precision table (docs/PERFORMANCE.md): transformers' own bf16 run (its default
attention) and glmv on CUDA and on the CPU, each in f32 and bf16 (GLMV_PRECISION), all against the
float32 reference: logits NMSE and greedy tokens. glmv's f32 runs must be within 1e-5 of it (the
logits bound of test_parity) with identical greedy tokens up to the first step whose margin is below
0.01.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

# GLM4V.md section 1.3 (ids of the real tokenizer)
IDS = dict(endoftext=151329, user=151336, observation=151338, answer_end=151348,
           image=151343, video=151344, boi=151339, eoi=151340, bov=151341, eov=151342)


def log(*a):
    print(*a, flush=True)


def make_config():
    import inspect
    from transformers import Glm4vConfig
    try:
        from transformers import Glm4vTextConfig
        text_params = inspect.signature(Glm4vTextConfig.__init__).parameters
    except Exception:  # noqa
        text_params = {}
    eos = [IDS["endoftext"], IDS["user"], IDS["observation"], IDS["answer_end"]]
    tx = dict(vocab_size=151552, hidden_size=4096, intermediate_size=13696, num_hidden_layers=40,
              num_attention_heads=32, num_key_value_heads=2, max_position_embeddings=65536,
              rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
              hidden_act="silu", initializer_range=0.02, pad_token_id=IDS["endoftext"],
              eos_token_id=eos, image_token_id=IDS["image"], video_token_id=IDS["video"])
    rope = dict(rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[8, 12, 12])
    if "rope_parameters" in text_params:
        tx["rope_parameters"] = dict(rope, rope_type="default")
    else:
        tx.update(rope_theta=rope["rope_theta"], partial_rotary_factor=rope["partial_rotary_factor"],
                  rope_scaling={"type": "default", "rope_type": "default",
                                "mrope_section": rope["mrope_section"]})
    vx = dict(depth=24, hidden_size=1536, num_heads=12, out_hidden_size=4096,
              intermediate_size=13696, image_size=336, patch_size=14, temporal_patch_size=2,
              spatial_merge_size=2, rms_norm_eps=1e-5, hidden_act="silu", attention_bias=False,
              in_channels=3, initializer_range=0.02)
    return Glm4vConfig(text_config=tx, vision_config=vx, image_token_id=IDS["image"],
                       video_token_id=IDS["video"], image_start_token_id=IDS["boi"],
                       image_end_token_id=IDS["eoi"], video_start_token_id=IDS["bov"],
                       video_end_token_id=IDS["eov"], tie_word_embeddings=False)


def random_model(attn):
    """The 9B shape with random BF16 weights built on the GPU (for the time-to-first-token scripts:
    hf_image_ttft.py, hf_video_ttft.py), eval mode, `attn` its attention implementation."""
    from transformers import Glm4vForConditionalGeneration
    with torch.device("cuda"):
        try:
            model = Glm4vForConditionalGeneration._from_config(make_config(), dtype=torch.bfloat16,
                                                               attn_implementation=attn)
        except TypeError:
            model = Glm4vForConditionalGeneration._from_config(make_config(), torch_dtype=torch.bfloat16,
                                                               attn_implementation=attn)
    model = model.to(torch.bfloat16)
    model.eval()
    return model


def tower_clock(model):
    """Hooks on the vision tower's forward that add its time (GPU synchronised) to the returned
    dict's "ms" (clear the dict before each request)."""
    vis = {}

    def pre(mod, args, kwargs):
        torch.cuda.synchronize()
        vis["t0"] = time.perf_counter()

    def post(mod, args, kwargs, out):
        torch.cuda.synchronize()
        vis["ms"] = vis.get("ms", 0) + (time.perf_counter() - vis["t0"]) * 1e3

    model.model.visual.register_forward_pre_hook(pre, with_kwargs=True)
    model.model.visual.register_forward_hook(post, with_kwargs=True)
    return vis


def build(out_dir, seed):
    from transformers import Glm4vForConditionalGeneration
    torch.manual_seed(seed)
    t0 = time.time()
    with torch.device("cuda"):
        model = Glm4vForConditionalGeneration(make_config()).to(torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "bias" in name:
                p.copy_(torch.randn(p.shape, generator=g, device="cuda") * 0.1)
            elif p.ndim == 1:
                p.copy_(1.0 + torch.randn(p.shape, generator=g, device="cuda") * 0.2)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="5GB")
    log(f"built and saved the 9B checkpoint in {time.time() - t0:.1f} s -> {out_dir}")
    del model
    torch.cuda.empty_cache()


def reference(out_dir, prompt, n_new, dtype=torch.float32, attn="eager"):
    from transformers import Glm4vForConditionalGeneration
    kw = dict(device_map="cuda")
    if attn:
        kw["attn_implementation"] = attn
    try:
        model = Glm4vForConditionalGeneration.from_pretrained(out_dir, dtype=dtype, **kw)
    except TypeError:
        model = Glm4vForConditionalGeneration.from_pretrained(out_dir, torch_dtype=dtype, **kw)
    model.eval()
    ids = torch.tensor([prompt], device="cuda")
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].float().cpu().numpy()
        gen = model.generate(input_ids=ids, max_new_tokens=n_new, do_sample=False,
                             output_scores=True, return_dict_in_generate=True,
                             eos_token_id=None, pad_token_id=IDS["endoftext"])
    toks = gen.sequences[0, len(prompt):].tolist()
    margins = []
    for sc in gen.scores:
        top = torch.topk(sc[0].float(), 2).values
        margins.append(float(top[0] - top[1]))
    del model
    torch.cuda.empty_cache()
    return logits, toks, margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/cuda/tests/bench_cuda")
    ap.add_argument("--dir", default="/tmp/glm9b")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-nmse", type=float, default=1e-3)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--json", default="", help="write the figures here")
    ap.add_argument("--fidelity", action="store_true", help="also the precision table (see above)")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if not os.path.exists(os.path.join(a.dir, "config.json")):
        build(a.dir, a.seed)
    rng = np.random.default_rng(a.seed)
    prompt = [int(x) for x in rng.integers(0, 150000, size=64)]
    t0 = time.time()
    ref_logits, ref_toks, margins = reference(a.dir, prompt, a.tokens)
    log(f"transformers fp32 eager: {time.time() - t0:.1f} s; greedy {ref_toks}")
    out = os.path.join(a.dir, "glmv_logits.bin")
    t0 = time.time()
    r = subprocess.run([a.bench, "logits", a.dir, out, str(a.tokens), ",".join(map(str, prompt))],
                       capture_output=True, text=True)
    log(r.stdout.strip(), r.stderr.strip())
    if r.returncode:
        log("FAIL: bench_cuda logits exited", r.returncode)
        return 1
    raw = open(out, "rb").read()
    vocab = ref_logits.shape[0]
    g_logits = np.frombuffer(raw[:4 * vocab], dtype=np.float32)
    g_toks = np.frombuffer(raw[4 * vocab:], dtype=np.int32).tolist()
    log(f"glmv cuda: {time.time() - t0:.1f} s (load included)")
    d = g_logits.astype(np.float64) - ref_logits
    nmse = float((d * d).sum() / (ref_logits.astype(np.float64) ** 2).sum())
    ok_tokens = True
    checked = 0
    for i, (rt, gt) in enumerate(zip(ref_toks, g_toks)):
        if margins[i] < a.margin:
            break  # a near-tie: the continuation may fork here legitimately
        checked += 1
        if rt != gt:
            ok_tokens = False
            break
    res = dict(nmse=nmse, max_nmse=a.max_nmse, ref_tokens=ref_toks, glmv_tokens=g_toks,
               margins=margins, tokens_checked=checked, tokens_ok=ok_tokens,
               argmax_equal=int(np.argmax(g_logits)) == int(np.argmax(ref_logits)))
    log(json.dumps(res))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)
    passed = nmse <= a.max_nmse and ok_tokens
    if a.fidelity:
        passed = fidelity(a, prompt, ref_logits, ref_toks, margins) and passed
    log(f"RESULT cuda_parity_9b nmse={nmse:.3g} tokens_checked={checked} "
        f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def compare(logits, toks, ref_logits, ref_toks, margins, margin):
    d = logits.astype(np.float64) - ref_logits
    nmse = float((d * d).sum() / (ref_logits.astype(np.float64) ** 2).sum())
    checked, same = 0, True
    for i, (rt, gt) in enumerate(zip(ref_toks, toks)):
        if margins[i] < margin:
            break
        checked += 1
        if rt != gt:
            same = False
            break
    first_diff = next((i for i, (x, y) in enumerate(zip(ref_toks, toks)) if x != y), None)
    return dict(nmse=nmse, tokens_checked=checked, tokens_ok=same, first_difference=first_diff,
                argmax_equal=int(np.argmax(logits)) == int(np.argmax(ref_logits)))


def fidelity(a, prompt, ref_logits, ref_toks, margins):
    rows = {}
    t0 = time.time()
    lg, toks, _ = reference(a.dir, prompt, a.tokens, dtype=torch.bfloat16, attn=None)
    rows["transformers bf16 (cuda, sdpa)"] = compare(lg, toks, ref_logits, ref_toks, margins, 0.05)
    log(f"transformers bf16: {time.time() - t0:.1f} s")
    ok = True
    vocab = ref_logits.shape[0]
    for dev in ("cuda", "cpu"):
        for prec in ("f32", "bf16"):
            out = os.path.join(a.dir, f"glmv_{dev}_{prec}.bin")
            t0 = time.time()
            env = dict(os.environ, GLMV_PRECISION=prec)
            r = subprocess.run([a.bench, "logits", a.dir, out, str(a.tokens),
                                ",".join(map(str, prompt)), dev], capture_output=True, text=True,
                               env=env)
            log(r.stdout.strip(), r.stderr.strip()[-2000:], f"({time.time() - t0:.1f} s)")
            if r.returncode:
                rows[f"glmv {prec} ({dev})"] = dict(error=r.returncode)
                ok = False
                continue
            raw = open(out, "rb").read()
            lgs = np.frombuffer(raw[:4 * vocab], dtype=np.float32)
            tk = np.frombuffer(raw[4 * vocab:], dtype=np.int32).tolist()
            row = compare(lgs, tk, ref_logits, ref_toks, margins, 0.01 if prec == "f32" else 0.05)
            rows[f"glmv {prec} ({dev})"] = row
            if prec == "f32" and not (row["nmse"] <= 1e-5 and row["tokens_ok"]):
                ok = False
    log("fidelity at the 9B shape, against transformers float32 (eager), 64-token prompt:")
    for k, v in rows.items():
        if "error" in v:
            log(f"  {k:34s} FAILED (exit {v['error']})")
            continue
        log(f"  {k:34s} logits nmse {v['nmse']:.3e}  greedy: first difference at "
            f"{v['first_difference']}, {v['tokens_checked']} steps checked, "
            f"{'ok' if v['tokens_ok'] else 'DIFFERENT'}")
    if a.json:
        json.dump(dict(fidelity=rows, margins=margins), open(a.json + ".fidelity.json", "w"),
                  indent=1)
    return ok


if __name__ == "__main__":
    sys.exit(main())

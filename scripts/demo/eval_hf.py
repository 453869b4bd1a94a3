#!/usr/bin/env python3
"""eval_hf.py -- accuracy of the demo model under transformers, and the HF greedy fixtures for glmv.

Reads the held-out set (DIR/answers.tsv + PNGs from gen_data.py --eval), runs greedy decoding with the
BF16 weights in BF16 and upcast to FP32 (batched, no KV cache; stops at the eos ids) and reports
exact-match accuracy of the text inside <answer>...</answer>, overall and per question type. Then, for the first N samples of each type
and the shipped example image, runs HF `generate` (greedy) twice -- BF16 weights in BF16 with sdpa, and
the same weights upcast to FP32 with eager attention -- and writes both token ids and texts, the prompt
ids, the image grid and a checksum of pixel_values to hf_greedy.json, for glmv's parity test.
usage: python3 scripts/demo/eval_hf.py --model models/demo --eval-set tests/fixtures/demo_eval --out DIR
"""
import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402

EVAL_REL = "tests/fixtures/demo_eval"
EXAMPLE_REL = "models/demo/example.png"
EXAMPLE_QUESTION = "How many shapes are there?"


def read_set(eval_set):
    rows = []
    with open(os.path.join(eval_set, "answers.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(head, line.rstrip("\n").split("\t"))))
    return rows


def answer_of(text):
    m = re.search(r"<answer>(.*?)(</answer>|$)", text, re.S)
    return (m.group(1) if m else "").strip().lower()


def greedy_batch(model, proc, images, questions, stop, max_new=64, chunk=128):
    """Greedy decoding without a cache: each step reruns the whole right-padded batch."""
    import torch
    dev = next(model.parameters()).device
    pad = proc.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    outs = []
    for c0 in range(0, len(images), chunk):
        items = [T.encode(proc, im, q) for im, q in zip(images[c0:c0 + chunk], questions[c0:c0 + chunk])]
        b = T.collate(items, pad)
        B, P = b["input_ids"].shape
        plen = [it["prompt_len"] for it in items]
        grow = {k: torch.cat([v, torch.full((B, max_new), pad if k == "input_ids" else 0, dtype=v.dtype)], 1)
                for k, v in b.items() if v.ndim == 2 and v.shape[0] == B and v.shape[1] == P}
        other = {k: v.to(dev) for k, v in b.items() if k not in grow}
        cur = list(plen)
        done = [False] * B
        gen = [[] for _ in range(B)]
        for _ in range(max_new):
            L = max(cur)
            T.reset_rope(model)
            with torch.no_grad():
                logits = model(**{k: v[:, :L].to(dev) for k, v in grow.items()}, **other, use_cache=False).logits
            nxt = logits[torch.arange(B, device=dev), torch.tensor(cur, device=dev) - 1].float().argmax(-1).tolist()
            for i in range(B):
                if done[i]:
                    continue
                grow["input_ids"][i, cur[i]] = nxt[i]
                if "attention_mask" in grow:
                    grow["attention_mask"][i, cur[i]] = 1
                gen[i].append(nxt[i])
                cur[i] += 1
                done[i] = nxt[i] in stop
            if all(done):
                break
        outs += gen
    return outs


def hf_generate(model, proc, image, question, stop, max_new=64):
    import torch
    dev = next(model.parameters()).device
    enc = proc(text=[T.render_prompt(proc, question)], images=[image], return_tensors="pt")
    pad = proc.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    T.reset_rope(model)
    with torch.no_grad():
        out = model.generate(**{k: v.to(dev) for k, v in enc.items()}, max_new_tokens=max_new, do_sample=False,
                             eos_token_id=stop, pad_token_id=pad)
    L = enc["input_ids"].shape[1]
    return enc, out[0, L:].tolist()


def run(model_dir, eval_set, outdir, limit=None, n_fixtures=4, example=None, log=print, fast_batch=False):
    """fast_batch: the batched accuracy run uses train.py's fast vision tower (checked against HF's code
    before training); the fixtures always come from HF's own code."""
    import torch
    from PIL import Image
    from transformers import Glm4vForConditionalGeneration
    os.makedirs(outdir, exist_ok=True)
    rows = read_set(eval_set)[:limit] if limit else read_set(eval_set)
    proc = T.load_processor(model_dir)
    tok = proc.tokenizer
    with open(os.path.join(model_dir, "generation_config.json")) as f:
        stop = json.load(f)["eos_token_id"]
    stop = stop if isinstance(stop, list) else [stop]
    images = [Image.open(os.path.join(eval_set, r["file"])).convert("RGB") for r in rows]
    model = Glm4vForConditionalGeneration.from_pretrained(model_dir, dtype=torch.bfloat16).cuda().eval()
    m32 = Glm4vForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                        attn_implementation="eager").cuda().eval()
    res = {}
    for name, m, desc in (("bf16", model, "BF16 weights and compute, sdpa"),
                          ("fp32", m32, "BF16 weights upcast to FP32, eager attention")):
        t0 = time.time()
        if fast_batch:
            T.set_fast_vision(True)
        try:
            gen = greedy_batch(m, proc, images, [r["question"] for r in rows], stop)
        finally:
            if fast_batch:
                T.set_fast_vision(False)
        per = {}
        lines = ["file\ttype\texpected\tgot\tok\toutput"]
        for r, g in zip(rows, gen):
            text = tok.decode(g, skip_special_tokens=False)
            got = answer_of(text)
            ok = got == r["answer"].lower()
            r[name + "_text"] = text
            p = per.setdefault(r["type"], [0, 0])
            p[0] += ok
            p[1] += 1
            lines.append("\t".join([r["file"], r["type"], r["answer"], got, str(int(ok)), text]))
        tot = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
        res[name] = {"overall": {"correct": tot[0], "n": tot[1], "accuracy": round(tot[0] / max(1, tot[1]), 4)},
                     "per_type": {k: {"correct": v[0], "n": v[1], "accuracy": round(v[0] / v[1], 4)}
                                  for k, v in per.items()},
                     "decoding": f"greedy, {desc}, batched without KV cache, max 64 new tokens"
                                 + (", vision attention batched" if fast_batch else ""),
                     "seconds": round(time.time() - t0, 1)}
        log(f"HF accuracy ({name}):", json.dumps(res[name]))
        suffix = "" if name == "bf16" else "_fp32"
        with open(os.path.join(outdir, f"hf_predictions{suffix}.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    res["overall"] = res["fp32"]["overall"]  # glmv computes in FP32 from the BF16 weights
    with open(os.path.join(outdir, "hf_eval.json"), "w") as f:
        json.dump(res, f, indent=1)

    # fixtures: HF generate, BF16/sdpa and FP32/eager
    picks = []
    for qt in ("count", "colour", "position", "size", "digits"):
        picks += [(os.path.join(EVAL_REL, r["file"]), im, r) for r, im in zip(rows, images) if r["type"] == qt][:n_fixtures]
    if example and os.path.exists(example):
        picks.append((EXAMPLE_REL, Image.open(example).convert("RGB"),
                      {"type": "count", "question": EXAMPLE_QUESTION, "answer": None}))
    fx = []
    same = 0
    for path, im, r in picks:
        enc, g16 = hf_generate(model, proc, im, r["question"], stop)
        _, g32 = hf_generate(m32, proc, im, r["question"], stop)
        pv = enc["pixel_values"]
        e = {"image": path, "type": r["type"], "question": r["question"], "expected_answer": r["answer"],
             "prompt_ids": enc["input_ids"][0].tolist(), "image_grid_thw": enc["image_grid_thw"][0].tolist(),
             "pixel_values_shape": list(pv.shape), "pixel_values_sum": float(pv.double().sum()),
             "pixel_values_abs_sum": float(pv.double().abs().sum()),
             "pixel_values_head": [[round(float(x), 6) for x in row[:8]] for row in pv[:2]],
             "hf_bf16_ids": g16, "hf_bf16_text": tok.decode(g16, skip_special_tokens=False),
             "hf_fp32_ids": g32, "hf_fp32_text": tok.decode(g32, skip_special_tokens=False),
             "batched_bf16_text": r.get("bf16_text"), "batched_fp32_text": r.get("fp32_text")}
        same += g16 == g32
        fx.append(e)
    meta = {"model": "models/demo", "note": "greedy (do_sample=False), max_new_tokens 64, stop at eos ids; "
            "hf_fp32 = BF16 weights upcast to FP32, eager attention; hf_bf16 = BF16, sdpa",
            "image_processor": type(proc.image_processor).__name__, "eos_token_ids": stop,
            "bf16_fp32_identical": f"{same}/{len(fx)}", "samples": fx}
    import transformers
    meta["transformers"] = transformers.__version__
    meta["torch"] = torch.__version__
    with open(os.path.join(outdir, "hf_greedy.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    log(f"fixtures: {len(fx)} samples, bf16 == fp32 greedy for {same}")
    for e in fx[-3:]:
        log("  ", e["image"], e["question"], "->", e["hf_fp32_text"])
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--eval-set", default=EVAL_REL)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--fixtures-per-type", type=int, default=4)
    ap.add_argument("--example", default=EXAMPLE_REL)
    a = ap.parse_args()
    run(a.model, a.eval_set, a.out, a.limit, a.fixtures_per_type, a.example)


if __name__ == "__main__":
    main()

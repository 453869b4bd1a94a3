#!/usr/bin/env python3
"""fidelity_tiny.py -- transformers' own bf16 run against its float32 run on the tiny fixtures.

The fixtures (tests/fixtures/tiny, tiny2; scripts/make_tiny_fixtures.py) hold what transformers
computed in float32 from BF16 checkpoints: the inputs (ids, pixel_values, grid) and the last prompt
token's logits. This script loads each checkpoint in bfloat16 (as users run it: the default
attention, on the GPU when there is one), feeds the recorded inputs and prints the logits NMSE
against the float32 logits, and whether the argmax agrees. glmv's own figures for the same cases
come from test_parity (f32 and bf16) and, on a GPU, from GLMV_PARITY_DEVICE=cuda test_parity.
Together they make the fidelity table of docs/PERFORMANCE.md.

  python3 scripts/fidelity_tiny.py [--device cuda|cpu] [--json out.json]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_ref(dirname, case):
    arrays = {}
    blob = open(os.path.join(dirname, f"ref_{case}.bin"), "rb").read()
    for line in open(os.path.join(dirname, f"ref_{case}.idx")):
        f = line.split()
        if len(f) < 4:
            continue
        name, dt, off, nd = f[0], f[1], int(f[2]), int(f[3])
        shape = [int(x) for x in f[4:4 + nd]]
        n = int(np.prod(shape)) if shape else 1
        a = np.frombuffer(blob, dtype=np.float32 if dt == "f32" else np.int32, count=n, offset=off)
        arrays[name] = a.reshape(shape)
    return arrays


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    from transformers import Glm4vForConditionalGeneration
    res = {}
    for fx in ("tiny", "tiny2"):
        d = os.path.join(ROOT, "tests", "fixtures", fx)
        for dtype in (torch.float32, torch.bfloat16):
            try:
                model = Glm4vForConditionalGeneration.from_pretrained(d, dtype=dtype)
            except TypeError:
                model = Glm4vForConditionalGeneration.from_pretrained(d, torch_dtype=dtype)
            model = model.to(a.device).eval()
            for case in ("text", "image1", "image2"):
                r = load_ref(d, case)
                kw = {"input_ids": torch.tensor(r["input_ids"][None].astype(np.int64), device=a.device)}
                if "pixel_values" in r:
                    kw["pixel_values"] = torch.tensor(r["pixel_values"], device=a.device).to(dtype)
                    kw["image_grid_thw"] = torch.tensor(r["image_grid_thw"].astype(np.int64),
                                                        device=a.device)
                with torch.no_grad():
                    try:
                        out = model(**kw, use_cache=False)
                    except Exception:  # noqa: versions that want the multimodal token types
                        kw["mm_token_type_ids"] = (kw["input_ids"] == model.config.image_token_id).int()
                        out = model(**kw, use_cache=False)
                    lg = out.logits[0, -1].float().cpu().numpy()
                ref = r["logits_last"].astype(np.float64)
                dd = lg.astype(np.float64) - ref
                nmse = float((dd * dd).sum() / (ref * ref).sum())
                key = f"{fx}/{case}"
                name = "f32" if dtype == torch.float32 else "bf16"
                res.setdefault(key, {})[name] = dict(
                    nmse=nmse, argmax_same=int(np.argmax(lg)) == int(np.argmax(ref)))
                print(f"{key:14s} transformers {name:4s} on {a.device}: logits nmse {nmse:.3e}, "
                      f"argmax {'same' if res[key][name]['argmax_same'] else 'DIFFERENT'}",
                      flush=True)
            del model
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

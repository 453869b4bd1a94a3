#!/usr/bin/env python3
"""hf_image_ttft.py -- transformers' time to first token for an image file and a question, on the 9B
shape with random BF16 weights (the configuration of scripts/cuda_parity_9b.py), to set beside
`glmv bench --synthetic --layers 40 --device cuda --tokenizer DIR --image FILE --question TEXT` on
the same GPU (issue #14's first figure).

Each request is timed as a user waits for it, on the clock with the GPU synchronised: the file's
decoding (PIL), the official Glm4vProcessor (resize, normalise, patchify, the chat template and the
tokenizer), the inputs' copy to the GPU, then `generate(max_new_tokens=1)`: the vision tower (timed
apart by hooks on the tower's forward) and the prefill, the first token picked. Three requests; the
first, and the faster of the other two, are reported.

  python3 scripts/hf_image_ttft.py IMAGE TOKENIZER_DIR [--question TEXT] [--attn sdpa]

TOKENIZER_DIR holds tokenizer.json, tokenizer_config.json and chat_template.jinja.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_parity_9b import IDS, random_model, tower_clock  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("tokenizer")
    ap.add_argument("--question", default="Describe this image.")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    from PIL import Image
    from transformers import AutoTokenizer, Glm4vImageProcessor, Glm4vProcessor

    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    kw = {}
    try:
        from transformers import Glm4vVideoProcessor
        kw["video_processor"] = Glm4vVideoProcessor()
    except ImportError:
        pass
    proc = Glm4vProcessor(image_processor=Glm4vImageProcessor(), tokenizer=tok,
                          chat_template=open(os.path.join(a.tokenizer, "chat_template.jinja")).read(), **kw)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": a.question}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    t0 = time.time()
    model = random_model(a.attn)
    print(f"9B shape built on the GPU in {time.time() - t0:.1f} s ({a.attn} attention)", flush=True)
    vis = tower_clock(model)
    runs = []
    for r in range(a.reps):
        vis.clear()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        img = Image.open(a.image).convert("RGB")
        t1 = time.perf_counter()
        enc = proc(text=[text], images=[img], return_tensors="pt")
        t2 = time.perf_counter()
        enc = enc.to("cuda")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=IDS["endoftext"])
        torch.cuda.synchronize()
        t3 = time.perf_counter()
        runs.append(dict(ms=(t3 - t0) * 1e3, decode_ms=(t1 - t0) * 1e3, processor_ms=(t2 - t1) * 1e3,
                         gpu_ms=(t3 - t2) * 1e3, vision_ms=vis.get("ms", 0),
                         prompt_tokens=int(enc["input_ids"].shape[1]),
                         image_tokens=int((enc["input_ids"] == IDS["image"]).sum()),
                         grid=enc["image_grid_thw"][0].tolist(), first_token=int(out[0, -1])))
        print(json.dumps(runs[-1]), flush=True)
    best = min(runs[1:], key=lambda x: x["ms"]) if len(runs) > 1 else runs[0]
    print(json.dumps({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(), "image": a.image, "first": runs[0], "best": best,
                      "peak_gpu_bytes": torch.cuda.max_memory_allocated()}))


if __name__ == "__main__":
    sys.exit(main())

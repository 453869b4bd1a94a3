#!/usr/bin/env python3
"""hf_video_ttft.py -- transformers' time to first token for a video and a question, on the 9B
shape with random BF16 weights (the configuration of scripts/cuda_parity_9b.py), to set beside
`glmv bench --synthetic --layers 40 --device cuda --tokenizer DIR --video CLIP` on the same GPU.

transformers cannot read a video file on the GPU machine (no PyAV, no torchcodec), so it is given
the frames glmv's FFmpeg path decodes (scripts/video_frames.c CLIP FRAMES.npy, run there with the
same FFmpeg libraries glmv uses); its figure therefore leaves out the file's decoding, which
glmv's includes (glmv's log, GLMV_LOG=1, gives that stage apart). Each request, timed on the
clock with the GPU synchronised: the processor (sampling, resize, normalise, patchify: the
official Glm4vVideoProcessor with the checkpoint's defaults) on the frames, the inputs' copy to
the GPU, then `generate(max_new_tokens=1)`: the vision tower (timed apart by hooks on the
tower's forward) and the prefill, the first token picked. Three requests; the first, and the
faster of the other two, are reported.

  python3 scripts/hf_video_ttft.py FRAMES.npy FPS TOKENIZER_DIR [--question TEXT] [--attn sdpa]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_parity_9b import IDS, random_model, tower_clock  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("frames")
    ap.add_argument("fps", type=float)
    ap.add_argument("tokenizer")
    ap.add_argument("--question", default="Describe this video.")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    from transformers import AutoTokenizer, Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor
    from transformers.video_utils import VideoMetadata

    frames = np.load(a.frames, mmap_mode="r")
    T, H, W, _ = frames.shape
    meta = VideoMetadata(total_num_frames=T, fps=a.fps, width=W, height=H, duration=T / a.fps,
                         frames_indices=list(range(T)))
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    proc = Glm4vProcessor(image_processor=Glm4vImageProcessor(), tokenizer=tok,
                          video_processor=Glm4vVideoProcessor(),
                          chat_template=open(os.path.join(a.tokenizer, "chat_template.jinja")).read())
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": a.question}]}]
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
        enc = proc(text=[text], videos=[video], video_metadata=[meta], do_sample_frames=True, return_tensors="pt")
        t1 = time.perf_counter()
        enc = enc.to("cuda")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=IDS["endoftext"])
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        runs.append(dict(ms=(t2 - t0) * 1e3, processor_ms=(t1 - t0) * 1e3, gpu_ms=(t2 - t1) * 1e3,
                         vision_ms=vis.get("ms", 0), prompt_tokens=int(enc["input_ids"].shape[1]),
                         video_tokens=int((enc["input_ids"] == IDS["image"]).sum()),  # its frames' placeholders
                         grid=enc["video_grid_thw"][0].tolist(), first_token=int(out[0, -1])))
        print(json.dumps(runs[-1]), flush=True)
    best = min(runs[1:], key=lambda x: x["ms"]) if len(runs) > 1 else runs[0]
    print(json.dumps({"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(), "frames": [T, H, W], "fps": a.fps,
                      "first": runs[0], "best": best,
                      "peak_gpu_bytes": torch.cuda.max_memory_allocated()}))


if __name__ == "__main__":
    sys.exit(main())

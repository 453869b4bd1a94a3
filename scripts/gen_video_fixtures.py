#!/usr/bin/env python3
"""gen_video_fixtures.py -- run transformers' GLM-4.1V video processor on the
frames glmv's FFmpeg path decodes (scripts/video_frames.c), and record what
glmv must reproduce: sampled frame indices, timestamps, grid, the expanded
prompt ids, and pixel_values_videos as per-row sums plus sampled rows.

Run on the GPU machine (transformers 5.17) from the repository root:
  python3 scripts/gen_video_fixtures.py .dev/video OUTDIR
where .dev/video holds CLIP.npy.gz (from video_frames, non-sampled frames
zeroed), clips.json ({clip: fps}) and tokenizer/ (tokenizer.json,
tokenizer_config.json, chat_template.jinja of ../shared/assets).
"""
import gzip
import json
import sys
import time

import numpy as np
import torch
from transformers import AutoTokenizer, Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor
from transformers.video_utils import VideoMetadata

src, out = sys.argv[1], sys.argv[2]
clips = json.load(open(f"{src}/clips.json"))
tok = AutoTokenizer.from_pretrained(f"{src}/tokenizer")
vp = Glm4vVideoProcessor()
proc = Glm4vProcessor(image_processor=Glm4vImageProcessor(), tokenizer=tok, video_processor=vp,
                      chat_template=open(f"{src}/tokenizer/chat_template.jinja").read())
result = {"transformers": __import__("transformers").__version__, "video_processor": type(vp).__name__,
          "clips": {}}
for name, fps in clips.items():
    frames = np.load(gzip.open(f"{src}/{name}.npy.gz"))
    T, H, W, _ = frames.shape
    meta = VideoMetadata(total_num_frames=T, fps=fps, width=W, height=H, duration=T / fps,
                         frames_indices=list(range(T)))
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    t0 = time.time()
    enc = proc(text=["<|begin_of_video|><|video|><|end_of_video|>Describe this video."],
               videos=[video], video_metadata=[meta], do_sample_frames=True, return_tensors="pt")
    dt = time.time() - t0
    pv = enc["pixel_values_videos"].float()
    grid = enc["video_grid_thw"][0].tolist()
    ids = enc["input_ids"][0].tolist()
    # the indices HF sampled: recompute with its own sampler on the same metadata
    idx = vp.sample_frames(meta)
    idx = [int(i) for i in idx]
    ts = [int(i / fps) for i in idx[::2]]
    rows = pv.shape[0]
    step = max(1, rows // 24)
    result["clips"][name] = {
        "total_frames": T, "fps": fps, "width": W, "height": H,
        "frame_indices": idx, "timestamps": ts, "grid": grid, "input_ids": ids,
        "pixel_shape": list(pv.shape),
        "row_sums": [float(x) for x in pv.sum(dim=1).tolist()],
        "sample_rows": {str(r): [float(x) for x in pv[r, :].tolist()] for r in range(0, rows, step)},
        "processor_seconds": dt,
    }
    print(name, T, fps, grid, len(ids), f"{dt*1000:.1f} ms", flush=True)
json.dump(result, open(f"{out}/video_fixtures.json", "w"))

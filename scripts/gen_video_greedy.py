#!/usr/bin/env python3
"""gen_video_greedy.py -- transformers' answer of the tiny checkpoint to a question about a real
clip: the prompt's ids, the logits after the prompt and a greedy continuation with its top-2
margins, for tests/test_parity.c (tiny_video_greedy) to hold glmv to, on the CPU and on CUDA.

transformers reads no video file on the GPU machine (no PyAV, no torchcodec), so it is given the
frames glmv's own FFmpeg path decodes (scripts/video_frames.c, the frames it does not sample
zeroed so that the file stays small) with the clip's frame rate; the checkpoint's video
processor (tests/fixtures/tiny/video_preprocessor_config.json) samples, resizes and patchifies
them as it does any video. Run on the GPU machine (transformers 5.17) from the repository root:

  python3 scripts/gen_video_greedy.py FRAMES.npy.gz FPS tests/fixtures/tiny

It writes tests/fixtures/tiny/ref_video.json: the question, input_ids, video_grid_thw, the
sampled frame indices, logits_last, greedy_ids and greedy_margin. The model runs in float32 with
eager attention, the greedy steps recompute the whole sequence (no cache), as
make_tiny_fixtures.py does for the image cases.
"""
import gzip
import json
import sys

import numpy as np
import torch
from transformers import AutoProcessor, Glm4vForConditionalGeneration
from transformers.video_utils import VideoMetadata

N_GEN = 16
QUESTION = "What happens in this video?"

frames_path, fps, ckpt = sys.argv[1], float(sys.argv[2]), sys.argv[3]
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
frames = np.load(gzip.open(frames_path))
T, H, W, _ = frames.shape
meta = VideoMetadata(total_num_frames=T, fps=fps, width=W, height=H, duration=T / fps,
                     frames_indices=list(range(T)))
video = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
try:
    proc = AutoProcessor.from_pretrained(ckpt)
except Exception as e:  # noqa: as make_tiny_fixtures.py: build it from the folder's files
    print(f"AutoProcessor failed ({e!r}); building Glm4vProcessor by hand", flush=True)
    import os
    import transformers as tf
    tok = tf.PreTrainedTokenizerFast(tokenizer_file=os.path.join(ckpt, "tokenizer.json"),
                                     eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    skip = ("image_processor_type", "video_processor_type", "processor_class")
    ip = json.load(open(os.path.join(ckpt, "preprocessor_config.json")))
    vp = json.load(open(os.path.join(ckpt, "video_preprocessor_config.json")))
    proc = tf.Glm4vProcessor(image_processor=tf.Glm4vImageProcessor(**{k: v for k, v in ip.items() if k not in skip}),
                             tokenizer=tok,
                             video_processor=tf.Glm4vVideoProcessor(**{k: v for k, v in vp.items() if k not in skip}),
                             chat_template=open(os.path.join(ckpt, "chat_template.jinja")).read())
print("video processor", type(proc.video_processor).__name__, flush=True)
model = Glm4vForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32,
                                                      attn_implementation="eager").eval()
msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
enc = proc(text=[text], videos=[video], video_metadata=[meta], do_sample_frames=True, return_tensors="pt")
idx = [int(i) for i in proc.video_processor.sample_frames(meta)]
kept = [t for t in range(T) if frames[t].any()]
missing = [i for i in idx if i not in kept]
if missing:
    sys.exit(f"sampled frames {missing} were zeroed in {frames_path}: keep them")
fwd = {k: v for k, v in enc.items() if k != "attention_mask"}
ids = fwd["input_ids"]
gen, margins, first = [], [], None
with torch.no_grad():
    cur = ids
    for step in range(N_GEN):
        f2 = dict(fwd)
        f2["input_ids"] = cur
        if "mm_token_type_ids" in f2:
            pad = torch.zeros((1, cur.shape[1] - fwd["mm_token_type_ids"].shape[1]),
                              dtype=fwd["mm_token_type_ids"].dtype)
            f2["mm_token_type_ids"] = torch.cat([fwd["mm_token_type_ids"], pad], dim=1)
        lo = model(**f2, use_cache=False).logits[0, -1].float()
        if first is None:
            first = lo
        top = torch.topk(lo, 2)
        gen.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        cur = torch.cat([cur, top.indices[:1].reshape(1, 1).to(cur.dtype)], dim=1)
out = {
    "transformers": __import__("transformers").__version__, "torch": torch.__version__,
    "frames": {"total": T, "fps": fps, "width": W, "height": H},
    "question": QUESTION, "rendered": text, "frame_indices": idx,
    "video_grid_thw": enc["video_grid_thw"][0].tolist(),
    "input_ids": ids[0].tolist(),
    "logits_last": [float(x) for x in first.tolist()],
    "greedy_ids": gen, "greedy_margin": margins,
    "greedy_text": proc.tokenizer.decode(gen),
}
json.dump(out, open(f"{ckpt}/ref_video.json", "w"))
print("grid", out["video_grid_thw"], "prompt", ids.shape[1], "tokens, greedy", gen, "min margin %.4g" % min(margins))

#!/usr/bin/env python3
"""fastdata.py -- training batches for the demo model at GPU speed, without the HF processor in the loop.

The first recipe fed every sample through `Glm4vProcessor` in DataLoader workers (chat template, tokenizer,
image processor, all with per-call overhead): about 30 samples/s per core, so the GPU waited. This module
does the same work directly, and train.py checks it against the HF processor before training (same ids,
same grid, same pixel values):
  - the prompt is the chat template rendered once with a marker for the question (prefix + question +
    suffix), tokenized with the `tokenizers` library from the model's tokenizer.json; the one `<|image|>`
    is then repeated once per merged image token, as the processor's text expansion does;
  - the image is resized as Glm4vImageProcessor(Fast) resizes (GLM4V.md 7: smart_resize, then torchvision
    bicubic antialiased on uint8), and cut into uint8 patches in the processor's patch order; rescaling,
    normalisation and the temporal duplication happen on the GPU (`to_pixel_values`), which keeps the
    batches small (588 bytes a patch instead of 4704);
  - the M-RoPE position ids are computed here (train.rope_positions).
Needs torch, torchvision, numpy, Pillow and (for the tokenizer) tokenizers.
"""
import math

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PATCH, MERGE, TEMPORAL = 14, 2, 2
MARK = "\x00QUESTION\x00"


def smart_resize(h, w, min_pixels, max_pixels, factor=PATCH * MERGE, frames=TEMPORAL):
    """(H', W') for an image of h x w: GLM4V.md 7.2 (Python's round is half-to-even, as here)."""
    if h < factor or w < factor:
        s = max(factor / h, factor / w)
        h, w = int(h * s), int(w * s)
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    tb = round(frames / TEMPORAL) * TEMPORAL
    if tb * hb * wb > max_pixels:
        beta = math.sqrt(frames * h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif tb * hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (frames * h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


def resize_u8(t, size, mode="uint8"):
    """Bicubic antialiased resize of a uint8 [3, H, W] tensor as torchvision does it for the processor.
    mode "uint8": on the uint8 tensor (torchvision's uint8 kernel); "float": in float32, then rounded."""
    import torch
    try:
        from torchvision.transforms.v2 import functional as F
    except ImportError:  # older torchvision
        from torchvision.transforms import functional as F
    from torchvision.transforms import InterpolationMode
    if tuple(t.shape[1:]) == tuple(size):
        return t
    if mode == "float":
        r = F.resize(t.float(), list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)
        return r.round().clamp(0, 255).to(torch.uint8)
    return F.resize(t, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)


def patchify_u8(t):
    """uint8 [3, H, W] (H, W multiples of 28) -> uint8 [gh*gw, 3, 14, 14] in the processor's order:
    merge blocks row by row, the 2x2 patches of a block row by row (GLM4V.md 7.3)."""
    c, h, w = t.shape
    gh, gw = h // PATCH, w // PATCH
    p = t.reshape(c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    return p.permute(1, 4, 2, 5, 0, 3, 6).reshape(gh * gw, c, PATCH, PATCH).contiguous(), (1, gh, gw)


def to_pixel_values(patches_u8):
    """uint8 [N, 3, 14, 14] (on any device) -> float32 [N, 3*2*14*14], the processor's pixel_values:
    rescale by 1/255, normalise with the CLIP mean/std, the frame repeated for temporal_patch_size 2."""
    import torch
    x = patches_u8.float() * (1.0 / 255.0)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    n = x.shape[0]
    return x.unsqueeze(2).expand(n, 3, TEMPORAL, PATCH, PATCH).reshape(n, 3 * TEMPORAL * PATCH * PATCH)


class Encoder:
    """Turns (PIL image, question, target text) into training tensors; picklable into DataLoader workers
    (the tokenizer is loaded in the worker). `encode_text(str) -> list[int]` may be passed instead of a
    tokenizer.json path (tests)."""

    def __init__(self, tokenizer_json, prefix, suffix, image_id, min_pixels, max_pixels, resize_mode="uint8",
                 encode_text=None):
        self.tokenizer_json, self.prefix, self.suffix = tokenizer_json, prefix, suffix
        self.image_id, self.min_pixels, self.max_pixels = image_id, min_pixels, max_pixels
        self.resize_mode = resize_mode
        self._encode = encode_text

    def text_ids(self, s):
        if self._encode is None:
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(self.tokenizer_json)
            self._encode = lambda x: tok.encode(x, add_special_tokens=False).ids
        return self._encode(s)

    def __getstate__(self):
        d = dict(self.__dict__)
        if self.tokenizer_json:
            d["_encode"] = None
        return d

    def image(self, img):
        import torch
        a = np.asarray(img.convert("RGB"))
        t = torch.from_numpy(np.array(a)).permute(2, 0, 1)
        size = smart_resize(t.shape[1], t.shape[2], self.min_pixels, self.max_pixels)
        return patchify_u8(resize_u8(t, size, self.resize_mode).contiguous())

    def prompt_ids(self, question, n_image_tokens):
        ids = self.text_ids(self.prefix + question + self.suffix)
        at = [i for i, x in enumerate(ids) if x == self.image_id]
        assert len(at) == 1, "the rendered prompt must hold one <|image|>"
        return ids[:at[0]] + [self.image_id] * n_image_tokens + ids[at[0] + 1:]

    def sample(self, img, question, target=None):
        """-> dict(input_ids, labels (when target), positions [3, L], patches uint8, grid (1, gh, gw))"""
        import torch
        from train import rope_positions
        patches, grid = self.image(img)
        n_img = grid[1] * grid[2] // (MERGE * MERGE)
        ids = self.prompt_ids(question, n_img)
        out = {"prompt_len": len(ids), "patches": patches, "grid": grid}
        if target is not None:
            t = self.text_ids(target)
            out["labels"] = torch.tensor([-100] * len(ids) + t, dtype=torch.long)
            ids = ids + t
        out["input_ids"] = torch.tensor(ids, dtype=torch.long)
        out["mm_token_type_ids"] = (out["input_ids"] == self.image_id).long()  # 1 = image token, as the processor
        out["positions"] = rope_positions(out["input_ids"], torch.tensor(grid), self.image_id, MERGE)
        return out


def collate(items, pad_id):
    """Right-padded batch: input_ids, attention_mask, mm_token_type_ids, labels, position_ids [3, B, T]
    (padding at 1, as train.collate), patches (uint8, all images in order) and image_grid_thw."""
    import torch
    B = len(items)
    T = max(len(it["input_ids"]) for it in items)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    mm = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    pos = torch.ones((3, B, T), dtype=torch.long)
    for i, it in enumerate(items):
        n = len(it["input_ids"])
        ids[i, :n] = it["input_ids"]
        mask[i, :n] = 1
        mm[i, :n] = it["mm_token_type_ids"]
        if "labels" in it:
            labels[i, :n] = it["labels"]
        pos[:, i, :n] = it["positions"]
    out = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": mm, "position_ids": pos,
           "patches": torch.cat([it["patches"] for it in items]),
           "image_grid_thw": torch.tensor([it["grid"] for it in items], dtype=torch.long)}
    if "labels" in items[0]:
        out["labels"] = labels
    return out


def to_model_inputs(batch, dev):
    """A collated batch on the device, with pixel_values made from the uint8 patches there."""
    out = {k: v.to(dev, non_blocking=True) for k, v in batch.items() if k != "patches"}
    out["pixel_values"] = to_pixel_values(batch["patches"].to(dev, non_blocking=True))
    return out

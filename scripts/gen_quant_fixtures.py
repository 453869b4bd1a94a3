#!/usr/bin/env python3
"""gen_quant_fixtures.py LLAMA_CPP_DIR -- Q8_0 and Q4_0 blocks made by llama.cpp's own quantizer
(gguf-py's gguf/quants.py, which llama.cpp keeps bit-exact with its C reference quantizers) for
tests/test_quant.c, which checks glmv's quantizers block for block against them.

Writes tests/fixtures/quant/: input_f32.bin (48 rows x 256 float32: bf16-rounded normal values
as checkpoints hold, a zero row, outliers, exact halves at the rounding boundaries, equal
positive and negative extremes), q8_0.bin and q4_0.bin (the rows quantized, 34- and 18-byte
blocks). Needs numpy. Run from the repository root:
  python3 scripts/gen_quant_fixtures.py ~/src/llama.cpp
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(sys.argv[1], "gguf-py"))
from gguf.constants import GGMLQuantizationType as T  # noqa: E402
from gguf.quants import quantize  # noqa: E402

OUT = "tests/fixtures/quant"
R, C = 48, 256


def inputs():
    rng = np.random.default_rng(20261204)
    x = rng.normal(0, 0.02, size=(R, C)).astype(np.float32)
    x = (x.view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)  # bf16-rounded, as weights are
    x[1] = 0                                                         # a row of zeros
    x[2, 5] = 3.0                                                    # an outlier in one block
    x[3, ::32] = -1.0                                                # the extreme negative
    x[4, :32] = np.arange(32) - 16.5                                 # halves: Q4_0 boundaries
    x[5, :32] = np.concatenate([[127.0], np.arange(31) + 0.5])       # halves under Q8_0's id = 1
    x[6, :32] = np.concatenate([[-8.0], (np.arange(31) % 16) - 7.5]) # halves under Q4_0's id = -1
    x[7, 0], x[7, 1] = 0.5, -0.5                                     # equal extremes: the first wins
    x[8] = rng.uniform(-1, 1, size=C).astype(np.float32)             # not bf16-rounded
    x[9] = np.float32(1e-30) * rng.normal(size=C).astype(np.float32) # tiny: scales go subnormal
    return x


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    x = inputs()
    x.tofile(os.path.join(OUT, "input_f32.bin"))
    quantize(x, T.Q8_0).tofile(os.path.join(OUT, "q8_0.bin"))
    quantize(x, T.Q4_0).tofile(os.path.join(OUT, "q4_0.bin"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))

#!/usr/bin/env python3
"""gen_gguf_fixtures.py LLAMA_CPP_DIR [OUT] -- GGUF files of the tiny fixture model
(tests/fixtures/tiny) made by llama.cpp's own converter, convert_hf_to_gguf.py, as a llama.cpp
user makes them from a Hugging Face GLM-4.1V folder: the text model (architecture glm4) in BF16
and in Q8_0, and the vision tower as an mmproj file in F16. Where LLAMA_CPP_DIR/build/bin holds
llama-quantize, the BF16 text model is also quantized with it to Q4_0 and Q4_K_M.

The converter needs torch and transformers (a GPU machine's Python has both; nothing runs on the
GPU). Nothing of llama.cpp is copied: its converter is imported from LLAMA_CPP_DIR and run as
it is, with one exception: it names the pre-tokenizer by hashing how a test string tokenizes,
and the tiny fixture's 512-token vocabulary has no hash it knows, so this script tells it the
answer, "glm4", which is what it finds for the real GLM-4.1V tokenizer.

  python3 scripts/gen_gguf_fixtures.py ~/src/llama.cpp            # writes tests/fixtures/gguf/
"""
import os
import subprocess
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
L = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/gguf")
SRC = os.path.abspath("tests/fixtures/tiny")
os.makedirs(OUT, exist_ok=True)

sys.path.insert(0, L)
sys.path.insert(0, os.path.join(L, "gguf-py"))
import convert_hf_to_gguf as conv  # noqa: E402
from conversion import base  # noqa: E402

base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "glm4"


def convert(*args):
    sys.argv = ["convert_hf_to_gguf.py", SRC, *args]
    conv.main()


convert("--outtype", "bf16", "--outfile", os.path.join(OUT, "tiny-BF16.gguf"))
convert("--outtype", "q8_0", "--outfile", os.path.join(OUT, "tiny-Q8_0.gguf"))
convert("--mmproj", "--outtype", "f16", "--outfile", os.path.join(OUT, "mmproj-tiny-F16.gguf"))

q = os.path.join(L, "build", "bin", "llama-quantize")
if os.access(q, os.X_OK):
    for t in ("Q4_0", "Q4_K_M"):
        subprocess.run([q, os.path.join(OUT, "tiny-BF16.gguf"), os.path.join(OUT, f"tiny-{t}.gguf"), t],
                       check=True, stdout=subprocess.DEVNULL)
for f in sorted(os.listdir(OUT)):
    print(f"{f}: {os.path.getsize(os.path.join(OUT, f))} bytes")

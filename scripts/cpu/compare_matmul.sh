#!/usr/bin/env bash
# compare_matmul.sh LLAMA_CPP_DIR [THREADS] -- glmv's CPU matmul against ggml's (the code llama.cpp
# runs) on one 9B decoder layer's weights, decode (m=1) and prefill (m=256), back to back.
# LLAMA_CPP_DIR is a llama.cpp tree that YOU built as its own project builds it (its default CMake
# configuration, which turns llamafile's GEMMs on: `cmake -B build -DCMAKE_BUILD_TYPE=Release &&
# cmake --build build -j`); this script builds nothing of it and links its build/bin/libggml*.so.
# For the end-to-end comparison (llama-bench against glmv bench) see compare_llama.sh.
# Run from the repository root after `make`. Prints one line per repetition.
set -euo pipefail
L=${1:?usage: compare_matmul.sh LLAMA_CPP_DIR [THREADS]}
T=${2:-2}
OUT=build/cmp
mkdir -p "$OUT"
[ -f "$L/build/bin/libggml-cpu.so" ] || { echo "compare_matmul.sh: $L/build/bin/libggml-cpu.so not found (build llama.cpp first)" >&2; exit 2; }
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc scripts/cpu/glmv_matmul.c build/release/libglmv.a \
    -lm -lpthread -o "$OUT/glmv_matmul"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$L/ggml/include" scripts/cpu/ggml_matmul.c -L"$L/build/bin" \
    -Wl,-rpath,"$(cd "$L/build/bin" && pwd)" -lggml -lggml-cpu -lggml-base -lm -o "$OUT/ggml_matmul"
uptime
for m in 1 256; do
    GLMV_PRECISION=f32 "$OUT/glmv_matmul" "$T" $m -1 3
    GLMV_PRECISION=bf16 "$OUT/glmv_matmul" "$T" $m -1 3
    "$OUT/ggml_matmul" "$T" $m f16 3
    "$OUT/ggml_matmul" "$T" $m bf16 2
done
uptime

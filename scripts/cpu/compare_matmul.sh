#!/usr/bin/env bash
# compare_matmul.sh GGML_SRC [THREADS] -- glmv's CPU matmul against ggml's (what llama.cpp
# runs) on one 9B decoder layer's weights, decode (m=1) and prefill (m=256), back to back.
# GGML_SRC is a checkout of github.com/ggml-org/ggml (built here with CMake, AVX2 native).
# Run from the repository root after `make`. Prints one line per repetition.
set -euo pipefail
G=${1:?usage: compare_matmul.sh GGML_SRC [THREADS]}
T=${2:-2}
OUT=build/cmp
mkdir -p "$OUT"
if [ ! -f "$G/build/src/libggml-cpu.a" ]; then
    cmake -S "$G" -B "$G/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=OFF \
        -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
    make -C "$G/build" -j2 ggml ggml-cpu ggml-base >/dev/null
fi
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc scripts/cpu/glmv_matmul.c build/release/libglmv.a \
    -lm -lpthread -o "$OUT/glmv_matmul"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$G/include" -c scripts/cpu/ggml_matmul.c -o "$OUT/ggml_matmul.o"
c++ "$OUT/ggml_matmul.o" "$G/build/src/libggml.a" "$G/build/src/libggml-cpu.a" \
    "$G/build/src/libggml-base.a" -lpthread -lm -o "$OUT/ggml_matmul"
uptime
for m in 1 256; do
    GLMV_PRECISION=f32 "$OUT/glmv_matmul" "$T" $m -1 3
    GLMV_PRECISION=bf16 "$OUT/glmv_matmul" "$T" $m -1 3
    "$OUT/ggml_matmul" "$T" $m f16 3
    "$OUT/ggml_matmul" "$T" $m bf16 2
done
uptime

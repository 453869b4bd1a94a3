#!/usr/bin/env bash
# compare_llama.sh LLAMA_CPP_DIR [options] -- glmv against llama.cpp end to end on the CPU:
# llama.cpp's own llama-bench and `glmv bench --synthetic`, the same 9B text shape with N
# layers, the same threads, prompt and decode lengths, run alternately (one process each per
# round) so that both see the same machine. Prints every round, then min/median/max of each
# figure and the ratio of the medians (glmv / llama.cpp).
#
# LLAMA_CPP_DIR is a llama.cpp tree that YOU built as its own project builds it, CPU only:
#   cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j --target llama-bench llama-quantize
# (its default CMake configuration: GGML_NATIVE on, llamafile GEMMs on, OpenMP). This script
# builds nothing of it and this repository holds nothing of it; it uses build/bin/llama-bench,
# build/bin/llama-quantize and gguf-py/ (to write the random-weight GGUF, see gguf_9b.py).
#
# options: --layers N (2)  --threads T (2)  --prompt P (512)  --decode D (32)  --rounds R (5)
#          --types bf16,q8_0,q4_0 (those three; q4_k_m too: llama.cpp's recipe on both sides; f16:
#          llama.cpp's F16 file against glmv's BF16, for a CPU without bf16 products)  --dir DIR (build/cmp: the GGUF files, a few GB)
# An AVX2 machine can be stood in for on an AVX-512 one: GLMV_SIMD=avx2 in the environment (glmv's
# run-time dispatch, the AVX2 kernels) and a llama.cpp tree configured as llama.cpp's CMake does
# for such a CPU (-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON,
# the AVX-512 options OFF); say so when you report it.
#          --glmv-precision f32|bf16 (glmv's default: f32 on the CPU; bf16 rounds x as llama.cpp does)
#          --same-file (glmv reads the GGUF file llama-bench reads, llama-quantize's blocks, instead of
#          building the model with --synthetic and quantizing at load: for the full 40 layers, whose
#          BF16 weights would not fit beside a second copy in memory)
# The decode figures are after a P-token prompt on both sides (llama-bench -d P). Both prefill
# figures are warm: llama-bench's after its warm-up run, glmv bench's the second prefill of its
# session (--prompt-reps 2, its default; the first also pays for touching fresh buffers).
# Run from the repository root after `make`. Needs numpy (PYTHON=... names a python3 that has it)
# and a quiet machine.
set -euo pipefail
L=${1:?usage: compare_llama.sh LLAMA_CPP_DIR [--layers N] [--threads T] [--prompt P] [--decode D] [--rounds R] [--types bf16,q8_0,q4_0,q4_k_m]}
shift
LAYERS=2 T=2 P=512 D=32 R=5 TYPES=bf16,q8_0,q4_0 DIR=build/cmp GP=() SAME=0
while [ $# -gt 0 ]; do
    case "$1" in
    --layers) LAYERS=$2 ;; --threads) T=$2 ;; --prompt) P=$2 ;; --decode) D=$2 ;;
    --rounds) R=$2 ;; --types) TYPES=$2 ;; --dir) DIR=$2 ;; --glmv-precision) GP=(--precision "$2") ;;
    --same-file) SAME=1; shift; continue ;;
    *) echo "compare_llama.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
BENCH=$L/build/bin/llama-bench QUANTIZE=$L/build/bin/llama-quantize
for x in "$BENCH" "$QUANTIZE" ./glmv; do
    [ -x "$x" ] || { echo "compare_llama.sh: $x not found (build llama.cpp and glmv first)" >&2; exit 2; }
done
mkdir -p "$DIR"
base=$DIR/glm9b-$LAYERS-bf16.gguf
[ -f "$base" ] || "${PYTHON:-python3}" scripts/cpu/gguf_9b.py "$L" "$base" "$LAYERS"
log=$DIR/compare-$LAYERS-$T-$(date +%H%M%S).tsv
printf 'round\ttype\tengine\tpp_tok_s\ttg_tok_s\n' > "$log"

# llama-bench's JSON -> the average tokens/s of its one test
lb_ts() { python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["avg_ts"])'; }

echo "# $(date -u +%FT%TZ) $(uname -n), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# llama.cpp $(git -C "$L" rev-parse --short HEAD 2>/dev/null || echo '(no git)'), glmv $(git rev-parse --short HEAD)"
echo "# 9B text shape, $LAYERS layers, $T threads, pp$P, tg$D after a $P-token prompt; $(uptime | sed 's/.*load/load/')"
[ "$SAME" = 1 ] && echo "# glmv reads the same GGUF files as llama-bench"
for ty in ${TYPES//,/ }; do
    case $ty in
    bf16) g=$base; gq=() ;;
    f16) # llama.cpp's F16 file of the same weights (its fast 16-bit type where the CPU has
         # no bf16 products, as on AVX2); glmv keeps them in BF16, the same bytes per weight
        g=$DIR/glm9b-$LAYERS-f16.gguf
        [ -f "$g" ] || "$QUANTIZE" "$base" "$g" F16 >"$DIR/quantize-f16.log" 2>&1
        gq=() ;;
    q8_0 | q4_0 | q4_k_m)
        g=$DIR/glm9b-$LAYERS-$ty.gguf
        [ -f "$g" ] || "$QUANTIZE" "$base" "$g" "${ty^^}" >"$DIR/quantize-$ty.log" 2>&1
        gq=(--quant "$ty") ;;
    *) echo "compare_llama.sh: unknown type $ty" >&2; exit 2 ;;
    esac
    for r in $(seq 1 "$R"); do
        lpp=$("$BENCH" -m "$g" -t "$T" -p "$P" -n 0 -r 1 -o json 2>/dev/null | lb_ts)
        ltg=$("$BENCH" -m "$g" -t "$T" -p 0 -n "$D" -d "$P" -r 1 -o json 2>/dev/null | lb_ts)
        if [ "$SAME" = 1 ] && [ "$ty" != f16 ]; then gm=(-m "$g"); else gm=(--synthetic --layers "$LAYERS" "${gq[@]}"); fi
        read -r gpp gtg gprec < <(./glmv bench "${gm[@]}" -t "$T" --prompt "$P" \
            --decode "$D" "${GP[@]}" --json 2>/dev/null |
            python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["prefill"]["tokens_per_s"], j["decode"][0]["tokens_per_s"], j["precision"])')
        printf '%s\t%s\tllama.cpp\t%s\t%s\n%s\t%s\tglmv\t%s\t%s\n' "$r" "$ty" "$lpp" "$ltg" "$r" "$ty" "$gpp" "$gtg" | tee -a "$log"
        if [ "$r" = 1 ]; then echo "# glmv computes in $gprec"; fi
    done
done
python3 - "$log" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("\ntype   figure  engine      min     median    max     glmv/llama.cpp (medians)")
for ty in dict.fromkeys(r["type"] for r in rows):
    for fig in ("pp_tok_s", "tg_tok_s"):
        med = {}
        for eng in ("llama.cpp", "glmv"):
            v = sorted(float(r[fig]) for r in rows if r["type"] == ty and r["engine"] == eng)
            med[eng] = statistics.median(v)
            print(f"{ty:6s} {fig[:2]:7s} {eng:10s} {v[0]:8.2f} {med[eng]:8.2f} {v[-1]:8.2f}", end="")
            print(f"   {med['glmv'] / med['llama.cpp']:.2f}x" if eng == "glmv" else "")
EOF
echo "# $(uptime | sed 's/.*load/load/'); rounds in $log"

#!/usr/bin/env bash
# device_precision.sh start|finish -- the precision checks and figures that need the GPU machine
# (one H200 and a Xeon with AVX512-BF16 and AMX), in two calls of the device tool.
#
# Built here first (the GPU machine lacks FFmpeg, libmicrohttpd, cJSON... headers):
#   make -j2 all tests && make -j2 CUDA=1 all tests bench-cuda
#   ../shared/tools/device-bundle.sh .dev/rel build/release/glmv build/release/tests/test_* $(which jq)
#   ../shared/tools/device-bundle.sh .dev/cuda build/cuda/glmv build/cuda/tests/test_* build/cuda/tests/bench_cuda
#   mkdir -p .dev/shared/assets && cp -r ../shared/assets/{images,glm41v,docs} .dev/shared/assets/
# then, with .dev carried:
#   start   CPU benches (f32 and bf16), the 9B fidelity run started in the background,
#           the test suite on the machine's CPU, test_cuda, test_parity on CUDA, transformers'
#           bf16 on the tiny fixtures
#   finish  waits for the 9B run, collects its figures, benches the GPU in f32 and bf16 on its
#           checkpoint
# Logs land in $OUT (the device tool's folder) and end with a short summary.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
mkdir -p build/release/tests build/cuda/tests
cp .dev/rel/bin/test_* build/release/tests/ && cp .dev/rel/bin/glmv build/release/
cp .dev/cuda/bin/test_* .dev/cuda/bin/bench_cuda build/cuda/tests/ && cp .dev/cuda/bin/glmv build/cuda/
[ -e ../shared ] || ln -s "$PWD/.dev/shared" ../shared
export PATH="$PWD/.dev/rel/bin:$PATH"
source .dev/rel/env.sh
source .dev/cuda/env.sh
export PYTHONUNBUFFERED=1

case "${1:-}" in
start)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; lscpu | grep -o -E 'avx512_bf16|amx_bf16|amx_tile' | sort -u | tr '\n' ' '; echo;
      nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv; } >"$OUT/machine.txt" 2>&1
    for p in f32 bf16; do
        timeout 120 build/release/glmv bench --synthetic --layers 2 --prompt 512 --decode 16 \
            --precision $p --json >"$OUT/bench_cpu_$p.json" 2>>"$OUT/bench.err"
    done
    setsid nohup python3 scripts/cuda_parity_9b.py --bench build/cuda/tests/bench_cuda --dir /tmp/glm9b \
        --fidelity --json /tmp/p9b.json >/tmp/p9b.log 2>&1 </dev/null &
    timeout 300 bash tests/run.sh build/release >"$OUT/cpu_suite.log" 2>&1
    timeout 120 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    GLMV_PARITY_DEVICE=cuda timeout 180 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    timeout 240 python3 scripts/fidelity_tiny.py --json "$OUT/fidelity_tiny.json" >"$OUT/fidelity_tiny.log" 2>&1
    echo "== machine"; cat "$OUT/machine.txt"
    echo "== benches"; for f in "$OUT"/bench_*.json; do echo "$(basename $f): $(cut -c1-600 $f)"; done
    tail -n 5 "$OUT/bench.err"
    echo "== cpu suite"; grep -E '^(not ok|RESULT|SKIP)|passed,' "$OUT/cpu_suite.log" | grep -v 'failed=0 skipped=0'
    echo "== test_cuda"; grep -E 'not ok|RESULT|FAIL' "$OUT/test_cuda.log"
    echo "== parity on cuda"; grep -E 'not ok|RESULT|worst|logits nmse|full path' "$OUT/parity_cuda.log"
    echo "== transformers bf16, tiny"; cat "$OUT/fidelity_tiny.log" | tail -n 14
    echo "== 9B so far"; tail -n 3 /tmp/p9b.log
    ;;
finish)
    for _ in $(seq 560); do pgrep -f cuda_parity_9b.py >/dev/null || break; sleep 1; done
    cp /tmp/p9b.log "$OUT/" 2>/dev/null; cp /tmp/p9b.json* "$OUT/" 2>/dev/null
    tail -n 30 /tmp/p9b.log
    # the GPU in both precisions, on the 9B checkpoint the run left on disk (random weights)
    for p in bf16 f32; do
        timeout 150 build/cuda/glmv bench -m /tmp/glm9b --device cuda --prompt 512 --decode 32 \
            --ctx 1024 --vision 1120x1120 --precision $p --json >"$OUT/bench_cuda_$p.json" 2>>"$OUT/bench.err"
        echo "bench_cuda_$p: $(cut -c1-700 "$OUT/bench_cuda_$p.json")"
    done
    tail -n 5 "$OUT/bench.err"
    ;;
again)
    # after the f32 SGEMM attention: the CUDA ops, parity on CUDA and on this CPU (every test
    # but video_runs, which needs FFmpeg), the vision tower in both precisions
    timeout 120 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    GLMV_TEST_SKIP=video_runs GLMV_PARITY_DEVICE=cuda timeout 180 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    GLMV_TEST_SKIP=video_runs timeout 180 build/release/tests/test_parity >"$OUT/parity_cpu.log" 2>&1
    for p in bf16 f32; do
        timeout 120 build/cuda/glmv bench --device cuda --synthetic --layers 1 --prompt 0 --decode 0 \
            --vision 448x448,1120x1120 --precision $p --json >"$OUT/vision_$p.json" 2>>"$OUT/bench.err"
        echo "vision_$p: $(grep -o '"vision".*\]' "$OUT/vision_$p.json")"
    done
    tail -n 3 "$OUT/bench.err"
    grep -E 'nmse|not ok|RESULT|FAIL' "$OUT/test_cuda.log" | tail -n 30
    for f in parity_cuda parity_cpu; do echo "== $f"; grep -E 'not ok|RESULT|SKIP|worst' "$OUT/$f.log"; done
    ;;
*)
    echo "usage: $0 start|finish|again" >&2
    exit 2
    ;;
esac

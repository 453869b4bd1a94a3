#!/usr/bin/env bash
# device_tp.sh -- tensor parallelism (-tp 2, issue 20) on a machine with two GPUs (the device tool's
# nvidia-h200-x2 or nvidia-h100-x2): the runs that one GPU cannot make.
#
# Built here first (the GPU machine lacks FFmpeg, libmicrohttpd, cJSON... headers):
#   make -j2 CUDA=1 all tests bench-cuda
#   ../shared/tools/device-bundle.sh .dev/cuda build/cuda/glmv build/cuda/tests/test_parity build/cuda/tests/bench_cuda
#   mkdir -p .dev/shared/assets && cp -r ../shared/assets/images .dev/shared/assets/
# then, with .dev carried, `bash scripts/device_tp.sh`:
#   1. test_parity tensor_parallel on CUDA with rank 1 on the second GPU, the sums through NCCL
#      (the demo model split and whole: logits, greedy answers, Q8_0 and Q4_K_M)
#   2. the 9B shape against transformers split 2 ways (scripts/cuda_parity_9b.py with GLMV_TP=2:
#      logits NMSE and greedy tokens; torch and transformers are on the GPU machine)
#   3. decode at 1k context, one stream, 40 layers of the 9B shape, -tp 2 against -tp 1 (issue 20's
#      target: >= 380 tokens/s split, one H200's limit being ~247)
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" build/cuda/tests
cp .dev/cuda/bin/test_parity .dev/cuda/bin/bench_cuda build/cuda/tests/ && cp .dev/cuda/bin/glmv build/cuda/
[ -e ../shared ] || ln -s "$PWD/.dev/shared" ../shared
source .dev/cuda/env.sh
nvidia-smi --query-gpu=index,name,memory.total --format=csv >"$OUT/machine.txt" 2>&1
GLMV_TP_TEST_GPUS=1 GLMV_TEST_ONLY=tensor_parallel GLMV_PARITY_DEVICE=cuda timeout 200 \
    build/cuda/tests/test_parity >"$OUT/parity_tp.log" 2>&1
GLMV_TP=2 timeout 900 python3 scripts/cuda_parity_9b.py --bench build/cuda/tests/bench_cuda --dir /tmp/glm9b \
    >"$OUT/parity_9b_tp2.log" 2>&1
echo "parity_9b rc=$?" >>"$OUT/parity_9b_tp2.log"
for tp in 1 2 1 2; do
    timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 1024 --decode 64 -tp $tp \
        --json >>"$OUT/bench_tp$tp.json" 2>>"$OUT/bench.err"
done
cat "$OUT/machine.txt"
echo "== test_parity tensor_parallel (NCCL)"; grep -E '^ok|not ok|FAIL|RESULT' "$OUT/parity_tp.log"
echo "== 9B parity, -tp 2"; tail -n 6 "$OUT/parity_9b_tp2.log"
for tp in 1 2; do echo "== -tp $tp"; grep -o '"decode": \[{[^}]*' "$OUT/bench_tp$tp.json"; done
tail -n 3 "$OUT/bench.err"

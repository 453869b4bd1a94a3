#!/usr/bin/env bash
# device_quant.sh tests|bench|quality|conc|mmq|glu|qrows -- Q8_0 / Q4_0 / Q4_K_M weights on the GPU machine (one H200), in calls of
# the device tool.
#
# Built here first (the GPU machine lacks FFmpeg, libmicrohttpd, cJSON... headers):
#   make -j2 CUDA=1 all tests
#   ../shared/tools/device-bundle.sh .dev/cuda build/cuda/glmv build/cuda/tests/test_cuda build/cuda/tests/test_parity
#   (strip .dev/cuda/bin/*: the repository and what is carried travel within 64 MiB)
#   mkdir -p .dev/shared/assets && cp -r ../shared/assets/{images,glm41v} .dev/shared/assets/
# then, with .dev carried:
#   tests  test_cuda (the quantized products against their scalar references among the ops),
#          test_parity on CUDA (the Q8_0 GGUF fixture against transformers' BF16 logits)
#   bench  the 9B shape (random BF16 weights, quantized at load): decode at 1k context and a
#          512-token prefill in BF16, Q8_0 and Q4_0, BF16 again without decode graphs
#          (GLMV_CUDA_GRAPHS=0); GPU memory of Q4_0 at 4k context
#   quality  logits NMSE and top-token agreement of Q8_0 / Q4_0 against BF16 on the 9B shape
#   conc   16 and 64 sequences at once (BF16, Q4_0)
#   mmq    the tensor-core kernel for several streams' rows (mmq.cu): test_cuda and test_parity on
#          CUDA, then test_cuda --bench-quant and 16 / 64 sequences (CONC) of Q8_0 and Q4_0 (QUANTS;
#          none: BF16), each with the kernel and without it (GLMV_CUDA_MMQ=0), alternating;
#          MMQ_VARIANTS="auto 1 2 4 0" times its block shapes fixed too
#   glu    one stream's decode on Q8_0 / Q4_0: the gate/up product and SwiGLU in one kernel
#          (GLMV_CUDA_GLU): tests, then with and without it, then the decode step's parts
#   qrows  one stream's products with 1, 2 or 4 weight rows a warp (GLMV_CUDA_QROWS): tests, the
#          products alone, glmv bench alternating, the step's parts
# (.dev/cuda/bin may come packed as .dev/cuda/bin.tar.xz: unpacked here)
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" build/cuda/tests
[ -f .dev/cuda/bin.tar.xz ] && tar -xJf .dev/cuda/bin.tar.xz -C .dev/cuda
cp .dev/cuda/bin/test_* build/cuda/tests/ && cp .dev/cuda/bin/glmv build/cuda/
[ -e ../shared ] || ln -s "$PWD/.dev/shared" ../shared
source .dev/cuda/env.sh
bench() { # NAME ARGS...
    local name=$1; shift
    timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda --json "$@" >"$OUT/$name.json" 2>>"$OUT/bench.err"
    echo "$name: $(cut -c1-900 "$OUT/$name.json")"
}
case "${1:-}" in
tests)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    timeout 200 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    GLMV_TEST_SKIP=video_runs GLMV_PARITY_DEVICE=cuda timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    cat "$OUT/machine.txt"
    echo "== test_cuda"; grep -E 'Q8_0|Q4_0|Q5_0|Q4_K|Q6_K|norm_add|not ok|RESULT|FAIL' "$OUT/test_cuda.log" | tail -40
    echo "== parity on cuda"; grep -E 'gguf|graphs|joined|batch_inv|nmse  |not ok|RESULT|FAIL' "$OUT/parity_cuda.log"
    ;;
bench)
    for q in ${QUANTS:-none q8_0 q4_0 q4_k_m}; do
        bench "decode_$q" --prompt 512 --decode 64 --ctx 1024 --quant $q
    done
    [ -n "${QUANTS:-}" ] || GLMV_CUDA_GRAPHS=0 bench decode_none_nographs --prompt 512 --decode 64 --ctx 1024
    bench mem_q4_k_m_4k --prompt 512 --decode 16 --ctx 4096 --quant q4_k_m
    tail -n 5 "$OUT/bench.err"
    ;;
quality)
    # issue 15's quality figures on the 9B shape (random weights): logits NMSE and top-token
    # agreement of Q8_0 and Q4_0 against the BF16 weights, f32 precision, teacher-forced
    GLMV_TEST_ONLY=quant_quality GLMV_QUALITY_MODEL=synthetic:9b,layers=40 GLMV_PARITY_DEVICE=cuda \
        timeout 300 build/cuda/tests/test_parity >"$OUT/quality_9b.log" 2>&1
    grep -E 'logits nmse|not ok|RESULT|FAIL' "$OUT/quality_9b.log"
    ;;
conc)
    # many sequences at once (issue 13): 512-token prompts, 128 new tokens, BF16 and Q4_0
    # (QUANTS="q8_0 q4_0" for others)
    for q in ${QUANTS:-none q4_0}; do
        bench "conc_$q" --prompt 512 --decode 128 --ctx 1024 --concurrency 1,16,64 --quant $q
    done
    ;;
mmq)
    nvidia-smi --query-gpu=name --format=csv,noheader
    timeout 300 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"
    grep -E 'matmul Q(8|4)_0 m=([0-9]{2,3}) |mmq|not ok|FAIL|passed' "$OUT/test_cuda.log" | tail -30
    GLMV_TEST_SKIP=video_runs,tiny_video_greedy GLMV_PARITY_DEVICE=cuda timeout 200 build/cuda/tests/test_parity \
        >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on cuda: rc $?"
    grep -E 'not ok|FAIL|passed' "$OUT/parity_cuda.log" | tail -8
    # the kernel with its own block shapes, with RW fixed (MMQ_RW=1 2 4), and without it
    for v in ${MMQ_VARIANTS:-auto 0}; do
        case $v in auto) env=GLMV_CUDA_MMQ=1 ;; 0) env=GLMV_CUDA_MMQ=0 ;; *) env=GLMV_CUDA_MMQ_RW=$v ;; esac
        env $env timeout 200 build/cuda/tests/test_cuda --bench-quant >"$OUT/bench_quant_$v.log" 2>&1
    done
    echo "== test_cuda --bench-quant, us a product: ${MMQ_VARIANTS:-auto 0} (0: without the kernel)"
    paste $(for v in ${MMQ_VARIANTS:-auto 0}; do echo "$OUT/bench_quant_$v.log"; done) | grep ' m=' |
        awk '{ line = $1 " " $2 " " $3; for (i = 5; i <= NF; i += 8) line = line " " $i; print line }'
    for q in ${QUANTS:-q8_0 q4_0}; do # none: BF16, beside them (once: the kernel does not apply)
        for e in 1 0; do
            [ "$q" = none ] && [ $e = 0 ] && continue
            GLMV_CUDA_MMQ=$e timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda --json \
                --prompt 512 --decode ${DECODE:-64} --ctx 1024 --concurrency ${CONC:-16,64} --quant $q \
                >"$OUT/conc_${q}_mmq$e.json" 2>>"$OUT/bench.err"
            echo "$q, GLMV_CUDA_MMQ=$e: $(grep -o '"decode".*' "$OUT/conc_${q}_mmq$e.json" | cut -c1-1200)"
        done
    done
    ;;
glu)
    # one stream's decode on Q8_0 / Q4_0 weights: the gate/up product and its SwiGLU in one kernel
    # (k_gemv_q_glu; GLMV_CUDA_GLU=0: the product, then the SwiGLU). Tests first, then glmv bench
    # with and without it alternating (ROUNDS, default 2, while time is left; VARIANTS: other
    # environments to alternate, e.g. "GLMV_CUDA_QFOLD=0 GLMV_CUDA_QFOLD=1", the norms' rounding
    # of their rows for the products), then the decode step's parts on Q4_0 and Q8_0 weights
    # (test_cuda --bench-decode; PARTS_VARIANTS: the environments to run it in)
    S0=$SECONDS
    nvidia-smi --query-gpu=name --format=csv,noheader
    timeout 300 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"
    grep -E 'matmul_glu|quant_rows|fold|not ok|FAIL|passed' "$OUT/test_cuda.log" | tail -24
    GLMV_TEST_ONLY=gguf_q8_0_text,gguf_q8_0_image1,decode_graphs,batch_invariance,tiny_text GLMV_PARITY_DEVICE=cuda \
        timeout 120 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on cuda: rc $?"; grep -E 'not ok|FAIL|passed' "$OUT/parity_cuda.log" | tail -6
    for r in $(seq "${ROUNDS:-2}"); do
        for q in ${QUANTS:-q8_0 q4_0}; do
            for e in ${VARIANTS:-GLMV_CUDA_GLU=0 GLMV_CUDA_GLU=1}; do
                [ $((SECONDS - S0)) -lt ${LIMIT:-480} ] || break 3
                env $e timeout 120 build/cuda/glmv bench --synthetic --layers 40 --device cuda --json --prompt 512 \
                    --decode 64 --ctx 1024 --quant $q >"$OUT/glu.json" 2>>"$OUT/bench.err"
                echo "round $r, $q, $e: $(grep -o '"ctx": 1024[^}]*' "$OUT/glu.json" | head -1)"
            done
        done
    done
    for q in q4_0 q8_0; do
        for e in ${PARTS_VARIANTS:-GLMV_CUDA_GLU=1}; do
            [ $((SECONDS - S0)) -lt ${LIMIT:-480} ] && echo "== $q, $e" && env $e GLMV_BENCH_QUANT=$q timeout 110 \
                build/cuda/tests/test_cuda --bench-decode 2>&1 | tail -n 7
        done
    done
    echo "== $((SECONDS - S0)) s"
    ;;
qrows)
    # one row x through Q8_0 / Q4_0 weights with 1, 2 or 4 weight rows a warp (GLMV_CUDA_QROWS):
    # the bit-for-bit tests, the one-row products alone (test_cuda --bench-quant) for each, then
    # glmv bench's one-stream decode with 1 and auto alternating (ROUNDS, default 1), the decode
    # step's parts on Q4_0 with each
    S0=$SECONDS
    nvidia-smi --query-gpu=name --format=csv,noheader
    GLMV_TEST_ONLY=matmul_quant_rows,matmul_quant_decode,matmul_glu_quant,norm_quant_fold timeout 120 \
        build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"; grep -E 'not ok|FAIL|passed' "$OUT/test_cuda.log" | tail -8
    for r in 1 2 4; do
        echo "== GLMV_CUDA_QROWS=$r: the one-row products"
        GLMV_BENCH_ONE_ROW=1 GLMV_CUDA_QROWS=$r timeout 60 build/cuda/tests/test_cuda --bench-quant 2>&1 | grep 'm=1 '
    done
    for r in $(seq "${ROUNDS:-1}"); do
        for q in ${QUANTS:-q4_0 q8_0}; do
            for v in 1 auto; do
                [ $((SECONDS - S0)) -lt ${LIMIT:-400} ] || break 3
                GLMV_CUDA_QROWS=$v timeout 120 build/cuda/glmv bench --synthetic --layers 40 --device cuda --json \
                    --prompt 512 --decode 64 --ctx 1024 --quant $q >"$OUT/qrows.json" 2>>"$OUT/bench.err"
                echo "round $r, $q, GLMV_CUDA_QROWS=$v: $(grep -o '"ctx": 1024[^}]*' "$OUT/qrows.json" | head -1) $(grep -o '"decode_pick": "[a-z]*"' "$OUT/qrows.json")"
            done
        done
    done
    for v in 1 auto; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-400} ] && echo "== q4_0 step, GLMV_CUDA_QROWS=$v" && GLMV_CUDA_QROWS=$v \
            GLMV_BENCH_QUANT=q4_0 timeout 110 build/cuda/tests/test_cuda --bench-decode 2>&1 | tail -n 7
    done
    echo "== $((SECONDS - S0)) s"
    ;;
*) echo "usage: $0 tests|bench|quality|conc|mmq|glu|qrows" >&2; exit 2 ;;
esac

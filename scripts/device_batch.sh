#!/usr/bin/env bash
# device_batch.sh tests|bench|serving|amx|owed|recheck|top|skinny|kv|stream|figures|rows|explore|ab|dec|ttft|video|videottft|wgmma|decode|dectile|dectrace|bulk|tower|prefill|decab -- continuous batching on the GPU machine (one H200, a
# Xeon with AVX512-BF16 and AMX), and that Xeon's AMX.
#
# Built here first (the GPU machine lacks FFmpeg, libmicrohttpd, cJSON... headers):
#   make -j2 all tests && make -j2 CUDA=1 all tests
#   ../shared/tools/device-bundle.sh .dev/rel build/release/glmv build/release/tests/test_parity build/release/tests/test_ops
#   ../shared/tools/device-bundle.sh .dev/cuda build/cuda/glmv build/cuda/tests/test_cuda build/cuda/tests/test_parity
#   mkdir -p .dev/shared/assets && cp -r ../shared/assets/{images,glm41v,docs} .dev/shared/assets/
# (A call sends the tracked tree, ~43 MiB, and what it carries: 64 MiB in all. Where both bundles do
# not fit, carry .dev/cuda alone, with libpoppler-glib, libcairo, libglib and libgobject replaced by
# empty stand-ins of the same soname and the libraries only they pulled in removed: nothing a GPU
# run calls reads PDFs.)
# then, with .dev carried:
#   tests  test_cuda (attn_decode_batch among the ops), test_parity on CUDA and on the Xeon
#          (batch_invariance: batched generations against each alone), test_ops on the Xeon
#          (matmul_rows bit for bit), the CPU concurrency bench at 16 and at 2 threads
#   bench  the 9B shape (random BF16 weights) on the H200: concurrency 1, 16 and 64 with 512-token
#          prompts and 128 new tokens, then 64 sequences decoding at ~1k context
#   serving  test_cuda, the batching tests of test_parity on CUDA, then 128 requests of 512 + 128
#          tokens served 64 and 16 at a time, prompts mixed into the passes or prefilled alone
#          (glmv bench --requests; needs only .dev/cuda), each with the caches allocated whole and
#          growing in CUDA virtual memory (GLMV_CUDA_VMM=1)
#   amx    test_ops and test_parity through AMX on the Xeon, then bf16 prefill on AMX and AVX512-BF16
#   owed   serving and amx in one call (the CPU's tests run beside the GPU's)
#   recheck  test_ops on the Xeon, the tensor-parallel tests on CUDA, AMX at 2 and 16 threads
#   top    test_cuda (top_k among the ops), the tests of test_parity that read rows' best logits on
#          CUDA, then the same binary with the best logits found on the GPU and
#          with whole rows read (GLMV_WHOLE_LOGITS=1), alternating: 128 requests served 64 and 16 at a
#          time, and steady decode of 1, 16 and 64 streams; the 512-token prefill and the vision
#          tower (1120x1120) with the SwiGLU rounded into the GEMM's input and written out apart
#          (GLMV_CUDA_SWIGLU_GEMM=0); then per-kernel profiles (ncu) of a 512-token prefill of 2
#          layers and of 16 streams' decode steps
#   skinny test_cuda and the CUDA parity tests of batching, then the decode rows of 9 to 16 streams
#          through the tensor-core matrix-vector kernel and through cuBLAS (GLMV_CUDA_SKINNY=1/0),
#          and the prompt's token rows written as bf16, as floats or gathered on the GPU: per-op
#          timings, 128 requests served 64 and 16 at a time, steady decode, the prefill, the vision
#          tower, 8k decode; per-kernel profiles (time, DRAM bytes, L1 hit rate; NO_NCU=1: none)
#   kv     test_cuda and the CUDA parity tests of sessions and batching (bf16 KV caches, the
#          default), then the binary of the commit before (.dev/old/glmv, when carried), this one
#          with float32 caches (GLMV_KV_BF16=0) and with bf16 caches, alternating: steady decode of
#          1, 16 and 64 streams at ~1k keys, one stream at 8k keys; per-kernel profiles of the
#          decode attention at 4k keys (NO_NCU=1: none); with SERVE=1 also 128 requests served 64
#          and 16 at a time and the 512-token prefill
#   stream test_cuda, the CUDA parity tests of sessions with growing caches (GLMV_CUDA_VMM=1: the
#          bf16 caches' preemption and sharing) and of the quantized kernels; then the binaries of
#          the commit before (.dev/old: glmv, test_cuda) and this one, alternating: per-op
#          timings (test_cuda --bench), steady decode of 1, 16 and 64 streams, one stream of Q8_0
#          and Q4_0 weights at 1k keys, one stream at 8k keys; with SERVE=1 (and no tests) 128
#          requests served 64 and 16 at a time instead
#   figures  this binary alone (the figures of #13 and #14 on whatever machine comes): 128 requests
#          served 64 and 16 at a time (twice), steady decode of 1, 16 and 64 streams at ~1k keys,
#          one stream at 8k keys, the 512-token prefill, GPU memory
#   ttft   time to first token for a 1120x1120 PNG and a question on the 9B shape (random weights,
#          the real tokenizer: glmv bench --tokenizer), each stage, and the vision tower alone;
#          transformers' for the same file (scripts/hf_image_ttft.py) when .dev/ttft has its files; with
#          .dev/old/glmv the binary before too, alternating; then (NO_NCU=1: not) the tower's kernels
#   video  video on the GPU: transformers' greedy answer of the tiny checkpoint about a real clip
#          (the fixture of test_parity tiny_video_greedy) and that test on the CPU and CUDA; a
#          60-s 720p clip's time to first token, glmv and transformers (see the mode's comment)
#   wgmma  the Hopper flash kernel (wgmma, head dim 128) against the mma.sync one (GLMV_CUDA_WGMMA=0):
#          test_cuda, the tiny fixtures on CUDA (head dim 128), the attention alone (prefill 512,
#          4,096 and 28,032 rows causal, a 6,400-patch segment), time to first token of the
#          1120x1120 PNG and the tower alone, the 4,096-token prefill, then cuda_parity_9b.py
#          (bench_cuda in .dev/cuda/bin); the kernel's variants (warpgroups, stages) and its ncu
#          sections; WGMMA_PARTS picks among them, WGMMA_VARIANTS the kernels
#   explore  candidate changes behind switches, in one call (see the mode's comment)
#   ab     this binary against .dev/cuda/bin/glmv-prev: the tests, then the first token, prefill, decode,
#          GPU memory (see the mode's comment)
#   dec    steady decode and a lone prompt's passes in a batch (see the mode's comment)
#   dectile  the decode attention through shared memory (GLMV_CUDA_DEC_TILE) against dec_mma_kernel: tests,
#          steady decode, 8k, ncu of the attention, serving; the tower's position table on the GPU
#   dectrace  an nsys timeline of 16 streams' decode step with each decode attention kernel
#   tower  the tower's kernels summed by name (ncu), the first token with a prompt's biases in
#          cuBLASLt's epilogue against written first (GLMV_CUDA_LT_BIAS), the image's host stages
#          (bench_image); TOWER_FIG=1: then figures
#   bulk   the wgmma flash kernel fed by bulk copies, the tower's rotation inside it (GLMV_CUDA_FLASH_BULK):
#          all of test_cuda, the CUDA parity tests, then against =0: the attention alone, the first
#          token of the 1120x1120 PNG, the tower, the 512-token prefill (BULK_FIG=1: then figures)
#   posembed  the tower's position table resampled on the GPU (GLMV_CUDA_POS_EMBED=1, built without
#          a GPU): test_cuda pos_embed, the CUDA parity tests of images with it, then the
#          first token of the 1120x1120 PNG without and with it, alternating (.dev/ttft)
#   prof   per-kernel profiles (ncu: time, DRAM bytes) of decode steps: BF16 1 and 64 streams (of
#          1,000-token prompts: ~1k keys each), Q4_0 one stream (PROF picks: weights+streams[+prompt]);
#          the last step kernel by kernel, the CSVs in $OUT
#   mlp    the prompt's MLP in one op (gate/up written in bf16) and the tower's fused residual norms:
#          the tests, then the first token, the tower and the 512-token prefill against
#          .dev/cuda/bin/glmv-prev and GLMV_CUDA_MLP=0 (see the mode's comment)
#   normtpb  the norms' threads a row at most (GLMV_CUDA_NORM_THREADS): test_cuda and the CUDA parity
#          tests at NORM_TEST_T (default "256 128"), the step with parts left out (BF16, Q4_0) and the
#          first token of the 1120x1120 PNG (the tower) at NORM_T ("1024 512 256 128"), glmv bench's
#          one stream at NORM_BENCH_T ("1024 256")
#   decode the decode step and the flash kernels' variants side by side (DECODE_PARTS: tests parts
#          bench conc attn ttft parity9b; DECODE_VARIANTS: base, noglu, nofuse, prev = .dev/cuda/bin/
#          glmv-prev, a binary of an earlier commit); see the mode's comment
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" build/release/tests build/cuda/tests
# binaries carried xz'd (to fit a call): unpacked in place
[ -f .dev/cuda/bin.tar.xz ] && tar -xJf .dev/cuda/bin.tar.xz -C .dev/cuda
[ -f .dev/rel/bin.tar.xz ] && tar -xJf .dev/rel/bin.tar.xz -C .dev/rel
[ -d .dev/rel ] && cp .dev/rel/bin/test_* build/release/tests/ && cp .dev/rel/bin/glmv build/release/
{ cp .dev/cuda/bin/test_* build/cuda/tests/ 2>/dev/null; cp .dev/cuda/bin/glmv build/cuda/; }
[ -e ../shared ] || ln -s "$PWD/.dev/shared" ../shared
[ -d .dev/rel ] && source .dev/rel/env.sh
source .dev/cuda/env.sh

# the GLM-4 tokenizer (xz'd to fit a call) unpacked into /tmp/tok; with "full", also its
# tokenizer_config.json and the chat template from .dev/shared
tok_dir() {
    mkdir -p /tmp/tok && python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' \
        "$1" /tmp/tok/tokenizer.json
    [ "${2:-}" = full ] && cp .dev/shared/assets/glm4-tokenizer/tokenizer_config.json \
        .dev/shared/assets/glm41v/chat_template.jinja /tmp/tok/
    return 0
}
# .dev/video/ffmin.tar.xz (scripts/device_ffmpeg.sh) in place of the bundle's FFmpeg stand-ins
ffmin_libs() {
    (cd .dev/cuda/lib && rm -f libavcodec.so.59 libavformat.so.59 libavutil.so.57 libswscale.so.6) &&
        tar -C .dev/cuda -xJf .dev/video/ffmin.tar.xz
}

# an ncu CSV (gpu__time_duration, dram__bytes_read, launch__grid_size a kernel) as a table, a
# kernel a line in launch order with its time, DRAM bytes read and their rate: the last decode
# step's kernels (from the last one-row rmsnorm, the step's first layer's input norm, on) and their
# sum, or with $2 the last $2 kernels
ncu_table() {
    python3 - "$1" "${2:-0}" <<'PY'
import csv, sys
T = {"ns": 1e-3, "nsecond": 1e-3, "us": 1, "usecond": 1, "ms": 1e3, "msecond": 1e3}
B = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("  no rows"); sys.exit()
h = rows[0]; ik = h.index("Kernel Name"); iid = h.index("ID"); im = h.index("Metric Name"); iv = h.index("Metric Value"); iu = h.index("Metric Unit")
k = {}
for r in rows[1:]:
    d = k.setdefault(int(r[iid]), {"name": r[ik].split("(")[0].replace("void ", "")[:52], "us": 0, "rd": 0, "grid": 0})
    x = float(r[iv].replace(",", ""))
    if r[im] == "gpu__time_duration.sum": d["us"] = x * T.get(r[iu], 1)
    elif r[im].startswith("dram__bytes_read"): d["rd"] = x * B.get(r[iu], 1)
    elif r[im] == "launch__grid_size": d["grid"] = int(x)
ids = sorted(k)
last = int(sys.argv[2])
if last:
    ids = ids[-last:]
else:
    starts = [i for i in ids if k[i]["name"].startswith("rmsnorm")]
    ids = [i for i in ids if i >= (starts[-1] if starts else ids[0])]
for i in ids:
    d = k[i]
    print("  %-52s grid %6d: %8.2f us, %9.2f MB read, %6.0f GB/s" % (d["name"], d["grid"], d["us"], d["rd"] / 1e6, d["rd"] / d["us"] / 1e3 if d["us"] else 0))
if not last: print("  the step's kernels one after another: %.1f us" % sum(k[i]["us"] for i in ids))
PY
}

# ---- serving: test_cuda, the batching tests of test_parity on CUDA (caches allocated whole, then
# growing in CUDA virtual memory), then 128 requests of 512 + 128 tokens served 64 and 16 at a time,
# prompts mixed into the passes or prefilled alone
# time to first token of the 1120x1120 PNG and a question on the 9B shape (the tokenizer unpacked
# into /tmp/tok first), with the environment assignment $1
ttft_png() {
    echo "== $1: time to first token, the 1120x1120 PNG and a question, 40 layers; the tower alone"
    env "$1" timeout 150 build/cuda/glmv bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok \
        --prompt 0 --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." \
        --vision 1120x1120 2>&1 | grep -v '^glmv: warning'
}

# scripts/cuda_parity_9b.py in what is left until second $1 of the call (30 s at least)
parity9b() {
    echo "== cuda_parity_9b.py"
    local left=$(($1 - SECONDS)); [ $left -gt 30 ] || left=30
    timeout $left python3 scripts/cuda_parity_9b.py --bench .dev/cuda/bin/bench_cuda --dir /tmp/glm9b \
        --json "$OUT/parity9b.json" >"$OUT/parity9b.log" 2>&1; echo "rc=$?"
    tail -n 6 "$OUT/parity9b.log"
}

serving_tests() {
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    timeout 100 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    for v in 0 1; do
        GLMV_CUDA_VMM=$v GLMV_TEST_ONLY=batch_invariance,mixed_prefill,kv_budget,kv_preempted_first,prompt_last_row,tensor_parallel,tensor_parallel_batch,tensor_parallel_budget,prefix_sharing,decode_graphs,tiny_text,tiny_image1 \
            GLMV_PARITY_DEVICE=cuda timeout 120 build/cuda/tests/test_parity >"$OUT/parity_cuda_vmm$v.log" 2>&1
    done
}
serving_bench() {
    timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 --decode 128 \
        --concurrency 64,16 --requests 128 --schedule mixed,separate --json \
        >"$OUT/bench_serving.json" 2>>"$OUT/bench.err"
    # the caches growing in virtual memory against the same allocated whole
    GLMV_CUDA_VMM=1 timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
        --decode 128 --concurrency 64,16 --requests 128 --schedule mixed,separate --json \
        >"$OUT/bench_serving_vmm.json" 2>>"$OUT/bench.err"
}
serving_report() {
    cat "$OUT/machine.txt"
    echo "== test_cuda"; grep -E 'grow_memory|granule|not ok|RESULT|FAIL' "$OUT/test_cuda.log"
    for v in 0 1; do echo "== parity_cuda, GLMV_CUDA_VMM=$v"; grep -E '^ok|not ok|RESULT|FAIL|KV budget' "$OUT/parity_cuda_vmm$v.log"; done
    for f in bench_serving bench_serving_vmm; do
        echo "== $f"
        python3 -c 'import json, sys
for f in json.load(open(sys.argv[1]))["serving"]:
    print(f["streams"], f["schedule"], f["ms"], f["generated_tokens_per_s"], f["passes"], f["rows_per_pass"],
          f["ttft_p50_ms"], f["ttft_max_ms"], f["prompt_passes"], f["prompt_pass_ms"], f["decode_pass_ms"],
          f["pick_ms"], f["device_bytes"])
print("prefill alone", json.load(open(sys.argv[1]))["prefill"])' "$OUT/$f.json"
    done
    tail -n 5 "$OUT/bench.err"
}

# ---- amx: the Xeon's AMX: test_ops (the tile kernel against the scalar one, the GEMM on every
# table), test_parity on the CPU through AMX (GLMV_SIMD=amx), then prefill/decode of 2 layers of the
# 9B shape in bf16 on AMX and on AVX512-BF16, and in f32, 16 threads
amx_tests() {
    { lscpu | grep -E 'Model name|^CPU\(s\)|amx'; } >"$OUT/machine_cpu.txt" 2>&1
    timeout 120 build/release/tests/test_ops >"$OUT/test_ops_cpu.log" 2>&1
    GLMV_SIMD=amx GLMV_TEST_SKIP=video_runs timeout 200 build/release/tests/test_parity >"$OUT/parity_cpu_amx.log" 2>&1
}
amx_bench() {
    for s in amx avx512bf16 amx avx512bf16; do
        GLMV_SIMD=$s timeout 60 build/release/glmv bench --synthetic --layers 2 --prompt 512 --decode 16 \
            --precision bf16 --json >>"$OUT/bench_bf16_$s.json" 2>>"$OUT/bench.err"
    done
    timeout 60 build/release/glmv bench --synthetic --layers 2 --prompt 512 --decode 16 --precision f32 --json \
        >"$OUT/bench_f32.json" 2>>"$OUT/bench.err"
}
amx_report() {
    head -3 "$OUT/machine_cpu.txt"
    echo "== test_ops"; grep -E 'amx|not ok|RESULT|FAIL' "$OUT/test_ops_cpu.log"
    echo "== parity_cpu (GLMV_SIMD=amx)"; grep -E 'not ok|RESULT|FAIL' "$OUT/parity_cpu_amx.log"
    for s in amx avx512bf16; do echo "bf16 $s:"; grep -o '"prefill": {[^}]*\|"decode": {[^}]*' "$OUT/bench_bf16_$s.json"; done
    echo "f32:"; grep -o '"prefill": {[^}]*\|"decode": {[^}]*' "$OUT/bench_f32.json"
    tail -n 3 "$OUT/bench.err"
}

case "${1:-}" in
tests)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    timeout 150 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    GLMV_TEST_SKIP=video_runs GLMV_PARITY_DEVICE=cuda timeout 180 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    GLMV_TEST_SKIP=video_runs timeout 150 build/release/tests/test_parity >"$OUT/parity_cpu.log" 2>&1
    timeout 120 build/release/tests/test_ops >"$OUT/test_ops_cpu.log" 2>&1
    timeout 120 build/release/glmv bench --synthetic --layers 2 --prompt 128 --decode 32 \
        --concurrency 1,4,16 --json >"$OUT/bench_cpu_conc.json" 2>>"$OUT/bench.err"
    timeout 120 build/release/glmv bench --synthetic --layers 2 -t 2 --prompt 64 --decode 32 \
        --concurrency 1,4 --json >"$OUT/bench_cpu_t2.json" 2>>"$OUT/bench.err"
    cat "$OUT/machine.txt"
    echo "== test_cuda"; grep -E 'decode_batch|not ok|RESULT|FAIL' "$OUT/test_cuda.log"
    for f in parity_cuda parity_cpu; do echo "== $f"; grep -E 'batch|not ok|RESULT|FAIL' "$OUT/$f.log"; done
    echo "== test_ops on this cpu"; grep -E 'matmul_rows|not ok|RESULT|FAIL' "$OUT/test_ops_cpu.log"
    echo "== cpu concurrency"; grep -o '"concurrency[^]]*' "$OUT/bench_cpu_conc.json" "$OUT/bench_cpu_t2.json"
    tail -n 3 "$OUT/bench.err"
    ;;
bench)
    timeout 560 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 --decode 128 \
        --concurrency 1,16,64 --json >"$OUT/bench_cuda_conc.json" 2>>"$OUT/bench.err"
    cut -c1-3000 "$OUT/bench_cuda_conc.json"; tail -n 5 "$OUT/bench.err"
    ;;
serving)
    serving_tests; serving_bench; serving_report
    ;;
amx)
    amx_tests; amx_bench; amx_report
    ;;
owed)
    # both of the above in one call: the CPU's tests beside the GPU's (correctness only), then the
    # benchmarks one at a time
    amx_tests & serving_tests; wait
    serving_bench; amx_bench
    serving_report; amx_report
    ;;
recheck)
    # what the 2026-12-05 session could not run (no machine started after its first call):
    # test_ops on the Xeon after its 14-backend fix, the tensor-parallel tests on CUDA (both ranks
    # on the one GPU; the batched split and the KV-budget tests' skip where caches are whole), and
    # AMX against AVX512-BF16 at 2 and 16 threads
    timeout 150 build/release/tests/test_ops >"$OUT/ops.log" 2>&1 &
    GLMV_TEST_ONLY=tensor_parallel,tensor_parallel_batch,tensor_parallel_budget,kv_budget,kv_preempted_first,batch_invariance \
        GLMV_PARITY_DEVICE=cuda timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    wait
    GLMV_TEST_SKIP=video_runs timeout 200 build/release/tests/test_parity >"$OUT/parity_cpu.log" 2>&1
    for t in 2 16; do for s in amx avx512bf16; do
        GLMV_SIMD=$s timeout 80 build/release/glmv bench --synthetic --layers 2 -t $t --prompt 512 --decode 16 \
            --precision bf16 --json >"$OUT/b_${s}_$t.json" 2>>"$OUT/bench.err"
    done; done
    echo "== test_ops"; grep -E "not ok|FAIL|RESULT|amx" "$OUT/ops.log" | head
    echo "== parity cuda"; grep -E "^ok|not ok|FAIL|RESULT|SKIP kv|KV budget" "$OUT/parity_cuda.log" | head -20
    echo "== parity cpu (default SIMD: AMX)"; grep -E "not ok|FAIL|RESULT" "$OUT/parity_cpu.log" | head
    for t in 2 16; do for s in amx avx512bf16; do
        echo "$s t=$t $(grep -o '"prefill": {[^}]*' "$OUT/b_${s}_$t.json") $(grep -o '"ms_per_token": [0-9.]*' "$OUT/b_${s}_$t.json" | head -1)"
    done; done
    tail -n 3 "$OUT/bench.err"
    ;;
top)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    GLMV_TEST_ONLY=top_k,matmul_swiglu timeout 150 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    GLMV_TEST_ONLY=top_logits_rows,top_logits_batched,bf16_tiny_text,bf16_tiny_image1 GLMV_PARITY_DEVICE=cuda timeout 150 \
        build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    for w in 0 1; do
        GLMV_WHOLE_LOGITS=$w timeout 120 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
            --decode 128 --concurrency 64,16 --requests 128 --schedule mixed --json >>"$OUT/serving_w$w.json" 2>>"$OUT/bench.err"
    done
    for w in 0 1; do
        GLMV_WHOLE_LOGITS=$w timeout 120 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
            --decode 32 --ctx 1024 --concurrency 1,16,64 --json >"$OUT/conc_w$w.json" 2>>"$OUT/bench.err"
    done
    for f in 1 0; do
        GLMV_CUDA_SWIGLU_GEMM=$f timeout 100 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
            --prompt-reps 6 --decode 4 --vision 1120x1120 --json >>"$OUT/prefill_f$f.json" 2>>"$OUT/bench.err"
    done
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    [ -n "$NCU" ] && timeout 120 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
        build/cuda/glmv bench --synthetic --layers 2 --device cuda --prompt 512 --decode 1 >"$OUT/ncu_prefill.csv" 2>"$OUT/ncu.err"
    [ -n "$NCU" ] && timeout 120 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
        build/cuda/glmv bench --synthetic --layers 2 --device cuda --prompt 32 --prompt-reps 1 --decode 2 \
        --concurrency 16 >"$OUT/ncu_dec16.csv" 2>>"$OUT/ncu.err"
    cat "$OUT/machine.txt"
    echo "== test_cuda"; grep -E "top_k|not ok|RESULT|FAIL" "$OUT/test_cuda.log"
    echo "== parity cuda"; grep -E "^ok|not ok|FAIL|RESULT|best logits" "$OUT/parity_cuda.log" | head -20
    for w in 0 1; do
        echo "== serving, GLMV_WHOLE_LOGITS=$w"
        python3 -c 'import json, sys
dec = json.JSONDecoder(); t = open(sys.argv[1]).read(); i = 0
while i < len(t):
    if t[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(t, i)
    for f in o["serving"]:
        print(f["streams"], f["schedule"], f["ms"], f["generated_tokens_per_s"], f["passes"], f["ttft_p50_ms"],
              f["prompt_pass_ms"], f["decode_pass_ms"], f["pick_ms"])' "$OUT/serving_w$w.json"
        echo "== steady decode, GLMV_WHOLE_LOGITS=$w"; grep -o '"concurrency[^]]*' "$OUT/conc_w$w.json" | cut -c1-1500
    done
    for f in 1 0; do
        echo "== prefill and vision, GLMV_CUDA_SWIGLU_GEMM=$f"
        grep -o '"prefill": {[^}]*\|"vision": \[[^]]*' "$OUT/prefill_f$f.json"
    done
    echo "== ncu: $(wc -l <"$OUT/ncu_prefill.csv" 2>/dev/null) lines"; tail -n 3 "$OUT/ncu.err" 2>/dev/null
    tail -n 5 "$OUT/bench.err"
    ;;
skinny)
    # the decode rows of several streams (9 to 16) through the tensor-core matrix-vector kernel
    # (GLMV_CUDA_SKINNY=1, the default) and through cuBLAS (0), and the prompt's token rows written
    # as bf16 and widened on the GPU (the default), widened on the host and written as floats
    # (GLMV_EMBED_F32_ROWS=1, as before) or gathered from a table on the GPU (GLMV_EMBED_ON_DEVICE=1),
    # in one call: test_cuda, the CUDA parity tests of batching and of the host's table, the
    # per-op timings (GLMV_CUDA_SKINNY_MAX=0/16), 128 requests served 64 and 16 at a time, steady
    # decode of 1, 16 and 64 streams, the 512-token prefill, one stream at 8k keys, the vision tower;
    # then, unless NO_NCU=1, per-kernel profiles (time, DRAM bytes, L1 hit rate) of 1 and 16 streams'
    # decode steps. The figures go to few files (a call brings back 8).
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    { timeout 150 build/cuda/tests/test_cuda
      GLMV_TEST_ONLY=batch_invariance,mixed_prefill,decode_graphs,prefix_sharing,top_logits_rows,top_logits_batched,kv_budget,embed_on_host,bf16_tiny_text,bf16_tiny_image1 \
          GLMV_PARITY_DEVICE=cuda timeout 150 build/cuda/tests/test_parity; } >"$OUT/tests.log" 2>&1
    for v in 0 16; do
        echo "== ops, GLMV_CUDA_SKINNY_MAX=$v"
        GLMV_BENCH_BATCHED=1 GLMV_CUDA_SKINNY_MAX=$v timeout 60 build/cuda/tests/test_cuda --bench 2>&1 | grep "m="
    done >"$OUT/ops.log"
    B="build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512"
    SERVE="--decode 128 --concurrency 64,16 --requests 128 --json"
    PRE="--prompt-reps 6 --decode 64 --ctx 8192 --vision 1120x1120 --json"
    timeout 150 $B $SERVE --schedule mixed,separate >"$OUT/serving.json" 2>>"$OUT/bench.err"
    GLMV_CUDA_SKINNY=0 timeout 150 $B $SERVE --schedule mixed >"$OUT/serving_s0.json" 2>>"$OUT/bench.err"
    for sk in 1 0; do
        GLMV_CUDA_SKINNY=$sk timeout 120 $B --decode 32 --ctx 1024 --concurrency 1,16,64 --json >"$OUT/conc_s$sk.json" 2>>"$OUT/bench.err"
    done
    timeout 100 $B $PRE >"$OUT/prefill.json" 2>>"$OUT/bench.err"
    GLMV_EMBED_F32_ROWS=1 timeout 100 $B $PRE >"$OUT/prefill_f32rows.json" 2>>"$OUT/bench.err"
    GLMV_EMBED_ON_DEVICE=1 timeout 100 $B $PRE >"$OUT/prefill_ondev.json" 2>>"$OUT/bench.err"
    GLMV_EMBED_F32_ROWS=1 timeout 150 $B $SERVE --schedule mixed >"$OUT/serving_f32rows.json" 2>>"$OUT/bench.err"
    GLMV_EMBED_ON_DEVICE=1 timeout 150 $B $SERVE --schedule mixed >"$OUT/serving_ondev.json" 2>>"$OUT/bench.err"
    [ -n "${NO_NCU:-}" ] || NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    M=gpu__time_duration.sum,dram__bytes_read.sum,l1tex__t_sector_hit_rate.pct,lts__t_sectors_srcunit_tex_op_read.sum
    for n in 1 16; do
        [ -n "${NCU:-}" ] && timeout 100 "$NCU" --clock-control none --metrics $M --csv build/cuda/glmv bench --synthetic \
            --layers 2 --device cuda --prompt 32 --prompt-reps 1 --decode 2 --concurrency $n 2>>"$OUT/bench.err"
    done >"$OUT/ncu_dec.csv"
    cat "$OUT/machine.txt"
    echo "== tests"; grep -E "^ok|not ok|RESULT|FAIL|skinny" "$OUT/tests.log" | head -30
    cat "$OUT/ops.log"
    for f in serving serving_s0 serving_f32rows serving_ondev; do
        echo "== $f"
        python3 -c 'import json, sys
for f in json.load(open(sys.argv[1]))["serving"]:
    print(f["streams"], f["schedule"], f["ms"], f["generated_tokens_per_s"], f["passes"], f["ttft_p50_ms"], f["ttft_max_ms"],
          f["prompt_passes"], f["prompt_pass_ms"], f["decode_pass_ms"], f["pick_ms"], f["device_bytes"])' "$OUT/$f.json"
    done
    for sk in 1 0; do
        echo "== steady decode, GLMV_CUDA_SKINNY=$sk"; grep -o '"concurrency[^]]*' "$OUT/conc_s$sk.json" | cut -c1-2000
    done
    for f in prefill prefill_f32rows prefill_ondev; do
        echo "== $f: prefill, vision, 8k decode"
        grep -o '"prefill": {[^}]*\|"vision": \[[^]]*\|"decode": {[^}]*\|"device_bytes": [0-9]*' "$OUT/$f.json"
    done
    [ -n "${NO_NCU:-}" ] || echo "== ncu: $(wc -l <"$OUT/ncu_dec.csv") lines"
    tail -n 5 "$OUT/bench.err"
    ;;
kv)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    if [ -z "${NO_TESTS:-}" ]; then
        { timeout 150 build/cuda/tests/test_cuda
          GLMV_TEST_ONLY=kv_bf16_sessions,batch_invariance,mixed_prefill,decode_graphs,prefix_sharing,kv_budget,kv_preempted_first,tensor_parallel_budget,embed_on_host,joined_qkv,bf16_tiny_text,bf16_tiny_image1,tiny_text \
              GLMV_PARITY_DEVICE=cuda timeout 200 build/cuda/tests/test_parity; } >"$OUT/tests.log" 2>&1
    fi
    OLD=.dev/old/glmv
    [ -x "$OLD" ] || OLD=
    run() { # label, then the bench's arguments: one process of the binary the label names
        local l=$1; shift
        case $l in
        old) [ -n "$OLD" ] && timeout 150 "$OLD" bench "$@" ;;
        kv0) GLMV_KV_BF16=0 timeout 150 build/cuda/glmv bench "$@" ;;
        kv1) timeout 150 build/cuda/glmv bench "$@" ;;
        esac
    }
    S="--synthetic --layers 40 --device cuda --prompt 512"
    for l in old kv1 kv0 kv1 old; do
        echo "== $l: steady decode, 1/16/64 streams at ~1k keys"
        run $l $S --decode 32 --ctx 1024 --concurrency 1,16,64 --json 2>>"$OUT/bench.err" | grep -o '"concurrency[^]]*' | cut -c1-1500
    done >"$OUT/conc.log"
    for l in old kv1 kv0 kv1 old; do
        echo "== $l: one stream at 8k keys, device bytes"
        run $l $S --decode 64 --ctx 8192 --json 2>>"$OUT/bench.err" | grep -o '"decode": {[^}]*\|"ctx[^]]*\|"device_bytes": [0-9]*'
    done >"$OUT/long.log"
    if [ -n "${SERVE:-}" ]; then
        for l in old kv1 old kv1; do
            echo "== $l: 128 requests served 64 and 16 at a time; the 512-token prefill"
            run $l $S --decode 128 --concurrency 64,16 --requests 128 --schedule mixed --json 2>>"$OUT/bench.err" |
                python3 -c 'import json, sys
d = json.load(sys.stdin)
for f in d["serving"]:
    print(f["streams"], f["ms"], f["generated_tokens_per_s"], f["ttft_p50_ms"], f["prompt_pass_ms"], f["decode_pass_ms"], f["device_bytes"])'
            run $l $S --prompt-reps 6 --decode 0 --json 2>>"$OUT/bench.err" | grep -o '"prefill": {[^}]*'
        done >"$OUT/serving.log"
    fi
    [ -n "${NO_NCU:-}" ] || NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [ -n "${NCU:-}" ]; then
        for l in old kv1; do
            B=build/cuda/glmv
            [ $l = old ] && B=$OLD
            [ -n "$B" ] || continue
            echo "== $l"
            timeout 120 "$NCU" --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
                -k 'regex:dec_mma|combine|kv_append|split_kernel' "$B" bench --synthetic --layers 2 --device cuda \
                --prompt 4000 --prompt-reps 1 --decode 2 --concurrency 1,64 2>>"$OUT/bench.err" |
                awk -F'","' 'NR > 1 && NF > 10 { gsub(/[",]/, "", $NF); split($5, k, "("); sums[k[1] " " $(NF-2)] += $NF; cnt[k[1] " " $(NF-2)]++ }
                             END { for (x in sums) printf "%s: %d calls, mean %.1f\n", x, cnt[x], sums[x] / cnt[x] }' | sort
        done >"$OUT/ncu.log" 2>&1
    fi
    cat "$OUT/machine.txt"
    [ -f "$OUT/tests.log" ] && { echo "== tests"; grep -E "^ok|not ok|RESULT|FAIL|bf16 cache" "$OUT/tests.log" | head -60; }
    cat "$OUT/conc.log" "$OUT/long.log"
    [ -f "$OUT/serving.log" ] && cat "$OUT/serving.log"
    [ -f "$OUT/ncu.log" ] && cat "$OUT/ncu.log"
    tail -n 5 "$OUT/bench.err"
    ;;
stream)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    pick() { [ "$1" = old ] && echo ".dev/old/$2" || echo "build/cuda/$2"; }
    S="--synthetic --layers 40 --device cuda --prompt 512"
    if [ -n "${SERVE:-}" ]; then
        for l in new old new old; do
            echo "== $l: 128 requests of 512 + 128 tokens served 64 and 16 at a time"
            timeout 150 $(pick $l glmv) bench $S --decode 128 --concurrency 64,16 --requests 128 --schedule mixed --json \
                2>>"$OUT/bench.err" | python3 -c 'import json, sys
for f in json.load(sys.stdin)["serving"]:
    print(f["streams"], f["ms"], f["generated_tokens_per_s"], f["ttft_p50_ms"], f["prompt_pass_ms"], f["decode_pass_ms"], f["device_bytes"])'
        done >"$OUT/serving.log"
        cat "$OUT/machine.txt" "$OUT/serving.log"
        tail -n 3 "$OUT/bench.err"
        exit 0
    fi
    { timeout 150 build/cuda/tests/test_cuda
      GLMV_CUDA_VMM=1 GLMV_TEST_ONLY=kv_bf16_sessions,kv_budget,kv_preempted_first,prefix_sharing,batch_invariance,decode_graphs,quant_quality,joined_qkv \
          GLMV_PARITY_DEVICE=cuda timeout 200 build/cuda/tests/test_parity; } >"$OUT/tests.log" 2>&1
    for l in old new old new; do
        echo "== $l"
        timeout 60 $(pick $l tests/test_cuda) --bench 2>&1 | grep " m=1 "
    done >"$OUT/ops.log"
    for l in old new old new; do
        echo "== $l: steady decode, 1/16/64 streams at ~1k keys"
        timeout 150 $(pick $l glmv) bench $S --decode 32 --ctx 1024 --concurrency 1,16,64 --json 2>>"$OUT/bench.err" |
            grep -o '"concurrency[^]]*' | grep -o '"streams": [0-9]*\|"ms_per_step": [0-9.]*\|"aggregate_tokens_per_s": [0-9.]*' | paste -sd' '
    done >"$OUT/conc.log"
    for q in q8_0 q4_0; do
        for l in old new; do
            echo "== $l: $q, one stream at 1k keys"
            timeout 200 $(pick $l glmv) bench $S --decode 64 --ctx 1024 --quant $q --json 2>>"$OUT/bench.err" |
                grep -o '"ctx": [0-9]*, "tokens": [0-9]*, "ms_per_token": [0-9.]*, "tokens_per_s": [0-9.]*'
        done
    done >"$OUT/quant.log"
    for l in old new; do
        echo "== $l: one stream at 8k keys"
        timeout 150 $(pick $l glmv) bench $S --decode 64 --ctx 8192 --json 2>>"$OUT/bench.err" |
            grep -o '"ctx": [0-9]*, "tokens": [0-9]*, "ms_per_token": [0-9.]*, "tokens_per_s": [0-9.]*'
    done >"$OUT/long.log"
    cat "$OUT/machine.txt"
    echo "== tests"; grep -E "^ok|not ok|RESULT|FAIL|KV budget" "$OUT/tests.log" | head -60
    cat "$OUT/ops.log" "$OUT/conc.log" "$OUT/quant.log" "$OUT/long.log"
    tail -n 5 "$OUT/bench.err"
    ;;
figures)
    # this binary's figures of #13, #14 and #15, in order of the time left (LIMIT, seconds): with
    # .dev/ttft, the first token of the 1120x1120 PNG with the tower and the 512-token prefill (twice);
    # 128 requests of 512 + 128 tokens served 64 and 16 at a time (twice); steady decode of 1, 16 and
    # 64 streams at ~1k keys; one stream at 8k keys and GPU memory; one stream of Q4_0 and of Q8_0
    S0=$SECONDS
    left() { [ $((SECONDS - S0)) -lt ${LIMIT:-450} ]; }
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } >"$OUT/machine.txt" 2>&1
    cat "$OUT/machine.txt"
    S="build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512"
    if [ -f .dev/ttft/photo_1120.png ]; then
        tok_dir .dev/ttft/tokenizer.json.xz
        for r in 1 2; do
            left || break
            echo "== the first token of the 1120x1120 PNG and a question; the tower alone; the 512-token prefill"
            timeout 150 $S --tokenizer /tmp/tok --prompt-reps 6 --decode 0 --image .dev/ttft/photo_1120.png \
                --question "Describe this image." --vision 1120x1120 2>&1 | grep -E '^prefill|^time to first|^vision|peak'
        done
    fi
    for r in 1 2; do
        left || break
        echo "== 128 requests of 512 + 128 tokens served 64 and 16 at a time: streams ms tokens/s ttft_p50 prompt_passes_ms decode_passes_ms bytes"
        timeout 150 $S --decode 128 --concurrency 64,16 --requests 128 --schedule mixed --json 2>>"$OUT/bench.err" |
            python3 -c 'import json, sys
for f in json.load(sys.stdin)["serving"]:
    print(f["streams"], f["ms"], f["generated_tokens_per_s"], f["ttft_p50_ms"], f["prompt_pass_ms"], f["decode_pass_ms"], f["device_bytes"])'
    done
    if left; then
        echo "== steady decode, 1/16/64 streams at ~1k keys"
        timeout 150 $S --decode 32 --ctx 1024 --concurrency 1,16,64 --json 2>>"$OUT/bench.err" |
            grep -o '"concurrency[^]]*' | grep -o '"streams": [0-9]*\|"ms_per_step": [0-9.]*\|"aggregate_tokens_per_s": [0-9.]*' | paste -sd' '
    fi
    if left; then
        echo "== one stream at 8k keys; GPU memory"
        timeout 150 $S --decode 64 --ctx 8192 --prompt-reps 2 --json 2>>"$OUT/bench.err" |
            grep -o '"ctx": [0-9]*, "tokens": [0-9]*, "ms_per_token": [0-9.]*, "tokens_per_s": [0-9.]*\|"device_bytes": [0-9]*'
    fi
    for q in q4_0 q8_0; do
        left || break
        echo "== one stream of $q at 1k keys"
        timeout 120 $S --decode 64 --ctx 1024 --quant $q --json 2>>"$OUT/bench.err" |
            grep -o '"ctx": [0-9]*, "tokens": [0-9]*, "ms_per_token": [0-9.]*, "tokens_per_s": [0-9.]*'
    done
    echo "== $((SECONDS - S0)) s"; tail -n 3 "$OUT/bench.err"
    ;;
decab)
    # steady decode of 1, 16 and 64 streams at ~1k keys and 128 requests served 16 at a time, this
    # binary against .dev/old/glmv (an earlier commit's), alternating, ROUNDS times: whether a change
    # moved the BF16 decode, on one machine in the same minutes
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    for r in $(seq "${ROUNDS:-2}"); do
        for b in .dev/old/glmv build/cuda/glmv; do
            [ -x "$b" ] || continue
            echo "== $b: steady decode, 1/16/64 streams at ~1k keys (ms a step)"
            timeout 150 "$b" bench --synthetic --layers 40 --device cuda --prompt 512 --decode 32 --ctx 1024 \
                --concurrency 1,16,64 --json 2>>"$OUT/bench.err" | grep -o '"concurrency[^]]*' |
                grep -o '"streams": [0-9]*\|"ms_per_step": [0-9.]*' | paste -sd' '
            echo "== $b: 128 requests of 512 + 128 tokens served 16 at a time (tokens/s)"
            timeout 150 "$b" bench --synthetic --layers 40 --device cuda --prompt 512 --decode 128 --concurrency 16 \
                --requests 128 --schedule mixed --json 2>>"$OUT/bench.err" |
                python3 -c 'import json, sys
for f in json.load(sys.stdin)["serving"]: print(f["streams"], f["ms"], f["generated_tokens_per_s"])'
        done
    done
    tail -n 3 "$OUT/bench.err"
    ;;
prefill)
    # the 512-token prefill and the first token of the 1120x1120 PNG (.dev/ttft), this binary against
    # .dev/old/glmv (an earlier commit's), alternating, ROUNDS times; then Nsight Compute's view of a
    # 512-token prefill's kernels (2 layers, the first layer's kernels in launch order)
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    tok_dir .dev/ttft/tokenizer.json.xz
    for r in $(seq "${ROUNDS:-3}"); do
        for b in .dev/old/glmv build/cuda/glmv; do
            [ -x "$b" ] || continue
            echo "== $b: the 512-token prefill; the first token of the 1120x1120 PNG and a question (40 layers)"
            timeout 150 "$b" bench --synthetic --layers 40 --device cuda --prompt 512 --tokenizer /tmp/tok --prompt-reps 6 \
                --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." 2>&1 |
                grep -E '^prefill|^time to first'
        done
    done
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [ -n "$NCU" ] && [ -z "${NO_NCU:-}" ]; then
        timeout 120 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv build/cuda/glmv bench \
            --synthetic --layers 2 --device cuda --prompt 512 --decode 0 >"$OUT/ncu_prefill.csv" 2>"$OUT/ncu.err"
        python3 - "$OUT/ncu_prefill.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("  no rows"); sys.exit()
h = rows[0]; k = h.index("Kernel Name"); v = h.index("Metric Value"); u = h.index("Metric Unit")
seq = []
for r in rows[1:]:
    x = float(r[v].replace(",", "")); x = x / 1e3 if r[u] in ("nsecond", "ns") else x if r[u] in ("usecond", "us") else x * 1e3
    seq.append((r[k].split("(")[0].replace("void ", "")[:60], x))
# the first layer of the last 512-row pass: from its first rmsnorm to the second norm_add_norm after it
starts = [i for i, s in enumerate(seq) if s[0].startswith("rmsnorm")]
i0 = starts[-2] if len(starts) > 1 else 0
n = 0; out = []
for s in seq[i0:]:
    out.append(s)
    if s[0].startswith("norm_add_norm"): n += 1
    if n == 2: break
for s in out: print("  %-60s %8.1f us" % s)
print("  a layer: %.1f us" % sum(s[1] for s in out))
PY
    fi
    ;;
rows)
    # where a decode step of m streams goes: test_cuda --bench-decode with GLMV_BENCH_ROWS=m (the
    # step as text.c issues it, parts left out) for 1, 16 and 64 streams (ROWS); then one stream on
    # Q4_0 weights
    nvidia-smi --query-gpu=name --format=csv,noheader
    for m in ${ROWS:-1 16 64}; do
        echo "== $m streams"
        GLMV_BENCH_ROWS=$m timeout 150 build/cuda/tests/test_cuda --bench-decode 2>&1 | tail -n 7
    done
    echo "== one stream, Q4_0"
    GLMV_BENCH_QUANT=q4_0 timeout 100 build/cuda/tests/test_cuda --bench-decode 2>&1 | tail -n 7
    # per-kernel profiles of two layers' decode steps (NO_NCU=1: none): BF16 1, 16 and 64 streams,
    # Q4_0 and Q8_0 one stream; ncu_rows_*.csv in $OUT
    [ -n "${NO_NCU:-}" ] || NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    M=gpu__time_duration.sum,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread
    for v in "none 1" "none 16" "none 64" "q4_0 1" "q8_0 1"; do
        set -- $v
        [ -n "${NCU:-}" ] && timeout 100 "$NCU" --clock-control none --metrics $M --csv build/cuda/glmv bench \
            --synthetic --layers 2 --device cuda --prompt 32 --prompt-reps 1 --decode 2 --ctx 1024 --quant $1 \
            --concurrency $2 >"$OUT/ncu_rows_$1_$2.csv" 2>>"$OUT/ncu.err"
    done
    [ -n "${NCU:-}" ] && { echo "== ncu"; wc -l "$OUT"/ncu_rows_*.csv; tail -n 3 "$OUT/ncu.err"; }
    ;;
explore)
    # candidate changes, each behind its own switch, in one call; PARTS (in that order) of: qrows
    # (device_quant.sh qrows: one row through Q8_0 / Q4_0 weights, 1 or 2-4 weight rows a warp);
    # rows (the decode step of 1, 16 and 64 streams); ttft (the first token with glmv-prev, e.g.
    # libpng's decoding, and this binary); skinny64 (64 streams through the skinny kernel); pchunk
    # (a lone prompt's rows a pass, GLMV_CUDA_PREFILL_CHUNK). XR rounds, LIMIT seconds in all.
    S0=$SECONDS
    B="build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512"
    ex_qrows() { LIMIT=${QLIMIT:-200} bash scripts/device_quant.sh qrows 2>&1 | tail -n 30; }
    ex_rows() {
        for m in ${ROWS:-1 16 64}; do
            echo "== $m streams"
            GLMV_BENCH_ROWS=$m timeout 100 build/cuda/tests/test_cuda --bench-decode 2>&1 | tail -n 7
        done
    }
    ex_ttft() { # the PNG through libdeflate: glmv-prev decodes with libpng
        tok_dir .dev/ttft/tokenizer.json.xz && cp .dev/ttft/tokenizer_config.json .dev/ttft/chat_template.jinja /tmp/tok/
        for r in $(seq "${XR:-2}"); do
            for b in glmv-prev glmv; do
                [ -x .dev/cuda/bin/$b ] && [ $((SECONDS - S0)) -lt ${LIMIT:-470} ] || continue
                printf '== round %s, %s: ' $r $b
                timeout 100 .dev/cuda/bin/$b bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok --prompt 0 \
                    --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." --json 2>>"$OUT/bench.err" |
                    grep -o '"ttft": {[^}]*'
            done
        done
    }
    ex_skinny64() { # 64 streams through the skinny kernel
        GLMV_CUDA_SKINNY_MAX=64 GLMV_TEST_ONLY=matmul_skinny timeout 60 build/cuda/tests/test_cuda >"$OUT/skinny64.log" 2>&1
        echo "== GLMV_CUDA_SKINNY_MAX=64 tests: rc $? $(grep -cE 'not ok|FAIL' "$OUT/skinny64.log") failures"
        for r in $(seq "${XR:-2}"); do
            for v in 16 64; do
                [ $((SECONDS - S0)) -lt ${LIMIT:-470} ] || break 2
                printf '== round %s, 64 streams, GLMV_CUDA_SKINNY_MAX=%s: ' $r $v
                GLMV_CUDA_SKINNY_MAX=$v timeout 80 $B --decode 32 --ctx 1024 --concurrency 64 --json \
                    2>>"$OUT/bench.err" | grep -o '"ms_per_step": [0-9.]*\|"aggregate_tokens_per_s": [0-9.]*' | paste -sd' '
            done
        done
    }
    ex_pchunk() { # a lone prompt's rows a pass (GLMV_CUDA_PREFILL_CHUNK)
        tok_dir .dev/ttft/tokenizer.json.xz && cp .dev/ttft/tokenizer_config.json .dev/ttft/chat_template.jinja /tmp/tok/
        for r in $(seq "${XR:-2}"); do
            for v in 512 1024 2048 4096; do
                [ $((SECONDS - S0)) -lt ${LIMIT:-470} ] || break 2
                printf '== round %s, GLMV_CUDA_PREFILL_CHUNK=%s: ' $r $v
                GLMV_CUDA_PREFILL_CHUNK=$v timeout 100 build/cuda/glmv bench --synthetic --layers 40 \
                    --device cuda --tokenizer /tmp/tok --prompt 0 --decode 0 --image .dev/ttft/photo_1120.png \
                    --question "Describe this image." --json 2>>"$OUT/bench.err" | grep -o '"ttft": {[^}]*'
            done
        done
    }
    for p in ${PARTS:-qrows rows ttft pchunk}; do echo "==== $p ($((SECONDS - S0)) s)"; ex_$p; done
    echo "== $((SECONDS - S0)) s"; tail -n 2 "$OUT/bench.err" 2>/dev/null
    ;;
ab)
    # this binary against .dev/cuda/bin/glmv-prev (a binary of an earlier commit), one process each,
    # alternating (AB_ROUNDS, default 2): test_cuda (matmul_quant_rows and norm_bf16_fold among its
    # tests) and the CUDA parity tests first, and the parity tests again with the switches below;
    # then the time to first token of the 1120x1120 PNG and a question, the 512-token prefill and one
    # stream's decode at 1k keys, each also with the norms' bf16 rows (GLMV_CUDA_BFOLD=1); one
    # stream of Q4_0 with 1 and 2-4 weight rows a warp (GLMV_CUDA_QROWS=auto); GPU memory at 8k keys
    S0=$SECONDS
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    timeout 200 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"; grep -E 'not ok|FAIL|RESULT|passed' "$OUT/test_cuda.log" | tail -n 8
    GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=${AB_TESTS:-tiny_text,tiny_image1,tiny_image2,tiny2_image1,bf16_tiny_image2,joined_qkv,joined_vision,batch_invariance,mixed_prefill,decode_graphs,prompt_last_row,embed_on_host,gguf_q8_0_image1,warmup_changes_nothing} \
        timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA: rc $?"; grep -E 'not ok|FAIL|RESULT|nmse .*joined' "$OUT/parity_cuda.log" | tail -n 8
    GLMV_CUDA_BFOLD=1 GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=${AB_TESTS:-tiny_text,tiny_image1,tiny_image2,tiny2_image1,bf16_tiny_image2,joined_vision,batch_invariance,mixed_prefill,decode_graphs,prompt_last_row} \
        timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda_bfold.log" 2>&1
    echo "== test_parity on CUDA, GLMV_CUDA_BFOLD=1: rc $?"; grep -E 'not ok|FAIL|RESULT' "$OUT/parity_cuda_bfold.log" | tail -n 8
    echo "== $((SECONDS - S0)) s"
    tok_dir .dev/ttft/tokenizer.json.xz && cp .dev/ttft/tokenizer_config.json .dev/ttft/chat_template.jinja /tmp/tok/
    for r in $(seq "${AB_ROUNDS:-2}"); do
        for v in prev new bfold; do
            [ $((SECONDS - S0)) -lt ${LIMIT:-480} ] || break 2
            b=.dev/cuda/bin/glmv; [ $v = prev ] && b=.dev/cuda/bin/glmv-prev
            e=GLMV_NONE=1; [ $v = bfold ] && e=GLMV_CUDA_BFOLD=1
            printf '== round %s, %s: ' $r $v
            env $e timeout 100 $b bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok --prompt 0 --decode 0 \
                --image .dev/ttft/photo_1120.png --question "Describe this image." --json 2>>"$OUT/bench.err" |
                grep -o '"ttft": {[^}]*'
            printf '== round %s, %s, 512 + 64 at 1k: ' $r $v
            env $e timeout 100 $b bench --synthetic --layers 40 --device cuda --prompt 512 --prompt-reps 4 --decode 64 --ctx 1024 \
                --json 2>>"$OUT/bench.err" | grep -o '"prefill": {[^}]*\|"ctx": 1024, "tokens": 64, "ms_per_token": [0-9.]*' | paste -sd' '
        done
    done
    for r in $(seq "${AB_ROUNDS:-2}"); do
        for v in 1 auto; do
            [ $((SECONDS - S0)) -lt ${LIMIT:-480} ] || break 2
            printf '== round %s, Q4_0, GLMV_CUDA_QROWS=%s: ' $r $v
            GLMV_CUDA_QROWS=$v timeout 120 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
                --decode 64 --ctx 1024 --quant q4_0 --json 2>>"$OUT/bench.err" | grep -o '"ctx": 1024[^}]*' | head -n 1
        done
    done
    for b in glmv-prev glmv; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-480} ] || break
        printf '== %s, GPU memory at 8k: ' $b
        timeout 100 .dev/cuda/bin/$b bench --synthetic --layers 40 --device cuda --prompt 512 --decode 16 --ctx 8192 \
            --json 2>>"$OUT/bench.err" | grep -o '"device_bytes": [0-9]*\|"ctx": 8192, "tokens": 16, "ms_per_token": [0-9.]*' | paste -sd' '
    done
    echo "== $((SECONDS - S0)) s"; tail -n 2 "$OUT/bench.err" 2>/dev/null
    ;;
dec)
    # tests first (with .dev/rel, the CPU's batching tests and test_ops on the Xeon too: bundle
    # build/release/tests/test_parity and test_ops into .dev/rel, xz'd as .dev/cuda is); steady
    # decode of 1, 16 and 64 streams (twice); a lone prompt's passes of the
    # prefill chunk's 2,048 rows (glmv_batch_idle_rows, the default) against 512
    # (GLMV_CUDA_PREFILL_CHUNK=512), alternating; one stream at 8k keys; 128 requests served 64 and
    # 16 at a time, 512-row and 2,048-row lone passes
    S0=$SECONDS
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    if [ -d .dev/rel ]; then # the CPU's batch invariance on the Xeon's 16 threads (AMX, AVX512-BF16)
        GLMV_TEST_ONLY=prompt_cuts,lone_prompt_passes,batch_invariance,mixed_prefill,kv_budget,top_logits_batched \
            timeout 200 build/release/tests/test_parity >"$OUT/parity_cpu.log" 2>&1
        echo "== test_parity on the Xeon: rc $?"; grep -E 'not ok|FAIL|RESULT' "$OUT/parity_cpu.log" | tail -n 6
        timeout 200 build/release/tests/test_ops >"$OUT/ops_cpu.log" 2>&1
        echo "== test_ops on the Xeon: rc $?"; grep -E 'not ok|FAIL|RESULT' "$OUT/ops_cpu.log" | tail -n 6
    fi
    timeout 200 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"; grep -E 'not ok|FAIL|RESULT' "$OUT/test_cuda.log" | tail -n 8
    GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=${DEC_TESTS:-tiny_text,tiny_image1,tiny_image2,tiny2_image1,bf16_tiny_image2,joined_qkv,joined_vision,batch_invariance,mixed_prefill,prompt_cuts,lone_prompt_passes,top_logits_batched,decode_graphs,prompt_last_row,embed_on_host,gguf_q8_0_image1,warmup_changes_nothing} \
        timeout 240 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA: rc $?"; grep -E 'not ok|FAIL|RESULT|nmse .*joined' "$OUT/parity_cuda.log" | tail -n 8
    echo "== $((SECONDS - S0)) s"
    S="--synthetic --layers 40 --device cuda --prompt 512"
    conc() { python3 -c 'import json, sys
d = json.load(sys.stdin)
for c in d.get("concurrency", []): print("  %d streams: %.2f ms a step, %.0f tokens/s" % (c["streams"], c["ms_per_step"], c["aggregate_tokens_per_s"]))
for c in d.get("serving", []): print("  %d at a time: %.0f tokens/s, first token p50 %.1f max %.1f ms, %d passes, %.1f rows a pass" % (c["streams"], c["generated_tokens_per_s"], c["ttft_p50_ms"], c["ttft_max_ms"], c["passes"], c["rows_per_pass"]))
for c in d.get("decode", []): print("  one stream at %d keys: %.2f ms a token" % (c["ctx"], c["ms_per_token"]))'; }
    for r in 1 2; do
        for v in GLMV_NONE=1; do
            [ $((SECONDS - S0)) -lt ${LIMIT:-450} ] || break 2
            echo "== round $r, $v: steady decode of 1, 16, 64 streams at ~1k keys"
            env $v timeout 150 build/cuda/glmv bench $S --decode 32 --ctx 1024 --concurrency 1,16,64 --json 2>>"$OUT/bench.err" | conc
        done
    done
    for v in GLMV_CUDA_PREFILL_CHUNK=512 GLMV_NONE=1 GLMV_CUDA_PREFILL_CHUNK=512 GLMV_NONE=1; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-450} ] || break
        echo "== $v: 8 requests of 1,600 + 16 tokens served one at a time"
        env $v timeout 60 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 1600 --decode 16 \
            --concurrency 1 --requests 8 --schedule mixed --json 2>>"$OUT/bench.err" | conc
    done
    for v in GLMV_NONE=1; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-450} ] || break
        echo "== one stream at 8k keys"
        env $v timeout 100 build/cuda/glmv bench $S --decode 64 --ctx 8192 --json 2>>"$OUT/bench.err" | conc
    done
    for v in GLMV_CUDA_PREFILL_CHUNK=512 GLMV_NONE=1; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-450} ] || break
        echo "== $v: 128 requests of 512 + 128 tokens served 64 and 16 at a time"
        env $v timeout 150 build/cuda/glmv bench $S --decode 128 --concurrency 64,16 --requests 128 --schedule mixed \
            --json 2>>"$OUT/bench.err" | conc
    done
    echo "== $((SECONDS - S0)) s"; tail -n 2 "$OUT/bench.err" 2>/dev/null
    ;;
mlp)
    # test_cuda (mlp, the fused norms) and the CUDA parity tests in bf16 precision (where be->mlp
    # takes the prompt's rows), then, alternating, one process each: the binary before
    # (.dev/cuda/bin/glmv-prev), this one with the MLP's ops apart (GLMV_CUDA_MLP=0: the tower's
    # fused norms alone) and this one: the 512-token prefill, the first token of the 1120x1120 PNG
    # and a question (.dev/ttft), the tower alone
    S0=$SECONDS
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    timeout 200 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"; grep -E '^  mlp|no w1|not ok|FAIL|RESULT' "$OUT/test_cuda.log" | tail -n 16
    GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=${MLP_TESTS:-bf16_tiny_text,bf16_tiny_image1,bf16_tiny_image2,bf16_tiny2_image1,bf16_full_tiny_image2,tiny_image1,tiny2_image1,joined_vision,joined_qkv,batch_invariance,mixed_prefill,prompt_cuts,lone_prompt_passes,decode_graphs,prompt_last_row,warmup_changes_nothing} \
        timeout 240 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA: rc $?"; grep -E '^ok|not ok|FAIL|RESULT|logits nmse' "$OUT/parity_cuda.log" | tail -n 40
    echo "== $((SECONDS - S0)) s"
    tok_dir .dev/ttft/tokenizer.json.xz
    for r in 1 2 3; do
        for v in prev mlp0 base; do
            [ $((SECONDS - S0)) -lt ${LIMIT:-450} ] || break 2
            bin=build/cuda/glmv e=GLMV_NONE=1
            [ $v = prev ] && bin=.dev/cuda/bin/glmv-prev
            [ $v = mlp0 ] && e=GLMV_CUDA_MLP=0
            echo "== round $r, $v"
            env $e timeout 150 $bin bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok --prompt 512 \
                --prompt-reps 6 --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." \
                --vision 1120x1120 2>&1 | grep -E '^prefill|^time to first|^vision|peak'
        done
    done
    echo "== $((SECONDS - S0)) s"
    ;;
prof)
    # ncu serialises the kernels (no dependent launch): each kernel's own time and DRAM bytes, two
    # layers, the last decode step printed kernel by kernel. (--ctx fills the one-stream decode's
    # cache only: the streams of --concurrency hold their prompts' keys, PROF's third field.)
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    M=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__grid_size
    for v in ${PROF:-none+1 q4_0+1 none+64+1000}; do
        set -- ${v//+/ } # weights, streams, and the streams' prompt tokens (their keys; default 32)
        echo "== $1 weights, $2 streams of ${3:-32}-token prompts: per kernel of the decode steps (calls, mean us, mean MB read)"
        timeout 150 "$NCU" --clock-control none --metrics $M --csv build/cuda/glmv bench --synthetic --layers 2 \
            --device cuda --prompt ${3:-32} --prompt-reps 1 --decode 4 --ctx 1024 --quant $1 --concurrency $2 \
            >"$OUT/ncu_$1_$2.csv" 2>>"$OUT/ncu.err"
        ncu_table "$OUT/ncu_$1_$2.csv"
    done
    tail -n 3 "$OUT/ncu.err"
    ;;
dectile)
    # the decode attention through shared memory (GLMV_CUDA_DEC_TILE: 0 dec_mma_kernel, 1 dec_tile_kernel
    # in one wave of chunks, 2 dec_tile_kernel in dec_mma_kernel's chunks): its tests, the CUDA parity
    # tests of decoding with it, then alternating in the same minutes: steady decode of 1, 16 and 64
    # streams, one stream at 8k keys, the attention's kernels alone (ncu, 64 streams of ~1k keys),
    # 128 requests served 16 and 64 at a time; with .dev/ttft, the posembed mode's first tokens
    S0=$SECONDS
    left() { [ $((SECONDS - S0)) -lt ${LIMIT:-450} ]; }
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    GLMV_TEST_ONLY=attn_decode_batch,dec_tile,kv_bf16,pos_embed timeout 150 build/cuda/tests/test_cuda 2>&1 |
        grep -E 'dec_tile|pos_embed|not ok|RESULT|FAIL'
    # DT_QUICK=1: no parity tests, variants 0 and 1 alone, no ncu, serving or first tokens
    Q=${DT_QUICK:-0}
    [ "$Q" = 1 ] || { GLMV_CUDA_DEC_TILE=1 GLMV_CUDA_POS_EMBED=1 GLMV_PARITY_DEVICE=cuda \
        GLMV_TEST_ONLY=decode_graphs,batch_invariance,tiny_text,tiny_image1,bf16_tiny_image2,prefix_sharing,kv_budget \
        timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA, GLMV_CUDA_DEC_TILE=1 GLMV_CUDA_POS_EMBED=1: rc $?"; grep -E '^ok|not ok|RESULT' "$OUT/parity_cuda.log"; }
    S="build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512"
    VS="0 1 2"; [ "$Q" = 1 ] && VS="0 1"
    for r in 1 2; do
        for v in $VS; do
            left || break
            echo "== GLMV_CUDA_DEC_TILE=$v: steady decode, 1/16/64 streams at ~1k keys"
            GLMV_CUDA_DEC_TILE=$v timeout 150 $S --decode 32 --ctx 1024 --concurrency 1,16,64 --json 2>>"$OUT/bench.err" |
                grep -o '"concurrency[^]]*' | grep -o '"streams": [0-9]*\|"ms_per_step": [0-9.]*\|"aggregate_tokens_per_s": [0-9.]*' | paste -sd' '
        done
    done
    for v in 0 1 1+4 0 1 1+4; do
        left || break
        t=${v%+*}; st=1; [ "$v" != "$t" ] && st=${v#*+}
        echo "== GLMV_CUDA_DEC_TILE=$t GLMV_CUDA_DEC_MIN_STEPS=$st: one stream at 8k keys"
        GLMV_CUDA_DEC_TILE=$t GLMV_CUDA_DEC_MIN_STEPS=$st timeout 150 $S --decode 64 --ctx 8192 --prompt-reps 2 --json 2>>"$OUT/bench.err" |
            grep -o '"ctx": [0-9]*, "tokens": [0-9]*, "ms_per_token": [0-9.]*, "tokens_per_s": [0-9.]*'
    done
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    [ "$Q" = 1 ] && LIMIT=0
    for v in 0 1; do
        left || break
        echo "== GLMV_CUDA_DEC_TILE=$v: the attention's kernels alone (ncu), 64 streams of 1,000-token prompts, 2 layers"
        GLMV_CUDA_DEC_TILE=$v timeout 150 "$NCU" --clock-control none -k 'regex:dec_|combine' \
            --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size --csv build/cuda/glmv bench \
            --synthetic --layers 2 --device cuda --prompt 1000 --prompt-reps 1 --decode 4 --concurrency 64 \
            >"$OUT/ncu_dec$v.csv" 2>>"$OUT/ncu.err"
        ncu_table "$OUT/ncu_dec$v.csv" 6
    done
    for v in 0 1; do
        left || break
        echo "== GLMV_CUDA_DEC_TILE=$v: 128 requests of 512 + 128 tokens served 64 and 16 at a time: streams ms tokens/s ttft_p50"
        GLMV_CUDA_DEC_TILE=$v timeout 150 $S --decode 128 --concurrency 64,16 --requests 128 --schedule mixed --json 2>>"$OUT/bench.err" |
            python3 -c 'import json, sys
for f in json.load(sys.stdin)["serving"]:
    print(f["streams"], f["ms"], f["generated_tokens_per_s"], f["ttft_p50_ms"])'
    done
    if [ -f .dev/ttft/photo_1120.png ]; then
        tok_dir .dev/ttft/tokenizer.json.xz
        for v in 0 1 0 1; do
            left || break
            echo "== GLMV_CUDA_POS_EMBED=$v: the first token of the 1120x1120 PNG"
            GLMV_CUDA_POS_EMBED=$v timeout 150 build/cuda/glmv bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok \
                --prompt 0 --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." \
                --vision 1120x1120 2>&1 | grep -E '^time to first|^vision'
        done
    fi
    echo "== $((SECONDS - S0)) s"; tail -n 3 "$OUT/bench.err" "$OUT/ncu.err" 2>/dev/null
    ;;
bulk)
    # the wgmma flash kernel fed by one bulk copy a tile from images written first, with the tower's
    # rotation inside the attention (GLMV_CUDA_FLASH_BULK=1, the default) against its cp.async copies
    # after rope_neox (=0), and a prompt's biases in cuBLASLt's epilogue (GLMV_CUDA_LT_BIAS=1, the
    # default) against written before the product (=0): test_cuda (all of it: also the checks of the last session's dec_tile and
    # pos_embed built without a GPU), the CUDA parity tests of images and text, then alternating in the
    # same minutes: the attention alone (test_cuda --bench-attn), the first token of the 1120x1120 PNG
    # with the tower and the 512-token prefill (as figures) with neither, the bulk copies alone and
    # both; then (BULK_FIG=1) the figures mode
    S0=$SECONDS
    left() { [ $((SECONDS - S0)) -lt ${LIMIT:-450} ]; }
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    timeout 240 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"
    grep -E 'bulk|attn_rope|dec_tile|pos_embed|not ok|RESULT|FAIL|failed' "$OUT/test_cuda.log" | head -40
    GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=tiny_text,tiny_image1,bf16_tiny_image2,decode_graphs,batch_invariance,prefix_sharing \
        timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA: rc $?"; grep -E '^ok|not ok|RESULT' "$OUT/parity_cuda.log"
    for r in 1 2; do
        for v in 0 1; do
            left || break
            echo "== GLMV_CUDA_FLASH_BULK=$v: the attention alone"
            GLMV_CUDA_FLASH_BULK=$v timeout 60 build/cuda/tests/test_cuda --bench-attn 2>&1 | grep -E 'TFLOP'
        done
    done
    if [ -f .dev/ttft/photo_1120.png ]; then
        tok_dir .dev/ttft/tokenizer.json.xz
        for v in GLMV_CUDA_FLASH_BULK=0,GLMV_CUDA_LT_BIAS=0 GLMV_CUDA_LT_BIAS=0 GLMV_CUDA_FLASH_BULK=1 \
            GLMV_CUDA_FLASH_BULK=0,GLMV_CUDA_LT_BIAS=0 GLMV_CUDA_LT_BIAS=0 GLMV_CUDA_FLASH_BULK=1; do
            left || break
            echo "== ${v//,/ }: the first token of the 1120x1120 PNG; the tower alone; the 512-token prefill"
            env ${v//,/ } timeout 150 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
                --tokenizer /tmp/tok --prompt-reps 6 --decode 0 --image .dev/ttft/photo_1120.png \
                --question "Describe this image." --vision 1120x1120 2>&1 | grep -E '^prefill|^time to first|^vision|peak'
        done
    fi
    echo "== $((SECONDS - S0)) s"
    [ "${BULK_FIG:-0}" = 1 ] && left && LIMIT=$((${LIMIT:-450} - (SECONDS - S0))) bash "$0" figures
    ;;
tower)
    # the tower's kernels and the first token's stages: test_cuda's products and attention, the CUDA
    # parity tests of images, the tower's kernels summed by name (ncu, one 1120x1120 tower), the first
    # token of the 1120x1120 PNG with a prompt's biases in cuBLASLt's epilogue (the default) and
    # written first (GLMV_CUDA_LT_BIAS=0), alternating (TOWER_ROUNDS, 3), the image's host stages on
    # this machine's CPU (bench_image, when carried in .dev/cuda/bin); then (TOWER_FIG=1) figures
    S0=$SECONDS
    left() { [ $((SECONDS - S0)) -lt ${LIMIT:-450} ]; }
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    GLMV_TEST_ONLY=matmul_bf16_cublas,mlp,flash_bulk,attn_segments,attn_causal_flash timeout 120 build/cuda/tests/test_cuda \
        >"$OUT/test_cuda.log" 2>&1
    echo "== test_cuda: rc $?"; grep -E 'bias|^ok|not ok|RESULT|FAIL' "$OUT/test_cuda.log" | head -30
    GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=tiny_text,tiny_image1,bf16_tiny_image2,joined_vision \
        timeout 150 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA: rc $?"; grep -E '^ok|not ok|RESULT' "$OUT/parity_cuda.log"
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    for v in 1 0; do
        left || break
        echo "== GLMV_CUDA_LT_BIAS=$v: the tower's kernels (ncu, one 1120x1120 tower, each kernel alone)"
        GLMV_CUDA_LT_BIAS=$v timeout 150 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv build/cuda/glmv bench \
            --synthetic --layers 1 --device cuda --prompt 0 --decode 0 --vision 1120x1120 >"$OUT/ncu_tower$v.csv" 2>>"$OUT/ncu.err"
        python3 - "$OUT/ncu_tower$v.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("  no rows"); sys.exit()
h = rows[0]; k = h.index("Kernel Name"); v = h.index("Metric Value"); u = h.index("Metric Unit")
t = collections.defaultdict(float); n = collections.Counter()
for r in rows[1:]:
    x = float(r[v].replace(",", "")); x = x / 1e3 if r[u] in ("nsecond", "ns") else x if r[u] in ("usecond", "us") else x * 1e3
    name = r[k].split("(")[0].replace("void ", "").split("<")[0][:60]; t[name] += x; n[name] += 1
print("  total %.2f ms over %d kernels" % (sum(t.values()) / 1e3, sum(n.values())))
for name, x in sorted(t.items(), key=lambda e: -e[1])[:18]: print("  %8.2f ms %5d  %s" % (x / 1e3, n[name], name))
PY
    done
    if [ -f .dev/ttft/photo_1120.png ]; then
        tok_dir .dev/ttft/tokenizer.json.xz
        for r in $(seq "${TOWER_ROUNDS:-3}"); do
            for v in 0 1; do
                left || break
                echo "== GLMV_CUDA_LT_BIAS=$v: the first token of the 1120x1120 PNG; the 512-token prefill"
                GLMV_CUDA_LT_BIAS=$v timeout 150 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt 512 \
                    --tokenizer /tmp/tok --prompt-reps 6 --decode 0 --image .dev/ttft/photo_1120.png \
                    --question "Describe this image." 2>&1 | grep -E '^prefill|^time to first'
            done
        done
        [ -x .dev/cuda/bin/bench_image ] && for t in 1 16; do
            echo "== bench_image -t $t"; .dev/cuda/bin/bench_image -n 5 -t $t .dev/ttft/photo_1120.png
        done
    fi
    echo "== $((SECONDS - S0)) s"; tail -n 2 "$OUT/ncu.err" 2>/dev/null
    [ "${TOWER_FIG:-0}" = 1 ] && left && LIMIT=$((${LIMIT:-450} - (SECONDS - S0))) bash "$0" figures
    ;;
dectrace)
    # where 16 streams' step goes with each decode attention kernel (GLMV_CUDA_DEC_TILE 0 and 1; DT_TRACE
    # picks others): an nsys timeline of a 2-layer bench, the last decode step's kernels in launch order
    # with their start (from the step's first kernel), duration and the gap before each; under dependent
    # launch a kernel whose blocks wait for room shows as a late start or a long duration
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
    [ -n "$NSYS" ] || { echo "no nsys here"; exit 0; }
    for v in ${DT_TRACE:-0 1}; do
        echo "== GLMV_CUDA_DEC_TILE=$v: 16 streams, 2 layers, the last step"
        GLMV_CUDA_DEC_TILE=$v timeout 150 "$NSYS" profile -q -t cuda --cuda-graph-trace=node -o "$OUT/trace$v" -f true \
            build/cuda/glmv bench --synthetic --layers 2 --device cuda --prompt 512 --decode 8 --ctx 1024 \
            --concurrency 16 >/dev/null 2>>"$OUT/nsys.err"
        timeout 120 "$NSYS" stats -q -r cuda_gpu_trace -f csv -o "$OUT/trace$v" "$OUT/trace$v.nsys-rep" >/dev/null 2>>"$OUT/nsys.err"
        python3 - "$OUT/trace${v}_cuda_gpu_trace.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ks = [r for r in rows if r.get("Name") and not r["Name"].startswith("[CUDA")]
if not ks: print("  no kernels"); sys.exit()
# the last step: from the last one-row-block norm launch that starts a step (rmsnorm) on
starts = [i for i, r in enumerate(ks) if r["Name"].startswith("rmsnorm")]
ks = ks[starts[-2] if len(starts) > 1 else 0:]
t0 = float(ks[0]["Start (ns)"]); prev_end = t0
for r in ks[:60]:
    st, du = float(r["Start (ns)"]), float(r["Duration (ns)"])
    print("  %-44s start %8.1f us  dur %7.1f us  gap %6.1f us" % (r["Name"][:44], (st - t0) / 1e3, du / 1e3, (st - prev_end) / 1e3))
    prev_end = max(prev_end, st + du)
print("  span %.1f us" % ((prev_end - t0) / 1e3))
PY
    done
    tail -n 3 "$OUT/nsys.err"
    ;;
posembed)
    S0=$SECONDS
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    GLMV_TEST_ONLY=pos_embed timeout 100 build/cuda/tests/test_cuda 2>&1 | grep -E 'pos_embed|not ok|RESULT'
    GLMV_CUDA_POS_EMBED=1 GLMV_PARITY_DEVICE=cuda \
        GLMV_TEST_ONLY=tiny_image1,tiny_image2,tiny2_image1,bf16_tiny_image2,bf16_full_tiny_image2,joined_vision \
        timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
    echo "== test_parity on CUDA with GLMV_CUDA_POS_EMBED=1: rc $?"; grep -E 'pos_embed|^ok|not ok|RESULT' "$OUT/parity_cuda.log"
    tok_dir .dev/ttft/tokenizer.json.xz
    for v in 0 1 0 1 0 1; do
        [ $((SECONDS - S0)) -lt ${LIMIT:-400} ] || break
        echo "== GLMV_CUDA_POS_EMBED=$v"
        GLMV_CUDA_POS_EMBED=$v timeout 150 build/cuda/glmv bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok \
            --prompt 0 --decode 0 --image .dev/ttft/photo_1120.png --question "Describe this image." \
            --vision 1120x1120 2>&1 | grep -E '^time to first|^vision'
    done
    ;;
videottft)
    # the 60-s 720p clip's time to first token (as in video), the wgmma attention off and on,
    # alternating; needs only .dev/cuda/bin/glmv, .dev/video/{ffmin.tar.xz,clip720.mp4} and the
    # tokenizer of .dev/shared
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } 2>&1
    ffmin_libs
    tok_dir .dev/shared/assets/glm4-tokenizer/tokenizer.json.xz full
    for v in ${VIDEO_WGMMA:-1 0 1}; do
        echo "== GLMV_CUDA_WGMMA=$v: time to first token, the 60-s 720p clip and a question, 9B shape (40 layers)"
        GLMV_CUDA_WGMMA=$v GLMV_LOG=1 timeout 200 build/cuda/glmv bench --synthetic --layers 40 --device cuda \
            --tokenizer /tmp/tok --prompt 0 --decode 0 --video .dev/video/clip720.mp4 --json 2>"$OUT/video_$v.err" |
            grep -o '"ttft": {[^}]*'
        grep -E 'video .*decode' "$OUT/video_$v.err" | tail -n 1
    done
    ;;
wgmma)
    # WGMMA_PARTS: any of tests attn ncu ttft prefill parity9b (default all)
    parts=" ${WGMMA_PARTS:-tests attn ncu ttft prefill parity9b} "
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } 2>&1
    if [[ $parts == *" tests "* ]]; then
        timeout 150 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
        echo "== test_cuda"; grep -E 'attn_(causal|segments) .*hd=128|not ok|RESULT|FAIL' "$OUT/test_cuda.log" | tail -n 12
        GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=tiny_text,tiny_image1,tiny_image2,tiny2_text,tiny2_image1,bf16_tiny_image2,prompt_last_row,batch_invariance,mixed_prefill,joined_qkv,decode_graphs \
            timeout 150 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
        echo "== test_parity on CUDA"; grep -E 'not ok|RESULT|FAIL' "$OUT/parity_cuda.log" | tail -n 8
        for e in GLMV_CUDA_FLASH_BN=64 GLMV_CUDA_FLASH_WG=1 GLMV_CUDA_FLASH_PP=0; do
            env $e GLMV_TEST_ONLY=attn_causal_flash,attn_segments,kv_bf16 timeout 60 build/cuda/tests/test_cuda >"$OUT/test_cuda_${e//=/-}.log" 2>&1
            echo "== test_cuda (attention), $e"; grep -E 'attn_(causal|segments) .*hd=128|not ok|RESULT|FAIL' "$OUT/test_cuda_${e//=/-}.log" | tail -n 12
        done
    fi
    if [[ $parts == *" attn "* ]]; then
        # variants: mma.sync (wgmma off); wgmma with WG-BN: 2 or 1 warpgroups a block, 64 or 128 keys a
        # tile; pp: the ping-pong variant
        for v in ${WGMMA_VARIANTS:-off 2-64 2-128 1-64 off 2-64 2-128}; do
            echo "== attention alone: $v"
            if [ $v = off ]; then e="GLMV_CUDA_WGMMA=0"; elif [ $v = pp ]; then e="GLMV_CUDA_FLASH_PP=1"
            else e="GLMV_CUDA_FLASH_PP=0 GLMV_CUDA_FLASH_WG=${v%-*} GLMV_CUDA_FLASH_BN=${v#*-}"; fi
            env $e timeout 100 build/cuda/tests/test_cuda --bench-attn 2>&1 | grep -E 'prefill|vision' | tee -a "$OUT/attn_$v.txt"
        done
    fi
    if [[ $parts == *" ncu "* ]]; then
        NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
        [ -n "$NCU" ] && timeout 200 "$NCU" --clock-control none -k regex:flash_wg --launch-count 1 \
            --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section Occupancy \
            build/cuda/glmv bench --synthetic --layers 1 --device cuda --prompt 0 --decode 0 --vision 1120x1120 \
            >"$OUT/ncu_flash.txt" 2>&1
        grep -vE '^==PROF==|^ *-+ *$|^glmv|^model|^vision|^peak' "$OUT/ncu_flash.txt" | grep -E '[0-9]' | head -n 60
    fi
    if [[ $parts == *" ttft "* ]]; then
        tok_dir .dev/shared/assets/glm4-tokenizer/tokenizer.json.xz
        for r in $(seq "${ROUNDS:-2}"); do
            for v in 0 1; do ttft_png GLMV_CUDA_WGMMA=$v; done
        done
    fi
    if [[ $parts == *" prefill "* ]]; then
        for v in 0 1; do
            echo "== GLMV_CUDA_WGMMA=$v: prefill of 4,096 and of 512 tokens, 40 layers"
            for n in ${PREFILL_NS:-4096 512}; do
                GLMV_CUDA_WGMMA=$v timeout 100 build/cuda/glmv bench --synthetic --layers 40 --device cuda --prompt $n \
                    --prompt-reps 4 --decode 0 --ctx 8192 --json 2>>"$OUT/bench.err" | grep -o '"prefill": {[^}]*'
            done
        done
    fi
    if [[ $parts == *" parity9b "* ]]; then
        parity9b "${WGMMA_END:-570}"
    fi
    ;;
normtpb)
    { lscpu | grep -E 'Model name'; nvidia-smi --query-gpu=name --format=csv,noheader; } 2>&1
    T=${NORM_T:-1024 512 256 128}
    for t in ${NORM_TEST_T:-256 128}; do
        GLMV_CUDA_NORM_THREADS=$t timeout 200 build/cuda/tests/test_cuda >"$OUT/test_cuda_$t.log" 2>&1
        printf '== %s threads: test_cuda ' $t; grep -E 'RESULT' "$OUT/test_cuda_$t.log" | tail -n 1
        grep -E '^not ok|FAIL' "$OUT/test_cuda_$t.log" | head -n 5
        GLMV_CUDA_NORM_THREADS=$t GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=tiny_text,tiny_image1,tiny_image2,bf16_tiny_image2,batch_invariance,decode_graphs,gguf_q8_0_text,gguf_q8_0_image1 \
            timeout 200 build/cuda/tests/test_parity >"$OUT/parity_$t.log" 2>&1
        printf '   parity '; grep -E 'RESULT' "$OUT/parity_$t.log" | tail -n 1; grep -E '^not ok' "$OUT/parity_$t.log" | head -n 5
    done
    tok_dir .dev/ttft/tokenizer.json.xz
    for r in $(seq "${ROUNDS:-1}"); do
        for q in none q4_0; do
            for t in $T; do
                echo "== test_cuda --bench-decode $q, $t threads"
                GLMV_BENCH_QUICK=1 GLMV_CUDA_NORM_THREADS=$t GLMV_BENCH_QUANT=${q#none} timeout 60 build/cuda/tests/test_cuda --bench-decode 2>&1 |
                    grep -E 'whole step|products alone' | tee -a "$OUT/parts.txt"
            done
        done
        for q in none q4_0; do
            for t in ${NORM_BENCH_T:-1024 256}; do
                printf '== glmv bench one stream, %s, %s threads: ' $q $t
                GLMV_CUDA_NORM_THREADS=$t timeout 100 build/cuda/glmv bench --synthetic --layers 40 --device cuda \
                    --prompt 512 --decode 64 --ctx 1024 --quant $q --json 2>>"$OUT/bench.err" |
                    grep -o '"decode": \[[^]]*' | head -n 1
            done
        done
        for t in $T; do ttft_png GLMV_CUDA_NORM_THREADS=$t >>"$OUT/ttft.txt"; done
    done
    grep -E '^== |time to first token|vision tower' "$OUT/ttft.txt"
    tail -n 3 "$OUT/bench.err" 2>/dev/null
    ;;
decode)
    # the decode step: DECODE_PARTS any of tests parts bench conc attn ttft parity9b (default: tests
    # parts bench); DECODE_VARIANTS of base (this binary), noglu (GLMV_CUDA_GLU=0: the gate/up
    # product and the SwiGLU apart), prev (.dev/cuda/bin/*-prev: the commit before, when carried);
    # QUANTS: the weights of bench (none q8_0 q4_0 q4_k_m; default none: BF16)
    #   tests    test_cuda, its attention tests with GLMV_CUDA_FLASH_PP=0, the CUDA parity tests
    #   parts    the step with parts left out (test_cuda --bench-decode)
    #   bench    glmv bench's decode at 1k context, two rounds, the variants alternating
    #   conc     steady decode of 1, 16 and 64 streams (--concurrency), base and prev
    #   attn     the flash kernels alone: ping-pong (the default) and not (GLMV_CUDA_FLASH_PP=0)
    #   ttft     time to first token of the 1120x1120 PNG, ping-pong and not, two rounds
    #   parity9b scripts/cuda_parity_9b.py (bench_cuda in .dev/cuda/bin)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } 2>&1
    parts=" ${DECODE_PARTS:-tests parts bench} "
    bins() { # variant -> "env binary-suffix"
        case $1 in base) echo "X=0 ";; noglu) echo "GLMV_CUDA_GLU=0 ";; nofuse) echo "GLMV_CUDA_KV_FUSE=0 ";;
        prev) echo "X=0 -prev";; esac; }
    if [[ $parts == *" tests "* ]]; then
        timeout 150 build/cuda/tests/test_cuda >"$OUT/test_cuda.log" 2>&1
        echo "== test_cuda"; grep -E 'matmul_glu|attn_decode_batch|not ok|RESULT|FAIL' "$OUT/test_cuda.log" | tail -n 14
        GLMV_CUDA_FLASH_PP=0 GLMV_TEST_ONLY=attn_causal_flash,attn_segments timeout 60 build/cuda/tests/test_cuda \
            >"$OUT/test_cuda_pp0.log" 2>&1
        echo "== test_cuda (attention), GLMV_CUDA_FLASH_PP=0"; grep -E 'not ok|RESULT|FAIL' "$OUT/test_cuda_pp0.log" | tail -n 4
        GLMV_CUDA_KV_FUSE=0 GLMV_TEST_ONLY=attn_decode_batch timeout 60 build/cuda/tests/test_cuda >"$OUT/test_cuda_fuse0.log" 2>&1
        echo "== test_cuda (decode attention), GLMV_CUDA_KV_FUSE=0"; grep -E 'not ok|RESULT|FAIL' "$OUT/test_cuda_fuse0.log" | tail -n 4
        GLMV_PARITY_DEVICE=cuda GLMV_TEST_ONLY=tiny_text,tiny_image1,tiny_image2,tiny2_text,bf16_tiny_image2,prompt_last_row,batch_invariance,mixed_prefill,joined_qkv,decode_graphs,prefix_sharing,top_logits_batched \
            timeout 200 build/cuda/tests/test_parity >"$OUT/parity_cuda.log" 2>&1
        echo "== test_parity on CUDA"; grep -E 'not ok|RESULT|FAIL' "$OUT/parity_cuda.log" | tail -n 8
    fi
    if [[ $parts == *" parts "* ]]; then
        for g in 1 0; do
            echo "== test_cuda --bench-decode, GLMV_CUDA_GLU=$g"
            GLMV_CUDA_GLU=$g timeout 120 build/cuda/tests/test_cuda --bench-decode 2>&1 | grep -E 'context|step' | tee -a "$OUT/parts.txt"
        done
    fi
    if [[ $parts == *" bench "* ]]; then
        for r in $(seq "${ROUNDS:-2}"); do
            for q in ${QUANTS:-none}; do # the weights quantized at load (none: BF16)
                for v in ${DECODE_VARIANTS:-base noglu nofuse prev}; do
                    set -- $(bins $v); e=$1 sfx=${2:-}
                    [ -x .dev/cuda/bin/glmv$sfx ] || continue
                    printf '== %s, %s: ' $v $q
                    env ${e//,/ } timeout 100 .dev/cuda/bin/glmv$sfx bench --synthetic --layers 40 --device cuda \
                        --prompt 512 --decode 64 --ctx 1024 --quant $q --json 2>>"$OUT/bench.err" |
                        grep -o '"decode": \[[^]]*' | head -n 1
                done
            done
        done
    fi
    if [[ $parts == *" conc "* ]]; then
        for v in base prev; do
            set -- $(bins $v); e=$1 sfx=${2:-}
            [ -x .dev/cuda/bin/glmv$sfx ] || continue
            echo "== $v: 1, 16 and 64 streams"
            env $e timeout 150 .dev/cuda/bin/glmv$sfx bench --synthetic --layers 40 --device cuda --prompt 512 \
                --decode 32 --ctx 1024 --concurrency 1,16,64 2>&1 | grep -iE 'stream|step' | head -n 8
        done
    fi
    if [[ $parts == *" attn "* ]]; then
        for v in 1 0 1 0; do
            echo "== attention alone, GLMV_CUDA_FLASH_PP=$v"
            GLMV_CUDA_FLASH_PP=$v timeout 100 build/cuda/tests/test_cuda --bench-attn 2>&1 | grep -E 'prefill|vision' | tee -a "$OUT/attn_pp$v.txt"
        done
    fi
    if [[ $parts == *" ttft "* ]]; then
        tok_dir .dev/shared/assets/glm4-tokenizer/tokenizer.json.xz
        for r in 1 2; do
            for v in 1 0; do ttft_png GLMV_CUDA_FLASH_PP=$v; done
        done
    fi
    if [[ $parts == *" parity9b "* ]]; then
        parity9b "${DECODE_END:-570}"
    fi
    ;;
ttft)
    # .dev/ttft: tokenizer.json.xz (../shared/assets/glm4-tokenizer/tokenizer.json, xz'd to fit the
    # call) and photo_1120.png, a 1120x1120 crop (x 640, y 240) of
    # ../shared/assets/images/variants/big_2400x1600.png made with libpng's simplified API
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } 2>&1
    tok_dir .dev/ttft/tokenizer.json.xz
    # with .dev/old/glmv (a binary of an earlier commit that has --tokenizer): both, alternating;
    # this one also after a warm-up run (--warmup, as glmv serve makes one)
    for r in $(seq "${ROUNDS:-2}"); do
        for b in .dev/old/glmv build/cuda/glmv build/cuda/glmv--warmup; do
            bin=${b%--warmup} w=; [ "$bin" != "$b" ] && w=--warmup
            [ -x "$bin" ] || continue
            echo "== $bin $w: time to first token, the 1120x1120 PNG and a question, 40 layers; then the tower alone"
            timeout 200 "$bin" bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok --prompt 0 --decode 0 \
                --image .dev/ttft/photo_1120.png --question "Describe this image." --vision 1120x1120 $w 2>&1 |
                grep -v '^glmv: warning'
        done
    done
    # transformers' time to first token for the same file (scripts/hf_image_ttft.py), when .dev/ttft
    # also holds tokenizer_config.json and chat_template.jinja (from ../shared/assets)
    if [ -f .dev/ttft/tokenizer_config.json ] && [ -f .dev/ttft/chat_template.jinja ]; then
        cp .dev/ttft/tokenizer_config.json .dev/ttft/chat_template.jinja /tmp/tok/
        echo "== transformers: the same file and question (9B shape, random BF16 weights, sdpa)"
        timeout 200 python3 scripts/hf_image_ttft.py .dev/ttft/photo_1120.png /tmp/tok 2>&1 | grep -vi warn | tail -n 4
    fi
    # the host's part: the image file's stages on this machine's CPU (tests/bench_image, when carried)
    [ -x .dev/cuda/bin/bench_image ] && for t in 1 16; do
        echo "== bench_image -t $t"; .dev/cuda/bin/bench_image -n 5 -t $t .dev/ttft/photo_1120.png
    done
    # unless NO_NCU=1: the tower's kernels one by one (ncu runs each alone, cold)
    [ -n "${NO_NCU:-}" ] || NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [ -n "${NCU:-}" ]; then
        timeout 200 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv build/cuda/glmv bench \
            --synthetic --layers 1 --device cuda --prompt 0 --decode 0 --vision 1120x1120 >"$OUT/ncu_vision.csv" 2>"$OUT/ncu.err"
        python3 - "$OUT/ncu_vision.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; k = h.index("Kernel Name"); v = h.index("Metric Value"); u = h.index("Metric Unit")
t = collections.defaultdict(float); n = collections.Counter()
for r in rows[1:]:
    x = float(r[v].replace(",", "")); x = x / 1e3 if r[u] in ("nsecond", "ns") else x if r[u] in ("usecond", "us") else x * 1e3
    name = r[k].split("(")[0].split("<")[0][:60]; t[name] += x; n[name] += 1
print("== the tower's kernels (ncu, one 1120x1120 call): total %.1f ms" % (sum(t.values()) / 1e3))
for name, x in sorted(t.items(), key=lambda e: -e[1])[:14]: print("%8.2f ms %5d  %s" % (x / 1e3, n[name], name))
PY
    fi
    ;;
video)
    # .dev/video: ffmin.tar.xz (scripts/device_ffmpeg.sh: FFmpeg from Debian's source, built with
    # the demuxers, decoders and parsers of common clips only: the GPU machine has no FFmpeg, and
    # Debian's libraries with their dependencies weigh 170 MB; the same sonames and symbol
    # versions, so glmv's binaries load it in place of the bundle's stand-ins), video_frames (scripts/video_frames.c,
    # built here), mmcv_test.npy.gz (that clip's frames from video_frames, those not sampled
    # zeroed), clip720.mp4 (ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 60 -c:v libx264
    # -crf 45 -pix_fmt yuv420p -g 60: 60 s of 720p at 30 fps); .dev/shared/assets: mmcv_test.mp4,
    # llava_extreme_ironing.jpg, glm41v/chat_template.jinja, glm4-tokenizer (tokenizer.json.xz,
    # tokenizer_config.json). Then:
    #   the tiny checkpoint's answer about mmcv_test.mp4 from transformers (gen_video_greedy.py ->
    #   tests/fixtures/tiny/ref_video.json, also under $OUT), and test_parity's video tests against
    #   it on this machine's CPU and on CUDA (bf16, the default, and f32);
    #   the 60-s 720p clip: glmv's time to first token on the 9B shape (random weights, the real
    #   tokenizer), each stage, and transformers' on the frames glmv decodes (hf_video_ttft.py)
    { lscpu | grep -E 'Model name|^CPU\(s\)'; nvidia-smi --query-gpu=name,memory.total --format=csv; } 2>&1
    ffmin_libs
    tok_dir .dev/shared/assets/glm4-tokenizer/tokenizer.json.xz full
    if [ ! -f tests/fixtures/tiny/ref_video.json ] || [ -n "${REGEN:-}" ]; then
        echo "== transformers: the tiny checkpoint's greedy answer about mmcv_test.mp4"
        timeout 200 python3 scripts/gen_video_greedy.py .dev/video/mmcv_test.npy.gz 25 tests/fixtures/tiny 2>&1 | tail -n 3
        cp tests/fixtures/tiny/ref_video.json "$OUT/" 2>/dev/null
    fi
    for d in ${PARITY_DEVS:-cpu cuda cuda-f32}; do
        echo "== test_parity video tests, $d"
        dev=${d%-f32} prec=; [ "$d" = cuda-f32 ] && prec=f32
        GLMV_PARITY_DEVICE=$dev GLMV_PRECISION=$prec GLMV_TEST_ONLY=tiny_video_greedy,video_runs \
            timeout 120 build/cuda/tests/test_parity 2>&1 | grep -E '^ok|not ok|video|step|FAIL|RESULT'
    done
    echo "== the 60-s 720p clip's frames (video_frames: frames fps width height)"
    timeout 120 .dev/video/video_frames .dev/video/clip720.mp4 /tmp/clip720.npy
    for r in $(seq "${ROUNDS:-2}"); do
        echo "== glmv: time to first token, the 60-s 720p clip and a question, 9B shape (40 layers)"
        GLMV_LOG=1 timeout 240 build/cuda/glmv bench --synthetic --layers 40 --device cuda --tokenizer /tmp/tok \
            --prompt 0 --decode 0 --video .dev/video/clip720.mp4 --json 2>"$OUT/glmv_video$r.err" | grep -o '"ttft": {[^}]*\|"device_bytes": [0-9]*'
        grep -E 'video .*decode' "$OUT/glmv_video$r.err" | tail -n 3
    done
    echo "== transformers: the same on the same frames (9B shape, random BF16 weights, sdpa)"
    timeout 300 python3 scripts/hf_video_ttft.py /tmp/clip720.npy 30 /tmp/tok 2>&1 | grep -v Warning | tail -n 6
    ;;
*)
    echo "usage: $0 tests|bench|serving|amx|owed|recheck|top|skinny|kv|stream|figures|rows|explore|ab|ttft|video|videottft|wgmma|decode" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# run_gpu.sh SECONDS [train.py options] -- one GPU run (at most 10 minutes) that makes models/demo: writes
# the held-out set (gen_data.py --eval, preset $PRESET, default v3), trains (train.py: at most SECONDS of
# training, and the whole script done within $DEADLINE seconds, default 560), evaluates with transformers
# (eval_hf.py) and packs checkpoint, held-out set and report into $OUT/demo.tgz, cut into parts of 15 MB
# ($OUT/demo.tgz.part-aa, -ab, ...; the device tool brings back files of at most 16 MB). Install them
# with scripts/demo/install_result.sh. Run from the folder that prepare_carry.sh makes (laid out like
# the repository, plus assets/chat_template.jinja and corpus/*.md from ../shared).
# Needs python3 with torch, torchvision, transformers (5.x), tokenizers, safetensors, pillow, numpy; one GPU.
# The recipe (models/demo/README.md): a fresh run keeping the tokenizer,
#   run_gpu.sh 600 --tokenizer models/demo
# then one continuation from its checkpoint:
#   run_gpu.sh 600 --init models/demo --lr 1e-3 --warmup 100 --min-lr 0.02 \
#       --type-weights count=2,colour=2,position=1.5,size=0.8,digits=3.7
set -u
SECS=${1:-600}
shift
PRESET=${PRESET:-v3}
DEADLINE=${DEADLINE:-560}
OUT=${OUT:-/tmp/demo_out}
mkdir -p "$OUT" report
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DEMO_COMMIT=$(cat COMMIT 2>/dev/null)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
rm -rf tests/fixtures/demo_eval
python3 scripts/demo/gen_data.py --eval tests/fixtures/demo_eval --per-type 50 --preset "$PRESET"
timeout $((DEADLINE + 20)) python3 scripts/demo/train.py --out models/demo --eval-set tests/fixtures/demo_eval \
    --assets assets --corpus corpus/*.md --seconds "$SECS" --deadline "$DEADLINE" --preset "$PRESET" \
    --example models/demo/example.png --report report "$@" 2>&1 | tee report/run_log.txt
rc=${PIPESTATUS[0]}
tar czf "$OUT/demo.tgz" models/demo report tests/fixtures/demo_eval
split -b 15m "$OUT/demo.tgz" "$OUT/demo.tgz.part-" && rm -f "$OUT/demo.tgz"
ls -l "$OUT"
echo "train.py exit $rc"
exit "$rc"

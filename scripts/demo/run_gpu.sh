#!/usr/bin/env bash
# run_gpu.sh SECONDS [train.py options] -- the one GPU run that makes models/demo: writes the held-out
# set (gen_data.py --eval, preset $PRESET, default v2), trains (train.py, SECONDS of training), evaluates
# with transformers (eval_hf.py) and packs checkpoint, held-out set and report into $OUT/demo.tgz
# (install it with scripts/demo/install_result.sh). Run from the folder that prepare_carry.sh makes
# (laid out like the repository, plus assets/chat_template.jinja and corpus/*.md from ../shared).
# Needs python3 with torch, transformers (5.x), tokenizers, safetensors, pillow, numpy, and one GPU.
# The first checkpoint: PRESET=v1 run_gpu.sh 300 --max-image-tokens 100 (scripts at commit 6cd4831).
# Continuing it: run_gpu.sh 330 --init models/demo
set -u
SECS=${1:-300}
shift
PRESET=${PRESET:-v2}
OUT=${OUT:-/tmp/demo_out}
mkdir -p "$OUT" report
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DEMO_COMMIT=$(cat COMMIT 2>/dev/null)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'
rm -rf tests/fixtures/demo_eval
python3 scripts/demo/gen_data.py --eval tests/fixtures/demo_eval --per-type 50 --preset "$PRESET"
python3 scripts/demo/train.py --out models/demo --eval-set tests/fixtures/demo_eval --assets assets \
    --corpus corpus/*.md --seconds "$SECS" --preset "$PRESET" --example models/demo/example.png \
    --report report "$@" 2>&1 | tee report/run_log.txt
rc=${PIPESTATUS[0]}
tar czf "$OUT/demo.tgz" models/demo report tests/fixtures/demo_eval
echo "train.py exit $rc"
exit "$rc"

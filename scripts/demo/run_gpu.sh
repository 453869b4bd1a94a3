#!/usr/bin/env bash
# run_gpu.sh [SECONDS] -- the one GPU run that made models/demo: trains (train.py), evaluates with
# transformers (eval_hf.py) and packs the checkpoint and the report into $OUT/demo.tgz.
# Run from a folder laid out like the repository (scripts/demo, tests/fixtures/demo_eval,
# models/demo/example.png) plus assets/chat_template.jinja (a copy of ../shared/assets/glm41v/) and
# corpus/*.md (extra English text for the BPE: GLM4V.md, STYLE.md, gui_agent_41v.md from ../shared).
# Needs python3 with torch, transformers (5.x), tokenizers, safetensors, pillow, numpy, and one GPU.
set -u
SECS=${1:-300}
OUT=${OUT:-/tmp/demo_out}
mkdir -p "$OUT" report
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'
python3 scripts/demo/train.py --out models/demo --eval-set tests/fixtures/demo_eval --assets assets \
    --corpus corpus/*.md --seconds "$SECS" --example models/demo/example.png --report report 2>&1 |
    tee report/run_log.txt
rc=${PIPESTATUS[0]}
tar czf "$OUT/demo.tgz" models/demo report
echo "train.py exit $rc"
exit "$rc"

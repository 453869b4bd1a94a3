#!/usr/bin/env bash
# prepare_carry.sh [DIR] -- lays out what run_gpu.sh needs on the GPU machine in DIR (default .dev/demo,
# ignored by git): scripts/demo, models/demo (the current checkpoint, for --tokenizer / --init, its
# training record and example.png), assets/chat_template.jinja and corpus/*.md from ../shared. Then,
# with the device tool:
#   run  command: cd .dev/demo && bash scripts/demo/run_gpu.sh 600 --tokenizer models/demo   carry: [".dev/demo"]
# and back here: bash scripts/demo/install_result.sh /work/.device/N/demo.tgz.part-aa
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${1:-.dev/demo}
S=../shared
rm -rf "$D"
mkdir -p "$D/scripts" "$D/models" "$D/assets" "$D/corpus" "$D/tests/fixtures"
cp -r scripts/demo "$D/scripts/"
rm -rf "$D/scripts/demo/__pycache__"
cp -r models/demo "$D/models/"
cp tests/fixtures/demo_hf/train_info.json "$D/models/demo/" 2>/dev/null || true
cp "$S/assets/glm41v/chat_template.jinja" "$D/assets/"
cp "$S/GLM4V.md" "$S/STYLE.md" "$S/assets/docs/gui_agent_41v.md" "$D/corpus/"
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- scripts/demo || echo -dirty)" >"$D/COMMIT"
du -sh "$D"

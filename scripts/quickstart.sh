#!/usr/bin/env bash
# quickstart.sh -- the README's first command: installs the Debian packages, builds glmv, and asks the
# small demo model (models/demo, an 11.7M-parameter Glm4v trained on synthetic shapes and digits) a question
# about the example image shipped in the repository. Prints the reasoning and the answer in seconds.
# Usage: bash scripts/quickstart.sh ["QUESTION"]  (e.g. "What colour is the circle?")
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
make -j2
q=${1:-How many shapes are there?}
echo "+ ./glmv run -m models/demo --image models/demo/example.png -p \"$q\""
./glmv run -m models/demo --image models/demo/example.png -p "$q"

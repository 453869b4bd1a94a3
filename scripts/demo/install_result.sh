#!/usr/bin/env bash
# install_result.sh TGZ|PART -- puts the result of a run_gpu.sh run (its demo.tgz, or the first of its
# parts demo.tgz.part-aa, the others beside it) in place: models/demo
# (weights, configs, tokenizer; README.md and example.png stay), tests/fixtures/demo_eval (the held-out
# set the run made and was evaluated on) and tests/fixtures/demo_hf (HF fixtures, predictions, training
# record and log), then rewrites the model card from those records (card.py). Commit the paths it lists.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f "${1:-}" ] || { echo "usage: $0 demo.tgz|demo.tgz.part-aa" >&2; exit 2; }
T=$(mktemp -d)
case $1 in
    *.part-aa) cat "${1%aa}"?? | tar xz -C "$T" ;;
    *) tar xzf "$1" -C "$T" ;;
esac
for f in config.json generation_config.json preprocessor_config.json video_preprocessor_config.json \
         tokenizer.json tokenizer_config.json chat_template.jinja model.safetensors; do
    install -m 644 "$T/models/demo/$f" models/demo/
done
if [ -f "$T/tests/fixtures/demo_eval/answers.tsv" ]; then
    rm -rf tests/fixtures/demo_eval
    cp -r "$T/tests/fixtures/demo_eval" tests/fixtures/
    chmod -R u+w,go-w tests/fixtures/demo_eval
fi
mkdir -p tests/fixtures/demo_hf
rm -f tests/fixtures/demo_hf/hf_predictions*.tsv
for f in hf_greedy.json hf_eval.json train_info.json train_log.txt "$T"/report/hf_predictions*.tsv; do
    install -m 644 "$T/report/$(basename "$f")" tests/fixtures/demo_hf/
done
python3 scripts/demo/card.py
rm -rf "$T"
git status --short models/demo tests/fixtures/demo_eval tests/fixtures/demo_hf

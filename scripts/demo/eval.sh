#!/usr/bin/env bash
# eval.sh -- glmv's accuracy on the demo model's held-out set (`make eval-demo`).
# For each row of SET/answers.tsv (file, type, question, answer) runs
#   GLMV run -m MODEL --image SET/FILE -p QUESTION --json -n 64
# takes the answer from the JSON "content" (text inside <answer>...</answer> when the tags are there),
# compares it with the expected answer (exact match, case-insensitive) and prints accuracy per question
# type and overall. Environment: GLMV (./glmv), MODEL (models/demo), SET (tests/fixtures/demo_eval),
# LIMIT (rows per type, 0 = all), MIN_ACC (exit 1 when overall or any type is below, e.g. 0.9),
# LOG (per-sample results, default build/eval-demo.tsv). Needs jq.
set -u
cd "$(dirname "$0")/../.."
GLMV=${GLMV:-./glmv}
MODEL=${MODEL:-models/demo}
SET=${SET:-tests/fixtures/demo_eval}
LIMIT=${LIMIT:-0}
MIN_ACC=${MIN_ACC:-0}
LOG=${LOG:-build/eval-demo.tsv}
command -v jq >/dev/null || { echo "eval.sh: jq not found (bash scripts/install-deps.sh)" >&2; exit 2; }
[ -x "$GLMV" ] || { echo "eval.sh: $GLMV not built (make)" >&2; exit 2; }
[ -f "$SET/answers.tsv" ] || { echo "eval.sh: $SET/answers.tsv missing" >&2; exit 2; }
mkdir -p "$(dirname "$LOG")"
printf 'file\ttype\texpected\tgot\tok\tseconds\n' >"$LOG"

declare -A n ok
types=()
t_all=$(date +%s.%N)
while IFS=$'\t' read -r file type question answer _; do
    if [ -z "${n[$type]+x}" ]; then n[$type]=0; ok[$type]=0; types+=("$type"); fi
    if [ "$LIMIT" -gt 0 ] && [ "${n[$type]}" -ge "$LIMIT" ]; then continue; fi
    t0=$(date +%s.%N)
    out=$("$GLMV" run -m "$MODEL" --image "$SET/$file" -p "$question" --json -n 64 2>/dev/null)
    t1=$(date +%s.%N)
    content=$(jq -r '.content // empty' <<<"$out" 2>/dev/null)
    got=$(sed -e 's/.*<answer>//' -e 's/<\/answer>.*//' <<<"$content" | tr -d '\n' | tr 'A-Z' 'a-z' |
          sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    want=$(tr 'A-Z' 'a-z' <<<"$answer")
    n[$type]=$((n[$type] + 1))
    good=0
    if [ "$got" = "$want" ]; then good=1; ok[$type]=$((ok[$type] + 1)); fi
    printf '%s\t%s\t%s\t%s\t%d\t%s\n' "$file" "$type" "$answer" "$got" "$good" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >>"$LOG"
done < <(tail -n +2 "$SET/answers.tsv")

# row: name correct n -> prints the line; returns 1 when below MIN_ACC
row() {
    awk -v t="$1" -v c="$2" -v n="$3" -v m="$MIN_ACC" -v x="${4:-}" 'BEGIN {
        a = n ? c / n : 0; printf "%-10s %8d %6d   %5.1f%%%s\n", t, c, n, 100 * a, x; exit (a < m) }'
}
total=0 correct=0 fail=0
printf '%-10s %8s %6s\n' type correct n
for t in "${types[@]}"; do
    total=$((total + n[$t])); correct=$((correct + ok[$t]))
    row "$t" "${ok[$t]}" "${n[$t]}" || fail=1
done
secs=$(awk -v a="$t_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
row overall "$correct" "$total" "   ($secs s; per-sample results in $LOG)" || fail=1
exit $fail

#!/usr/bin/env bash
# demo_test.sh BUILD_DIR -- glmv on the trained demo model (models/demo) against transformers.
# 1. Parity: for each sample of tests/fixtures/demo_hf/hf_greedy.json (HF greedy outputs, made by
#    scripts/demo/eval_hf.py on a GPU) glmv's greedy output must be identical: the reasoning inside
#    <think>...</think> and the answer inside <answer>...</answer>, and the token ids when glmv's JSON
#    reports them ("token_ids"/"ids"/"tokens" as an array of integers).
#    At least 90% of the samples must match (FP32 or BF16 reference): near-ties exist.
# 2. Accuracy: glmv eval on the first items of each question type of the held-out set; glmv's
#    answers must equal transformers' FP32 ones (hf_predictions_fp32.tsv) on 90% of them; the first
#    checkpoint has only BF16 predictions, near-ties away: 80% (the full set's accuracy: `make eval-demo`).
# Skips when glmv has no `run` command yet or the model is absent. Under GLMV_SANITIZE fewer samples.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
GLMV=$B/glmv
FX=tests/fixtures/demo_hf/hf_greedy.json
pass=0 fail=0 skip=0
finish() { echo "RESULT demo passed=$pass failed=$fail skipped=$skip"; exit 0; }
if [ ! -f models/demo/model.safetensors ] || [ ! -f "$FX" ]; then
    echo "skip: models/demo or $FX missing"; skip=1; finish
fi
if ! "$GLMV" run --help >/dev/null 2>&1; then
    echo "skip: $GLMV has no run command"; skip=1; finish
fi
command -v jq >/dev/null || { echo "skip: jq missing (scripts/install-deps.sh)"; skip=1; finish; }

n=$(jq '.samples | length' "$FX")
same=0
[ -n "${GLMV_SANITIZE:-}" ] && [ "$n" -gt 4 ] && n=4
for ((i = 0; i < n; i++)); do
    img=$(jq -r ".samples[$i].image" "$FX")
    q=$(jq -r ".samples[$i].question" "$FX")
    want=$(jq -r ".samples[$i].hf_fp32_text" "$FX")
    want16=$(jq -r ".samples[$i].hf_bf16_text" "$FX")
    out=$("$GLMV" run -m models/demo --image "$img" -p "$q" --json -n 64 2>/tmp/demo_test_err.$$)
    rc=$?
    if [ $rc -ne 0 ] || ! jq -e . >/dev/null 2>&1 <<<"$out"; then
        echo "not ok parity $img: glmv exited $rc: $(head -c 300 /tmp/demo_test_err.$$)"
        fail=$((fail + 1)); continue
    fi
    got_r=$(jq -r '.reasoning // ""' <<<"$out" | sed -e 's/<\/*think>//g' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    got_a=$(jq -r '.content // ""' <<<"$out" | sed -e 's/<\/*answer>//g' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    key=$(jq -r 'first(("token_ids","ids","tokens") as $k | select(.[$k] | type == "array") | $k) // ""' <<<"$out")
    match=""
    for prec in fp32 bf16; do
        w=$want; [ $prec = bf16 ] && w=$want16
        # HF text: <think>R</think><answer>A</answer>
        want_r=$(sed -n 's/^<think>\(.*\)<\/think>.*/\1/p' <<<"$w")
        want_a=$(sed -n 's/.*<answer>\(.*\)<\/answer>.*/\1/p' <<<"$w")
        [ "$got_r" = "$want_r" ] && [ "$got_a" = "$want_a" ] || continue
        if [ -n "$key" ]; then
            a=$(jq -c ".$key" <<<"$out")
            b=$(jq -c ".samples[$i].hf_${prec}_ids" "$FX")
            b2=$(jq -c ".samples[$i].hf_${prec}_ids[:-1]" "$FX")   # glmv may leave out the stop token
            [ "$a" = "$b" ] || [ "$a" = "$b2" ] || continue
        fi
        match=$prec; break
    done
    if [ -n "$match" ]; then
        same=$((same + 1))
        [ "$match" = bf16 ] && echo "note: $img matches the HF BF16 output (not the FP32 one)"
    else
        echo "differs: $img \"$q\""
        echo "   hf fp32: $want"
        [ "$want16" != "$want" ] && echo "   hf bf16: $want16"
        echo "   glmv:    reasoning=$(jq -c .reasoning <<<"$out") content=$(jq -c .content <<<"$out")"
    fi
done
rm -f /tmp/demo_test_err.$$
echo "parity: $same of $n samples identical to transformers' greedy output (FP32 or BF16)"
# near-ties between the two HF precisions exist (see bf16_fp32_identical in the fixture): allow 10%
if [ $((same * 10)) -ge $((n * 9)) ]; then pass=$((pass + 1)); else
    echo "not ok parity: fewer than 90% identical"; fail=$((fail + 1)); fi

# accuracy: glmv's answers on the first rows of each type must agree with transformers' (hf_predictions.tsv)
per=5
[ -n "${GLMV_SANITIZE:-}" ] && per=2
sub=$(mktemp)
"$GLMV" eval tests/fixtures/demo_eval/items.jsonl -m models/demo -n 64 --limit $per --out "$sub.jsonl"
# file, type, expected, answer (lower case) per item
jq -r '[.id + ".png", .category, .expected, (.got | ascii_downcase)] | @tsv' "$sub.jsonl" >"$sub"
rm -f "$sub.jsonl"
# glmv computes in FP32: compare with HF's FP32 predictions (90%); only BF16 ones for the first checkpoint
pred=tests/fixtures/demo_hf/hf_predictions_fp32.tsv need=9
[ -f "$pred" ] || { pred=tests/fixtures/demo_hf/hf_predictions.tsv; need=8; }
agree=0 rows=0
while IFS=$'\t' read -r file _ _ got _; do
    # the FP32 generate() output of the fixtures where there is one, else the batched predictions
    hf=$(jq -r --arg i "tests/fixtures/demo_eval/$file" 'first(.samples[] | select(.image == $i) | .hf_fp32_text) // ""' "$FX" |
         sed -n 's/.*<answer>\(.*\)<\/answer>.*/\1/p' | tr 'A-Z' 'a-z')
    [ -n "$hf" ] || hf=$(awk -F'\t' -v f="$file" '$1 == f { print $4 }' "$pred")
    rows=$((rows + 1)); [ "$got" = "$hf" ] && agree=$((agree + 1))
done <"$sub"
rm -f "$sub"
echo "accuracy subset: glmv's answer equals transformers' ($(basename "$pred")) on $agree of $rows"
if [ "$rows" -gt 0 ] && [ $((agree * 10)) -ge $((rows * need)) ]; then pass=$((pass + 1)); else
    echo "not ok accuracy: glmv and transformers agree on fewer than ${need}0%"; fail=$((fail + 1)); fi
finish

#!/usr/bin/env bash
# quant_test.sh BUILD_DIR -- --quant q8_0 / q4_0 / q4_k_m through the glmv command on the demo
# model: the weights shrink as the formats say, the answers to held-out questions stay those of
# the BF16 weights (Q8_0: all of the first 10; Q4_0 and Q4_K_M: at least 8 of 10 -- the demo
# model is tiny, and 4 bits cost it more than a 9B model), and bad values are refused; `glmv
# quantize` writes a folder that loads as --quant would have made it. The kernels and
# quantizers are tested in test_ops and test_quant.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
G=$B/glmv
M=models/demo
SET=tests/fixtures/demo_eval
pass=0 fail=0 skip=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1: $2"; fail=$((fail + 1)); }
finish() { echo "RESULT quant_cli passed=$pass failed=$fail skipped=$skip"; exit 0; }
[ -f $M/model.safetensors ] || { echo "skip: no $M"; skip=1; finish; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the weights held: Q8_0 34 bytes and Q4_0 18 bytes per 32 weights of the decoder's matrices
for q in none q8_0 q4_0 q4_k_m; do
    "$G" run -m $M --quant $q -p hi -n 1 -v >/dev/null 2>"$tmp/$q.err" || bad "load_$q" "$(cat "$tmp/$q.err")"
    sed -n "s/.*weights $q (\([0-9.]*\) MiB).*/\1/p" "$tmp/$q.err" >"$tmp/$q.mib"
done
n=$(cat "$tmp/none.mib") q8=$(cat "$tmp/q8_0.mib") q4=$(cat "$tmp/q4_0.mib") qk=$(cat "$tmp/q4_k_m.mib")
if [ -n "$n" ] && [ -n "$q8" ] && [ -n "$q4" ] && [ -n "$qk" ] &&
    awk -v n="$n" -v a="$q8" -v b="$q4" -v c="$qk" 'BEGIN { exit !(a < n && b < a && c < a) }'; then
    ok weights_shrink
else bad weights_shrink "none '$n' q8_0 '$q8' q4_0 '$q4' q4_k_m '$qk' MiB"; fi

# held-out questions: the first 10 rows of the set
same8=0 same4=0 samek=0 rows=0
while IFS=$'\t' read -r file _ question _ _; do
    a=$("$G" run -m $M --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    b=$("$G" run -m $M --quant q8_0 --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    c=$("$G" run -m $M --quant q4_0 --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    d=$("$G" run -m $M --quant q4_k_m --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    rows=$((rows + 1))
    [ -n "$a" ] && [ "$a" = "$b" ] && same8=$((same8 + 1))
    [ -n "$a" ] && [ "$a" = "$c" ] && same4=$((same4 + 1))
    [ -n "$a" ] && [ "$a" = "$d" ] && samek=$((samek + 1))
done < <(tail -n +2 $SET/answers.tsv | head -n 10)
[ "$same8" -eq "$rows" ] && ok q8_0_answers || bad q8_0_answers "$same8 of $rows answers as BF16's"
[ "$same4" -ge 8 ] && ok q4_0_answers || bad q4_0_answers "$same4 of $rows answers as BF16's"
[ "$samek" -ge 8 ] && ok q4_k_m_answers || bad q4_k_m_answers "$samek of $rows answers as BF16's"

# glmv quantize: the demo model written once in Q4_0, then loaded as it is: a smaller file, the
# same answers as --quant q4_0 at load (the same blocks), and the format reported
"$G" quantize $M "$tmp/q4" --type q4_0 -t 2 2>"$tmp/err" && [ -f "$tmp/q4/model.safetensors" ] &&
    [ -f "$tmp/q4/tokenizer.json" ] && [ -f "$tmp/q4/config.json" ] && ok quantize_writes ||
    bad quantize_writes "$(cat "$tmp/err")"
src=$(stat -c %s $M/model.safetensors) dst=$(stat -c %s "$tmp/q4/model.safetensors" 2>/dev/null || echo 0)
[ "$dst" -gt 0 ] && [ "$dst" -lt $((src * 2 / 3)) ] && ok quantize_smaller || bad quantize_smaller "$src -> $dst bytes"
same=0
while IFS=$'\t' read -r file _ question _ _; do
    a=$("$G" run -m $M --quant q4_0 --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    b=$("$G" run -m "$tmp/q4" --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && same=$((same + 1))
done < <(tail -n +2 $SET/answers.tsv | head -n 3)
[ "$same" -eq 3 ] && ok quantized_folder_answers || bad quantized_folder_answers "$same of 3 as --quant q4_0"
"$G" run -m "$tmp/q4" -p hi -n 1 -v >/dev/null 2>"$tmp/err"
grep -q "q4_0 (from the folder" "$tmp/err" && ok quantized_folder_reported || bad quantized_folder_reported "$(grep weights "$tmp/err")"
# the same in Q4_K_M (llama.cpp's recipe: Q4_K, Q6_K, and Q5_0 / Q8_0 for the demo's 384-wide rows)
"$G" quantize $M "$tmp/qk" --type q4_k_m -t 2 2>"$tmp/err" || bad quantize_q4_k_m "$(cat "$tmp/err")"
read -r file _ question _ _ < <(tail -n +2 $SET/answers.tsv | head -n 1)
a=$("$G" run -m $M --quant q4_k_m --image "$SET/$file" -p "$question" --no-reasoning -n 64 2>/dev/null)
b=$("$G" run -m "$tmp/qk" --image "$SET/$file" -p "$question" --no-reasoning -n 64 -v 2>"$tmp/err")
[ -n "$a" ] && [ "$a" = "$b" ] && grep -q "q4_k_m (from the folder" "$tmp/err" && ok quantized_q4_k_m_folder ||
    bad quantized_q4_k_m_folder "'$a' vs '$b': $(grep weights "$tmp/err")"
"$G" run -m "$tmp/q4" --quant q8_0 -p hi -n 1 >/dev/null 2>"$tmp/err"
[ $? -ne 0 ] && grep -q "already q4_0" "$tmp/err" && ok quantize_twice_refused || bad quantize_twice_refused "$(cat "$tmp/err")"
"$G" quantize $M $M --type q8_0 >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "checkpoint's own" "$tmp/err" && ok quantize_into_source_refused ||
    bad quantize_into_source_refused "$(cat "$tmp/err")"
# an output folder whose files link into the checkpoint (a Hugging Face cache's layout): the links
# are replaced, the checkpoint's files left as they were
cp -r $M "$tmp/src" && mkdir -p "$tmp/linked" && ln -s "$tmp/src/config.json" "$tmp/linked/config.json"
sum=$(md5sum <"$tmp/src/config.json")
"$G" quantize "$tmp/src" "$tmp/linked" --type q8_0 >/dev/null 2>"$tmp/err" && [ "$(md5sum <"$tmp/src/config.json")" = "$sum" ] &&
    [ ! -L "$tmp/linked/config.json" ] && [ "$(md5sum <"$tmp/linked/config.json")" = "$sum" ] && ok quantize_links_replaced ||
    bad quantize_links_replaced "$(cat "$tmp/err")"
"$G" quantize $M "$tmp/x" --type q5_k >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "q8_0, q4_0 or q4_k_m" "$tmp/err" && ok quantize_bad_type || bad quantize_bad_type "$(cat "$tmp/err")"
"$G" quantize $M --type q8_0 >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "usage" "$tmp/err" && ok quantize_needs_out || bad quantize_needs_out "$(cat "$tmp/err")"
"$G" quantize tests/fixtures/gguf/tiny-BF16.gguf "$tmp/g" --type q8_0 >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "Hugging Face folder" "$tmp/err" && ok quantize_gguf_refused || bad quantize_gguf_refused "$(cat "$tmp/err")"

# refusals
"$G" run -m $M --quant q5_k -p hi -n 1 >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "expects q8_0, q4_0" "$tmp/err" && ok bad_quant_value || bad bad_quant_value "$(cat "$tmp/err")"
"$G" bench --quant q3 >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "expects q8_0, q4_0" "$tmp/err" && ok bench_bad_quant || bad bench_bad_quant "$(cat "$tmp/err")"
finish

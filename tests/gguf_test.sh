#!/usr/bin/env bash
# gguf_test.sh BUILD_DIR -- the glmv command on llama.cpp's GGUF files of the tiny checkpoint
# (tests/fixtures/gguf): -m FILE.gguf --mmproj FILE and -m DIR, the same greedy answer as the
# safetensors folder for a text prompt, images through the mmproj, the quantized file's format
# reported, and the errors a user meets (an image without an mmproj, a file of the wrong kind,
# a truncated file, --mmproj beside a Hugging Face folder). Parity with transformers is
# test_parity's (gguf_*), the reader's refusals test_gguf's. Needs jq.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
G=$B/glmv
F=tests/fixtures/gguf
T=$F/tiny-BF16.gguf
MM=$F/mmproj-tiny-F16.gguf
IMG=../shared/assets/images/coco_000000039769.png
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ids() { "$G" run "$@" -n 8 --greedy --json 2>"$tmp/err" | jq -c '[.token_ids, .image_tokens]'; }

# text: the GGUF's weights are the checkpoint's, so greedy decoding answers the same
a=$(ids -m tests/fixtures/tiny -p "What is in the picture?") b=$(ids -m $T -p "What is in the picture?")
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok text_same_as_safetensors
else bad text_same_as_safetensors "safetensors $a, gguf $b: $(cat "$tmp/err")"; fi

# an image through the mmproj; -m DIR (one text .gguf and one mmproj*.gguf) finds the same pair
mkdir "$tmp/m"
ln -s "$PWD/$T" "$tmp/m/GLM-4.1V-tiny-BF16.gguf"
ln -s "$PWD/$MM" "$tmp/m/mmproj-GLM-4.1V-tiny-F16.gguf"
a=$(ids -m $T --mmproj $MM --image $IMG -p "What is this?") b=$(ids -m "$tmp/m" --image $IMG -p "What is this?")
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$(jq '.[1]' <<<"$a")" -gt 0 ]; then ok image_file_and_dir
else bad image_file_and_dir "file $a, dir $b: $(cat "$tmp/err")"; fi

# the quantized files run in their blocks, nothing converted, and -v says what they hold
for q in "Q8_0:weights q8_0 (from the GGUF)" "Q4_0:weights q4_0 (from the GGUF)" \
         "Q4_K_M:weights q4_k_m (from the GGUF)"; do
    f=${q%%:*} want=${q#*:}
    if "$G" run -m $F/tiny-$f.gguf -p hi -n 2 -v >/dev/null 2>"$tmp/err" && grep -qF "$want" "$tmp/err"; then
        ok "file_$f"
    else bad "file_$f" "$(cat "$tmp/err")"; fi
done

# glmv tokenize reads the GGUF's vocabulary: the ids of tokenizer.json
txt='[gMASK]<sop><|user|>
Hello, wörld 12345 <think>x</think><answer>y</answer>'
a=$("$G" tokenize -m tests/fixtures/tiny "$txt") b=$("$G" tokenize -m "$tmp/m" "$txt" 2>&1)
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok tokenize_same_ids
else bad tokenize_same_ids "tokenizer.json: $a / gguf: $b"; fi

# chat over a pipe with the GGUF pair
if printf 'Hello\n/quit\n' | "$G" chat -m "$tmp/m" -n 3 >"$tmp/out" 2>"$tmp/err"; then ok chat_pipe
else bad chat_pipe "$(cat "$tmp/err")"; fi

# serve with the GGUF pair: a chat completion over HTTP
"$G" serve -m $T --mmproj $MM --port 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
for _ in $(seq 100); do grep -q listening "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$tmp/serve.out")
if [ -n "$url" ] && curl -sf "${url}v1/chat/completions" -H 'Content-Type: application/json' \
        -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":3,"temperature":0}' >"$tmp/resp.json" &&
        jq -e '.choices[0].message and .usage.completion_tokens >= 1' "$tmp/resp.json" >/dev/null; then
    ok serve_chat
else bad serve_chat "$(cat "$tmp/serve.out" "$tmp/serve.err" "$tmp/resp.json" 2>/dev/null)"; fi
kill $spid 2>/dev/null
wait $spid 2>/dev/null

# expect_fail NAME PATTERN CMD...: exits non-zero, one of its stderr lines matches PATTERN
expect_fail() {
    local name=$1 pat=$2; shift 2
    if "$@" >"$tmp/out" 2>"$tmp/err"; then bad "$name" "exited 0"
    elif grep -q -- "$pat" "$tmp/err"; then ok "$name"
    else bad "$name" "$(cat "$tmp/err")"; fi
}
expect_fail err_image_without_mmproj "give the mmproj\|mmproj file (--mmproj" \
    "$G" run -m $T --image $IMG -p "What is this?" -n 2
expect_fail err_mmproj_as_model 'general.architecture is "clip"' "$G" run -m $MM -p hi -n 2
expect_fail err_model_as_mmproj 'general.architecture is "glm4"' "$G" run -m $T --mmproj $F/tiny-Q8_0.gguf -p hi -n 2
head -c 300000 $T >"$tmp/cut.gguf"
expect_fail err_truncated "truncated" "$G" run -m "$tmp/cut.gguf" -p hi -n 2
head -c 100 $MM >"$tmp/cut-mmproj.gguf"
expect_fail err_truncated_mmproj "truncated" "$G" run -m $T --mmproj "$tmp/cut-mmproj.gguf" -p hi -n 2
printf 'GGUF\003\000\000\000not really' >"$tmp/junk.gguf"
expect_fail err_missing_file "no-such.gguf: No such file" "$G" run -m "$tmp/no-such.gguf" -p hi -n 2
expect_fail err_junk "junk.gguf" "$G" run -m "$tmp/junk.gguf" -p hi -n 2
expect_fail err_mmproj_with_folder "an mmproj goes with a GGUF text model" \
    "$G" run -m tests/fixtures/tiny --mmproj $MM -p hi -n 2
ln -s "$PWD/$F/tiny-Q8_0.gguf" "$tmp/m/GLM-4.1V-tiny-Q8_0.gguf"
expect_fail err_two_models_in_folder "more than one" "$G" run -m "$tmp/m" -p hi -n 2

echo "RESULT gguf_cli passed=$pass failed=$fail skipped=0"
[ $fail -eq 0 ]

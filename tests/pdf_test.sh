#!/usr/bin/env bash
# pdf_test.sh BUILD_DIR -- PDF documents as pages through the glmv command on the demo model:
# run --pdf/--pages (the page read is the one asked for: the demo model answers 4 shapes on the
# example page and 267 on the digits page), chat's /pdf, --max-image-tokens shrinking pages,
# and the errors a user meets (damaged, encrypted, 2,000 pages, a 720:1 page, a missing file,
# bad ranges, --pages without --pdf), each with its message and a non-zero status.
# Fixtures: tests/fixtures/pdf (scripts/gen_pdf_fixtures.py).
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
G=$B/glmv
M=models/demo
F=tests/fixtures/pdf
pass=0 fail=0 skip=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1: $2"; fail=$((fail + 1)); }
finish() { echo "RESULT pdf_cli passed=$pass failed=$fail skipped=$skip"; exit 0; }
[ -f $M/model.safetensors ] || { echo "skip: no $M"; skip=1; finish; }
command -v jq >/dev/null || { echo "skip: jq missing (scripts/install-deps.sh)"; skip=1; finish; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# answer ARGS... -> the answer alone (--no-reasoning), status in $rc
answer() { out=$("$G" run -m $M "$@" --no-reasoning -n 64 2>"$tmp/err"); rc=$?; }

answer --pdf $F/example.pdf -p "How many shapes are there?"
[ $rc -eq 0 ] && [ "$out" = 4 ] && ok run_pdf_page || bad run_pdf_page "rc $rc, '$out' $(cat "$tmp/err")"
answer --pdf $F/pages.pdf --pages 2 -p "What number is written in the image?"
[ $rc -eq 0 ] && [ "$out" = 267 ] && ok run_pdf_pages_selects || bad run_pdf_pages_selects "rc $rc, '$out' $(cat "$tmp/err")"
answer --pdf $F/pages.pdf --pages 1 -p "How many shapes are there?"
[ $rc -eq 0 ] && [ "$out" = 4 ] && ok run_pdf_pages_first || bad run_pdf_pages_first "rc $rc, '$out' $(cat "$tmp/err")"

# every page is an image of the prompt; fewer tokens a page with --max-image-tokens
t3=$("$G" run -m $M --pdf $F/pages.pdf -p "hi" -n 1 --json 2>/dev/null | jq .image_tokens)
t1=$("$G" run -m $M --pdf $F/pages.pdf --pages 1 -p "hi" -n 1 --json 2>/dev/null | jq .image_tokens)
ts=$("$G" run -m $M --pdf $F/pages.pdf --pages 1 --max-image-tokens 16 -p "hi" -n 1 --json 2>/dev/null | jq .image_tokens)
if [ -n "$t3" ] && [ -n "$t1" ] && [ -n "$ts" ] && [ "$t3" -gt "$t1" ] && [ "$ts" -le 16 ] && [ "$ts" -lt "$t1" ]; then
    ok pdf_image_tokens
else bad pdf_image_tokens "3 pages $t3, page 1 $t1, page 1 at most 16: $ts"; fi

# errors: status and message
expect_err() { # name want_rc pattern args...
    local name=$1 want=$2 pat=$3; shift 3
    "$G" run -m $M "$@" -p "How many shapes are there?" -n 4 >"$tmp/out" 2>"$tmp/err"
    local r=$?
    if [ $r -eq "$want" ] && grep -q -- "$pat" "$tmp/err" && [ ! -s "$tmp/out" ]; then ok "$name"
    else bad "$name" "status $r (want $want), stderr: $(head -c 300 "$tmp/err")"; fi
}
expect_err pdf_damaged 1 "damaged" --pdf $F/broken.pdf
expect_err pdf_encrypted 1 "encrypted" --pdf $F/encrypted.pdf
expect_err pdf_too_many_pages 1 "2000 pages: at most 1024" --pdf $F/many_pages.pdf
expect_err pdf_thin_page 1 "aspect ratio 720" --pdf $F/huge_page.pdf
expect_err pdf_missing 1 "nothere.pdf" --pdf $F/nothere.pdf
expect_err pdf_not_a_pdf 1 "not a PDF" --pdf $M/example.png
expect_err pdf_page_beyond 1 "page 4 is beyond the document's 3 pages" --pdf $F/pages.pdf --pages 2,4
expect_err pdf_bad_range 1 "expected page numbers" --pdf $F/pages.pdf --pages one
expect_err pdf_pages_without_pdf 2 "follows the --pdf" --pages 1 --image $M/example.png
"$G" run -m $M --pdf $F/many_pages.pdf --pages 1500 -p "hi" -n 1 >/dev/null 2>"$tmp/err" &&
    ok pdf_page_of_many || bad pdf_page_of_many "$(cat "$tmp/err")"

# chat: /pdf PATH PAGES attaches to the next message
out=$(printf '/pdf %s 2\nWhat number is written in the image?\n' $F/pages.pdf | "$G" chat -m $M -n 64 2>"$tmp/err")
if grep -q "attached PDF $F/pages.pdf, pages 2" <<<"$out" && [ "$(tail -n 1 <<<"$out")" = 267 ]; then ok chat_pdf
else bad chat_pdf "$out $(cat "$tmp/err")"; fi
out=$(printf '/pdf %s 7\nhow many?\n/pdf %s\nHow many shapes are there?\n' $F/pages.pdf $F/example.pdf | "$G" chat -m $M -n 64 2>"$tmp/err")
if grep -q "page 7 is beyond" "$tmp/err" && [ "$(tail -n 1 <<<"$out")" = 4 ]; then ok chat_pdf_error_then_answer
else bad chat_pdf_error_then_answer "$out $(cat "$tmp/err")"; fi
finish

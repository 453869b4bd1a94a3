#!/usr/bin/env bash
# eval_test.sh BUILD_DIR -- `glmv eval` end to end on the demo model (models/demo) and its
# held-out set (tests/fixtures/demo_eval/items.jsonl): a small run whose table and per-item
# JSONL agree with each other and with `glmv run`, a budget sweep and its SVG, the match
# rules on a set written here, --min-accuracy, the same items through `glmv serve` (--url; sampled
# with per-item seeds, video, an API key and a choice prompt against the echo engine),
# and bad input: each a clear error and a non-zero status before any model work. Needs jq.
# Under GLMV_SANITIZE the runs are smaller.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
G=$B/glmv
D=models/demo
SET=tests/fixtures/demo_eval/items.jsonl
pass=0 fail=0 skip=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1: $2"; fail=$((fail + 1)); }
finish() { echo "RESULT eval passed=$pass failed=$fail skipped=$skip"; [ $fail -eq 0 ]; exit; }
tmp=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; rm -rf "$tmp"' EXIT
if [ ! -f $D/model.safetensors ] || [ ! -f $SET ]; then echo "skip: $D or $SET missing"; skip=1; finish; fi
command -v jq >/dev/null || { echo "skip: jq missing (scripts/install-deps.sh)"; skip=1; finish; }
per=2
[ -n "${GLMV_SANITIZE:-}" ] && per=1
T="-t 2"

# 1. a small run: a table row per category and overall, one JSON line per item, and the two agree
if $G eval $SET -m $D $T --limit $per --out "$tmp/r.jsonl" >"$tmp/table" 2>"$tmp/err"; then
    n=$((5 * per))
    rows=$(grep -cE '^(count|colour|position|size|digits) +[0-9]+ +'$per' +[0-9.]+% ' "$tmp/table")
    read -r _ c_tab n_tab acc_tab _ < <(grep '^overall' "$tmp/table")
    c_json=$(jq -s 'map(select(.ok)) | length' "$tmp/r.jsonl")
    if [ "$rows" = 5 ] && [ "$n_tab" = "$n" ] && [ "$(wc -l <"$tmp/r.jsonl")" = "$n" ] && [ "$c_tab" = "$c_json" ] &&
       jq -se 'all(has("id") and has("category") and has("expected") and has("got") and (.ok | type == "boolean")
                   and .thinking_tokens > 0 and .answer_tokens > 0 and .seconds > 0 and .budget == null)' \
           "$tmp/r.jsonl" >/dev/null; then ok run_table_matches_jsonl
    else bad run_table_matches_jsonl "rows $rows, overall $c_tab/$n_tab, jsonl ok $c_json: $(cat "$tmp/table" "$tmp/err")"; fi
    # ok is what the rule says: these items are exact or number rules over plain words and counts
    if jq -se 'all(.ok == ((.got | ascii_downcase) == (.expected | ascii_downcase)))' "$tmp/r.jsonl" >/dev/null; then
        ok run_ok_is_match
    else bad run_ok_is_match "$(jq -c 'select(.ok != ((.got | ascii_downcase) == (.expected | ascii_downcase)))' "$tmp/r.jsonl")"; fi
    # the demo model answers 96 % of the set right: a run that gets most wrong is broken
    if [ $((c_tab * 10)) -ge $((n_tab * 8)) ]; then ok run_accuracy_demo
    else bad run_accuracy_demo "$c_tab of $n_tab right: $(cat "$tmp/table")"; fi
    # the answer is the one glmv run gives for the same image and question
    first=$(head -1 "$tmp/r.jsonl")
    img=tests/fixtures/demo_eval/$(jq -r .id <<<"$first").png
    q=$(jq -r --arg id "$(jq -r .id <<<"$first")" 'select(.id == $id) | .question' $SET)
    want=$($G run -m $D $T --image "$img" -p "$q" --greedy --json 2>/dev/null | jq -r .content)
    if [ -n "$want" ] && [ "$want" = "$(jq -r .got <<<"$first")" ]; then ok run_same_as_glmv_run
    else bad run_same_as_glmv_run "run '$want', eval $first"; fi
else bad run_table_matches_jsonl "exit $?: $(cat "$tmp/err")"; fi

# a progress bar on a terminal (script(1) gives it one), nothing on stderr otherwise
if command -v script >/dev/null; then
    script -qec "$G eval $SET -m $D $T --limit 1 2>&1 >/dev/null" /dev/null >"$tmp/tty" 2>&1
    if grep -q '\[#*\.*\] 1/5  budget unlimited' "$tmp/tty" && grep -q '\[#\{30\}\] 5/5 ' "$tmp/tty" &&
       [ ! -s "$tmp/err" ]; then ok progress_bar
    else bad progress_bar "tty: $(head -c 300 "$tmp/tty" | cat -v); stderr without a tty: $(head -c 300 "$tmp/err")"; fi
else echo "skip progress_bar: no script(1)"; skip=$((skip + 1)); fi

# 2. a budget sweep: a table per budget, the thinking cut at the budget (plus the forced
#    </think>), and an SVG with one point per budget on every line
if $G eval $SET -m $D $T --limit 1 --budgets 1,8,unlimited --out "$tmp/s.jsonl" --plot "$tmp/s.svg" >"$tmp/table" 2>"$tmp/err"; then
    if [ "$(grep -c '^thinking budget: ' "$tmp/table")" = 3 ] && grep -q '^budget ' "$tmp/table" &&
       jq -se 'length == 15 and ([.[] | .budget] | unique) == [null, 1, 8] and
               all(.budget == null or .thinking_tokens <= .budget + 1) and
               (map(select(.budget == null and .thinking_tokens > 9)) | length) > 0' "$tmp/s.jsonl" >/dev/null; then
        ok sweep_budgets
    else bad sweep_budgets "$(cat "$tmp/table"; jq -c '[.budget, .thinking_tokens]' "$tmp/s.jsonl" | tr '\n' ' ')"; fi
    series=$(grep -c '<g class="series"' "$tmp/s.svg")
    points=$(grep -c 'class="point"' "$tmp/s.svg")
    if head -1 "$tmp/s.svg" | grep -q '^<svg ' && tail -1 "$tmp/s.svg" | grep -q '^</svg>$' &&
       [ "$series" = 6 ] && [ "$points" = 18 ] && grep -q '>unlimited</text>' "$tmp/s.svg" &&
       grep -q 'data-name="overall"' "$tmp/s.svg"; then ok sweep_svg
    else bad sweep_svg "$series series, $points points"; fi
else bad sweep_budgets "exit $?: $(cat "$tmp/err")"; fi

# 3. the rules on a set written here: the demo model's answers, right and wrong under each rule
#    (choice is left to test_eval: the options it adds to the question are outside the demo's world)
F=tests/fixtures/demo_eval
cat >"$tmp/rules.jsonl" <<EOF
# the demo model answers 000.png's count with 1, 001.png's colour with green
{"id": "num-ok", "category": "number", "images": ["$PWD/$F/000.png"], "question": "How many shapes are there?", "answer": "1.2", "match": "number", "tolerance": 0.25}
{"id": "num-bad", "category": "number", "images": ["$PWD/$F/000.png"], "question": "How many shapes are there?", "answer": "1.2", "match": "number", "tolerance": 0.1}

{"id": "exact-ok", "category": "exact", "images": ["$PWD/$F/001.png"], "question": "What colour is the diamond?", "answer": " Green."}
{"id": "regex-ok", "category": "regex", "images": ["$PWD/$F/001.png"], "question": "What colour is the diamond?", "answer": "^gr(e|a)+n$", "match": "regex"}
{"id": "regex-bad", "category": "regex", "images": ["$PWD/$F/001.png"], "question": "What colour is the diamond?", "answer": "^red$", "match": "regex"}
{"id": "exact-bad", "category": "exact", "images": ["$PWD/$F/001.png"], "question": "What colour is the diamond?", "answer": "GREEN!"}
EOF
if $G eval "$tmp/rules.jsonl" -m $D $T --out "$tmp/rules.out" >"$tmp/table" 2>"$tmp/err" &&
   [ "$(jq -r '"\(.id)=\(.ok)"' "$tmp/rules.out" | tr '\n' ' ')" = \
     "num-ok=true num-bad=false exact-ok=true regex-ok=true regex-bad=false exact-bad=false " ]; then
    ok rules_on_demo
else bad rules_on_demo "$(cat "$tmp/err"; jq -c '[.id, .got, .ok]' "$tmp/rules.out" 2>/dev/null | tr '\n' ' ')"; fi
if grep -qE '^exact +1 +2 +50.0%' "$tmp/table" && grep -qE '^regex +1 +2 +50.0%' "$tmp/table" &&
   grep -qE '^overall +3 +6 +50.0%' "$tmp/table"; then ok rules_table
else bad rules_table "$(cat "$tmp/table")"; fi

# 4. --min-accuracy: exit 3 below it, 0 at or above it
$G eval "$tmp/rules.jsonl" -m $D $T --min-accuracy 0.6 >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 3 ] && grep -q "below --min-accuracy" "$tmp/err" && $G eval "$tmp/rules.jsonl" -m $D $T --min-accuracy 0.5 >/dev/null 2>&1
then ok min_accuracy; else bad min_accuracy "exit $rc: $(cat "$tmp/err")"; fi

# 5. the same items through glmv serve: the same answers, and the budget reaches the server
$G serve -m $D $T --port 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
for _ in $(seq 300); do grep -q listening "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|.*listening on \(http://[^/ ]*\)/.*|\1|p' "$tmp/serve.out")
if [ -z "$url" ]; then bad url_same_answers "the server did not start: $(cat "$tmp/serve.out" "$tmp/serve.err")"
else
    if $G eval $SET --url "$url" --limit $per --out "$tmp/u.jsonl" >"$tmp/table" 2>"$tmp/err" &&
       [ "$(jq -c '[.id, .got, .ok, .thinking_tokens, .answer_tokens]' "$tmp/u.jsonl")" = \
         "$(jq -c '[.id, .got, .ok, .thinking_tokens, .answer_tokens]' "$tmp/r.jsonl")" ]; then ok url_same_answers
    else bad url_same_answers "$(cat "$tmp/err"; diff <(jq -c '[.id, .got, .thinking_tokens]' "$tmp/u.jsonl") <(jq -c '[.id, .got, .thinking_tokens]' "$tmp/r.jsonl"))"; fi
    if $G eval $SET --url "$url/v1" --limit 1 --budget 1 --out "$tmp/u1.jsonl" >/dev/null 2>"$tmp/err" &&
       jq -se 'length == 5 and all(.budget == 1 and .thinking_tokens <= 2)' "$tmp/u1.jsonl" >/dev/null; then ok url_budget
    else bad url_budget "$(cat "$tmp/err" "$tmp/u1.jsonl")"; fi
    # sampled: each item's seed is --seed plus its line, the same through the server as here
    if $G eval $SET -m $D $T --limit $per --temp 2 --seed 7 --out "$tmp/t1.jsonl" >/dev/null 2>"$tmp/err" &&
       $G eval $SET --url "$url" --limit $per --temp 2 --seed 7 --out "$tmp/t2.jsonl" >/dev/null 2>>"$tmp/err" &&
       [ "$(jq -c '[.got, .thinking_tokens]' "$tmp/t1.jsonl")" = "$(jq -c '[.got, .thinking_tokens]' "$tmp/t2.jsonl")" ] &&
       [ "$(jq -c '[.got, .thinking_tokens]' "$tmp/t1.jsonl")" != "$(jq -c '[.got, .thinking_tokens]' "$tmp/r.jsonl")" ]; then
        ok url_sampled_same_seeds
    else bad url_sampled_same_seeds "$(cat "$tmp/err"; jq -c .got "$tmp/t1.jsonl" "$tmp/t2.jsonl" | tr '\n' ' ')"; fi
    # a video (and two images) go to the server as data: URLs: the same answer as the engine's
    VID=../shared/assets/videos/mmcv_test.mp4
    if [ -f $VID ]; then
        printf '{"id": "v", "question": "How many shapes are there?", "answer": "1", "video": "%s"}\n' "$PWD/$VID" >"$tmp/v.jsonl"
        printf '{"id": "i2", "question": "How many shapes are there?", "answer": "1", "images": ["%s", "%s"]}\n' \
            "$PWD/$F/000.png" "$PWD/$F/001.png" >>"$tmp/v.jsonl"
        if $G eval "$tmp/v.jsonl" -m $D $T -n 16 --out "$tmp/v1.out" >/dev/null 2>"$tmp/err" &&
           $G eval "$tmp/v.jsonl" --url "$url" -n 16 --out "$tmp/v2.out" >/dev/null 2>>"$tmp/err" &&
           [ "$(jq -c '[.got, .thinking_tokens, .answer_tokens]' "$tmp/v1.out")" = "$(jq -c '[.got, .thinking_tokens, .answer_tokens]' "$tmp/v2.out")" ] &&
           [ "$(wc -l <"$tmp/v2.out")" = 2 ]; then ok url_video_images
        else bad url_video_images "$(cat "$tmp/err" "$tmp/v1.out" "$tmp/v2.out")"; fi
    else echo "skip url_video_images: $VID missing"; skip=$((skip + 1)); fi
    # a refusal by the server (here: a temperature beyond its range) stops the run with the server's message
    $G eval $SET --url "$url" --limit 1 --temp 5 >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc = 1 ] && grep -q "HTTP 400.*temperature" "$tmp/err"; then ok url_server_error
    else bad url_server_error "exit $rc: $(cat "$tmp/err")"; fi
    kill $spid 2>/dev/null; wait $spid 2>/dev/null; spid=
fi

# the echo engine answers with the prompt it got: a choice item's options reach the server after
# the question, and the API key goes with every request (without it: the server's 401, exit 1)
$G serve -m echo: --port 0 --api-key sesame >"$tmp/echo.out" 2>&1 &
spid=$!
for _ in $(seq 300); do grep -q listening "$tmp/echo.out" 2>/dev/null && break; sleep 0.1; done
eurl=$(sed -n 's|.*listening on \(http://[^/ ]*\)/.*|\1|p' "$tmp/echo.out")
printf '{"id": "c", "question": "Which?", "answer": "B", "match": "choice", "choices": ["red", "green"]}\n' >"$tmp/c.jsonl"
if [ -n "$eurl" ] && $G eval "$tmp/c.jsonl" --url "$eurl" --api-key sesame --out "$tmp/c.out" >/dev/null 2>"$tmp/err" &&
   jq -e '.got == "**Echo:** Which?\nA. red\nB. green" and .ok == false' "$tmp/c.out" >/dev/null; then ok url_choice_prompt_api_key
else bad url_choice_prompt_api_key "$(cat "$tmp/echo.out" "$tmp/err" "$tmp/c.out" 2>/dev/null)"; fi
GLMV_API_KEY= $G eval "$tmp/c.jsonl" --url "$eurl" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 1 ] && grep -q "HTTP 401" "$tmp/err"; then ok url_no_api_key
else bad url_no_api_key "exit $rc: $(cat "$tmp/err")"; fi
kill $spid 2>/dev/null; wait $spid 2>/dev/null; spid=

# 6. bad input: a clear message and a non-zero status, the items checked before the model loads
expect_fail() { # name status pattern command...
    local name=$1 want=$2 pat=$3; shift 3
    timeout 30 "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc != "$want" ]; then bad "$name" "exit $rc, not $want: $(head -c 300 "$tmp/err")"; return; fi
    if grep -qi -- "$pat" "$tmp/err"; then ok "$name"; else bad "$name" "stderr lacks '$pat': $(cat "$tmp/err")"; fi
}
line() { printf '%s\n' '{"question": "q", "answer": "1"}' "$1" >"$tmp/bad.jsonl"; }
NOMODEL="-m /nonexistent/model" # the items are refused before this is found missing
expect_fail err_missing_file 2 "nothere.jsonl: No such file" $G eval "$tmp/nothere.jsonl" -m $D
expect_fail err_items_dir 2 "is a directory" $G eval "$tmp" -m $D
line '{"question": "q", "answer": }'
expect_fail err_bad_json 2 "bad.jsonl:2: not valid JSON" $G eval "$tmp/bad.jsonl" $NOMODEL
line '{"question": "q", "answer": "1", "match": "fuzzy"}'
expect_fail err_unknown_rule 2 "bad.jsonl:2: unknown match rule 'fuzzy'" $G eval "$tmp/bad.jsonl" $NOMODEL
line '{"question": "q", "answer": "([a-z]", "match": "regex"}'
expect_fail err_bad_regex 2 "bad.jsonl:2: 'answer' is not a valid regex" $G eval "$tmp/bad.jsonl" $NOMODEL
line '{"question": "q", "answer": "1", "images": ["gone.png"]}'
expect_fail err_missing_image 2 "bad.jsonl:2: image file '.*gone.png': No such file" $G eval "$tmp/bad.jsonl" $NOMODEL
line '{"answer": "1"}'
expect_fail err_missing_field 2 "bad.jsonl:2: missing field 'question'" $G eval "$tmp/bad.jsonl" $NOMODEL
printf '{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "q", "answer": "2"}\n' >"$tmp/bad.jsonl"
expect_fail err_duplicate_id 2 "bad.jsonl:2: id 'a' is also the id of line 1" $G eval "$tmp/bad.jsonl" $NOMODEL
printf '\n# nothing\n' >"$tmp/empty.jsonl"
expect_fail err_no_items 2 "no items" $G eval "$tmp/empty.jsonl" $NOMODEL
expect_fail err_budgets_garbage 2 "budgets expects" $G eval $SET $NOMODEL --budgets 1,x,8
expect_fail err_budgets_empty 2 "budgets expects" $G eval $SET $NOMODEL --budgets 1,,8
expect_fail err_budgets_zero 2 "smallest is 1" $G eval $SET $NOMODEL --budgets 0,8
expect_fail err_budgets_twice 2 "given twice" $G eval $SET $NOMODEL --budgets 8,8
expect_fail err_budget_and_budgets 2 "give one of --budget and --budgets" $G eval $SET $NOMODEL --budget 4 --budgets 8
expect_fail err_unknown_category 2 "no item has category 'shapes'" $G eval $SET $NOMODEL --category shapes
expect_fail err_plot_not_svg 2 "ends in .svg\|ending in .svg" $G eval $SET $NOMODEL --plot acc.png
expect_fail err_min_accuracy_range 2 "min-accuracy expects" $G eval $SET $NOMODEL --min-accuracy 90
expect_fail err_no_items_file 2 "items file is required" $G eval -m $D
expect_fail err_bad_flag 2 "unknown" $G eval $SET -m $D --bogus
expect_fail err_missing_model 1 "nonexistent" $G eval $SET $NOMODEL --limit 1
expect_fail err_url_unreachable 1 "127.0.0.1:9/v1/chat/completions: Couldn't connect\|127.0.0.1:9.*connect" $G eval $SET --url http://127.0.0.1:9 --limit 1
expect_fail err_url_scheme 2 "http:// or https://" $G eval $SET --url ftp://example.org --limit 1
expect_fail err_url_and_model 2 "server has its own model" $G eval $SET --url http://127.0.0.1:9 -m $D
expect_fail err_api_model_without_url 2 "go with --url" $G eval $SET -m $D --api-model x
cp "$tmp/rules.jsonl" "$tmp/set.jsonl"
expect_fail err_out_is_items 2 "is the items file itself" $G eval "$tmp/set.jsonl" $NOMODEL --out "$tmp/set.jsonl"
if cmp -s "$tmp/rules.jsonl" "$tmp/set.jsonl"; then ok out_is_items_kept; else bad out_is_items_kept "the items file changed"; fi
if $G eval --help >"$tmp/out" 2>&1 && grep -q "^usage: glmv eval ITEMS.jsonl" "$tmp/out" && $G --help | grep -q "^  eval "
then ok eval_help; else bad eval_help "$(cat "$tmp/out")"; fi
expect_fail err_out_unwritable 2 "cannot write /nonexistent/r.jsonl" $G eval $SET -m $D --out /nonexistent/r.jsonl
finish

#!/usr/bin/env bash
# agent_test.sh BUILD_DIR -- `glmv agent` end to end: the prompt of each mode
# against the document's own example prompt (byte for byte), the answer of
# every action of every mode parsed into the documented JSON with its pixels,
# malformed answers refused (status 3, the error and the raw text in the
# JSON), bad options (status 2), --draw's PNG, and a run on the tiny and demo
# models (which cannot act: a clean refusal or a parsed action). Needs jq.
set -u
B=${1:-build/release}
G=$B/glmv
F=tests/fixtures/agent
SHOT=../shared/assets/images/glmv_gui_agent_allrecipes.jpg # 2048x1191
pass=0 fail=0 skip=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- the prompts: the document's three example prompts, rebuilt from their inputs
jq .history $F/in_mobile.json >"$tmp/h_mobile.json"
jq .history $F/in_pc.json >"$tmp/h_pc.json"
jq .history $F/in_web.json >"$tmp/h_web.json"
prompt_is() { # NAME EXPECTED_FILE glmv-args...
    local name=$1 want=$2; shift 2
    if $G agent --print-prompt "$@" >"$tmp/p" 2>"$tmp/err" && cmp -s "$tmp/p" "$want"; then ok "$name"
    else bad "$name" "$(cat "$tmp/err"; diff "$tmp/p" "$want" | head -5)"; fi
}
prompt_is prompt_mobile $F/prompt_mobile.txt --mode mobile --task "$(jq -r .task $F/in_mobile.json)" \
    --history "$tmp/h_mobile.json"
prompt_is prompt_pc $F/prompt_pc.txt --mode pc --task "$(jq -r .task $F/in_pc.json)" \
    --history "$tmp/h_pc.json" --memory "$(jq -r .memory $F/in_pc.json)"
prompt_is prompt_web $F/prompt_web.txt --mode web --task "$(jq -r .task $F/in_web.json)" \
    --url "$(jq -r .url $F/in_web.json)" --history "$tmp/h_web.json" --elements $F/elements_web.txt
# --step gives the same steps as --history; the task may come from standard input
jq -r .task $F/in_pc.json >"$tmp/task"
prompt_is prompt_pc_steps $F/prompt_pc.txt --mode pc --task - --memory "[]" \
    --step "$(jq -r '.history[0]' $F/in_pc.json)" --step "$(jq -r '.history[1]' $F/in_pc.json)" <"$tmp/task"

# --- every action of every mode: answers/MODE_ACTION*.txt -> the JSON, checked by jq
# (pixels: v * size / 1000 rounded, on 2048x1191)
expect() { # FILE JQ-CONDITION
    local f=$F/answers/$1 mode=${1%%_*}
    if $G agent --mode "$mode" -s $SHOT --raw "$f" >"$tmp/o.json" 2>"$tmp/err" &&
        jq -e --rawfile raw "$f" ".mode == \"$mode\" and .raw == \$raw and .width == 2048 and
            .height == 1191 and ($2)" "$tmp/o.json" >/dev/null 2>>"$tmp/err"; then ok "parse_${1%.txt}"
    else bad "parse_${1%.txt}" "$(cat "$tmp/o.json" "$tmp/err")"; fi
}
expect mobile_status.txt '.action == "status" and .goal_status == "complete" and (has("box") | not)'
expect mobile_answer.txt '.action == "answer" and .text == "World'"'"'s Best Lasagna, 4.7 stars" and
    .memory == "The top recipe has 4.7 stars from 1,203 ratings."'
expect mobile_click.txt '.action == "click" and .box_2d == [100,200,300,400] and
    .box == [205,238,614,476] and .point == [410,357] and .memory == "None" and
    (.reason | startswith("The search field is visible"))'
expect mobile_long_press.txt '.action == "long_press" and .box == [0,0,2046,1190] and .point == [1023,595]'
expect mobile_input_text.txt '.action == "input_text" and .text == "vegetarian lasagna" and .override == true and
    .box_2d == [420,95,760,130] and .box == [860,113,1556,155] and .point == [1208,134]'
expect mobile_input_text_lower.txt '.action == "input_text" and .text == "it'"'"'s \"quoted\"" and .override == false'
expect mobile_keyboard_enter.txt '.action == "keyboard_enter" and (has("box") | not) and (has("text") | not)'
expect mobile_navigate_home.txt '.action == "navigate_home"'
expect mobile_navigate_back.txt '.action == "navigate_back"'
expect mobile_navigate_back_numbered.txt '.action == "navigate_back" and (.reason | startswith("The prompt numbers"))'
expect mobile_swipe.txt '.action == "swipe" and .direction == "up" and .box == [0,357,2046,1072] and
    .memory == "{\"recipes_seen\": 3}"'
expect mobile_swipe_screen.txt '.action == "swipe" and .direction == "left" and (has("box") | not)'
expect mobile_open_app.txt '.action == "open_app" and .app_name == "Broccoli" and
    (.reason | startswith("The user needs to access the Broccoli app"))'
expect mobile_wait.txt '.action == "wait"'
expect pc_left_click.txt '.action == "left_click" and .start_box == [376,465] and .point == [770,554] and
    (has("box") | not) and .memory == "[]" and (.reason | endswith("price and color later on."))'
expect pc_right_click.txt '.action == "right_click" and .point == [1024,596] and .element_info == "report.pdf" and
    .memory == "[{\"file\": \"report.pdf\"}]" and .reason == "Open the file'"'"'s context menu."'
expect pc_middle_click.txt '.action == "middle_click" and .start_box == [1000,1000] and .point == [2047,1190]'
expect pc_hover.txt '.action == "hover" and .point == [0,0] and .element_info == "Recipes menu"'
expect pc_left_double_click.txt '.action == "left_double_click" and .start_box == [250,750] and .point == [512,893]'
expect pc_left_drag.txt '.action == "left_drag" and .point == [205,596] and .end_box == [900,500] and
    .end_point == [1843,596] and .element_info == "volume slider"'
expect pc_key.txt '.action == "key" and .keys == "ctrl+c"'
expect pc_type.txt '.action == "type" and .text == "drip coffee maker black" and (has("point") | not)'
expect pc_scroll.txt '.action == "scroll" and .direction == "down" and .step == 3 and .point == [1024,715]'
expect pc_scroll_default.txt '.action == "scroll" and .direction == "up" and .step == 5'
expect pc_WAIT.txt '.action == "WAIT" and .reason == "The page is loading."'
expect pc_DONE.txt '.action == "DONE"'
expect pc_FAIL.txt '.action == "FAIL"'
expect web_Click.txt '.action == "Click" and .element == 1 and .memory == "{}" and
    .reason == "The search box is element [1]; click it."'
expect web_Type.txt '.action == "Type" and .element == 1 and .text == "Vegetarian Lasagna"'
expect web_Scroll.txt '.action == "Scroll" and .element == "WINDOW" and .direction == "down"'
expect web_Scroll_element.txt '.action == "Scroll" and .element == 12 and .direction == "up"'
expect web_Wait.txt '.action == "Wait"'
expect web_GoBack.txt '.action == "GoBack"'
expect web_Bing.txt '.action == "Bing"'
expect web_ANSWER.txt '.action == "ANSWER" and .text == "Spinach Lasagna: 4.6 stars, 312 reviews, serves 6"'
expect web_Key.txt '.action == "Key" and .keys == "Return"'
n_answers=$(ls $F/answers/*.txt | wc -l)
n_expected=$(grep -c '^expect [a-z]' "$0")
if [ "$n_answers" -eq "$n_expected" ]; then ok every_answer_checked
else bad every_answer_checked "$n_answers answer files, $n_expected checked"; fi

# --- malformed answers: status 3, {"mode", "error", "raw"} with the raw text, no action
for f in $F/bad/*.txt; do
    name=$(basename "$f" .txt) mode=${name%%_*}
    $G agent --mode "$mode" -s $SHOT --raw "$f" --draw "$tmp/bad.png" >"$tmp/o.json" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 3 ] && grep -q "malformed answer: " "$tmp/err" && [ ! -e "$tmp/bad.png" ] &&
        jq -e --rawfile raw "$f" ".mode == \"$mode\" and .raw == \$raw and (.error | length) > 0 and
            (has(\"action\") | not)" "$tmp/o.json" >/dev/null 2>&1; then ok "refuse_$name"
    else bad "refuse_$name" "status $rc: $(cat "$tmp/o.json" "$tmp/err")"; fi
done
# the message names the fault
refuses() { # NAME PATTERN
    $G agent --mode "${1%%_*}" -s $SHOT --raw "$F/bad/$1.txt" >"$tmp/o.json" 2>/dev/null
    if jq -e --arg p "$2" '.error | test($p)' "$tmp/o.json" >/dev/null; then ok "message_$1"
    else bad "message_$1" "$(jq -r .error "$tmp/o.json") does not match $2"; fi
}
refuses mobile_no_action 'no "Action:" line'
refuses mobile_unknown_action 'unknown action_type "scroll"'
refuses mobile_box_range 'not an integer in 0-999'
refuses mobile_box_flat 'box_2d must be \[\[xmin,ymin,xmax,ymax\]\]'
refuses mobile_bad_json 'not valid JSON'
refuses mobile_none "'None'"
refuses mobile_thinking_unfinished 'thinking never ended'
refuses pc_two_calls '2 action calls'
refuses pc_range 'outside 0-1000'
refuses web_unknown 'unknown web action'
# a saved answer on standard input
if $G agent --mode web -s $SHOT --raw - <$F/answers/web_Click.txt | jq -e '.element == 1' >/dev/null; then
    ok raw_stdin
else bad raw_stdin "web_Click.txt on standard input"; fi

# --- bad options: status 2 (or 1 for an unreadable file), a message, nothing on stdout
usage_err() { # NAME STATUS glmv-args...
    local name=$1 want=$2; shift 2
    $G agent "$@" >"$tmp/o" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq "$want" ] && [ -s "$tmp/err" ] && [ ! -s "$tmp/o" ]; then ok "$name"
    else bad "$name" "status $rc (want $want): $(cat "$tmp/o" "$tmp/err")"; fi
}
usage_err opt_no_mode 2 -s $SHOT --raw $F/answers/pc_key.txt
usage_err opt_bad_mode 2 --mode tablet -s $SHOT --raw $F/answers/pc_key.txt
usage_err opt_no_screenshot 2 --mode pc --raw $F/answers/pc_key.txt
usage_err opt_no_task 2 --mode pc -s $SHOT
usage_err opt_memory_mobile 2 --mode mobile --task x --memory "[]" --print-prompt
usage_err opt_web_no_url 2 --mode web --task x --print-prompt
usage_err opt_url_pc 2 --mode pc --task x --url https://example.com --print-prompt
usage_err opt_history_not_array 2 --mode pc --task x --history $F/in_pc.json --print-prompt
usage_err opt_unknown 2 --mode pc --task x --frobnicate
usage_err opt_missing_raw 1 --mode pc -s $SHOT --raw "$tmp/none.txt"
usage_err opt_screenshot_not_image 1 --mode pc -s $F/in_pc.json --raw $F/answers/pc_key.txt
printf 'Thought: caf\xe9\nAction: Wait\nMemory_Updated: {}' >"$tmp/latin1.txt"
usage_err opt_raw_not_utf8 1 --mode web -s $SHOT --raw "$tmp/latin1.txt"
usage_err opt_task_not_utf8 2 --mode pc --task "$(printf 'caf\xe9')" --print-prompt
usage_err opt_draw_unwritable 1 --mode pc -s $SHOT --raw $F/answers/pc_left_click.txt --draw /nonexistent/x.png
if $G agent --help | grep -q -- "--draw OUT.png" && $G --help | grep -q "agent"; then ok help
else bad help "agent --help or glmv --help lacks agent"; fi

# --- --draw: a PNG of the screenshot's size (its IHDR), different from a plain copy
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}'; }
for a in mobile_click pc_left_drag mobile_swipe pc_scroll web_Type mobile_swipe_screen; do
    rm -f "$tmp/d.png"
    if $G agent --mode "${a%%_*}" -s $SHOT --raw $F/answers/$a.txt --draw "$tmp/d.png" >/dev/null 2>"$tmp/err" &&
        [ "$(head -c 8 "$tmp/d.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(png_size "$tmp/d.png")" = 2048x1191 ]; then ok "draw_$a"
    else bad "draw_$a" "$(cat "$tmp/err"; [ -f "$tmp/d.png" ] && png_size "$tmp/d.png")"; fi
    cp "$tmp/d.png" "$tmp/d_$a.png" 2>/dev/null
done
if ! cmp -s "$tmp/d_mobile_click.png" "$tmp/d_pc_left_drag.png"; then ok draw_differs_by_action
else bad draw_differs_by_action "a click and a drag drew the same PNG"; fi

# --- the models: they cannot act, but the command runs and reports what they said
model_run() { # NAME MODEL MODE args...
    local name=$1 m=$2 mode=$3; shift 3
    if [ ! -f "$m/model.safetensors" ]; then echo "skip $name: no $m"; skip=$((skip + 1)); return; fi
    $G agent -m "$m" --mode "$mode" -s $SHOT --greedy --max-image-tokens 64 "$@" >"$tmp/o.json" 2>"$tmp/err"
    local rc=$?
    if { [ $rc -eq 3 ] && jq -e '(.error | length) > 0 and (.raw | type) == "string" and .finish_reason' \
            "$tmp/o.json" >/dev/null; } ||
        { [ $rc -eq 0 ] && jq -e '.action and .raw and .finish_reason' "$tmp/o.json" >/dev/null; }; then
        ok "$name"
    else bad "$name" "status $rc: $(cat "$tmp/o.json" "$tmp/err")"; fi
}
model_run model_tiny_pc tests/fixtures/tiny pc --task "Open the first recipe." -n 8
model_run model_demo_web models/demo web --task "Search for lasagna." --url https://www.allrecipes.com/ -n 24 \
    --elements $F/elements_web.txt
# a prompt beyond the context is an error (status 1), not a malformed answer
model_run_too_long() {
    $G agent -m tests/fixtures/tiny --mode mobile -s $SHOT --task "Open Settings" -n 8 \
        --max-image-tokens 64 >"$tmp/o" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 1 ] && grep -q "exceeds the context" "$tmp/err" && [ ! -s "$tmp/o" ]; then ok model_prompt_too_long
    else bad model_prompt_too_long "status $rc: $(cat "$tmp/o" "$tmp/err")"; fi
}
model_run_too_long
# pc's earlier screens go in after the current one: more vision tokens in the prompt
vision_tokens() {
    $G agent -m tests/fixtures/tiny --mode pc -s $SHOT --task "Open the first recipe." -n 2 \
        --max-image-tokens 64 -v "$@" 2>&1 >/dev/null | sed -n 's/.*(\([0-9]*\) from the screenshots).*/\1/p'
}
v1=$(vision_tokens) v3=$(vision_tokens --previous-screenshot $SHOT --previous-screenshot models/demo/example.png)
if [ -n "$v1" ] && [ -n "$v3" ] && [ "$v3" -gt "$v1" ]; then ok model_previous_screenshots
else bad model_previous_screenshots "vision tokens: current only '$v1', with two earlier screens '$v3'"; fi
usage_err opt_previous_mobile 2 --mode mobile -s $SHOT --task x --previous-screenshot $SHOT
usage_err opt_previous_five 2 --mode pc -s $SHOT --task x --previous-screenshot $SHOT --previous-screenshot $SHOT \
    --previous-screenshot $SHOT --previous-screenshot $SHOT --previous-screenshot $SHOT
usage_err opt_previous_not_image 1 -m tests/fixtures/tiny --mode pc -s $SHOT --task x -n 2 \
    --previous-screenshot $F/in_pc.json

echo "RESULT agent_cmd passed=$pass failed=$fail skipped=$skip"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# fuzz_ci.sh [RUNS] -- every libFuzzer target (make fuzz) for a fixed number of runs from the
# repository's own seed files, with a fixed seed: the same inputs on every machine, so CI
# can run it (a few seconds each) and a failure is reproducible. New inputs go to a
# temporary folder, never into the repository. Exits non-zero on a crash, a leak or a timeout.
set -u
RUNS=${1:-20000}
cd "$(dirname "$0")/.."
F=build/fuzz/tests
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
seeds() { # target files...: copy seeds into the target's corpus folder
    local t=$1; shift
    mkdir -p "$T/$t"
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$T/$t/"; done
}
seeds image tests/fixtures/image/*.png tests/fixtures/image/*.jpg tests/fixtures/image/*.webp tests/fixtures/image/*.bmp
seeds video $(ls tests/fixtures/video/formats/* 2>/dev/null | head -6) tests/fixtures/video/fuzz/*
seeds config tests/fixtures/tiny/config.json tests/fixtures/tiny2/config.json models/demo/config.json
seeds safetensors
seeds gguf tests/fixtures/gguf/tiny-Q8_0.gguf tests/fixtures/gguf/mmproj-tiny-F16.gguf
export GLMV_FUZZ_TEXT_GGUF="$PWD/tests/fixtures/gguf/tiny-Q8_0.gguf" # fuzz_gguf's text model for an mmproj
seeds tokenizer
seeds schema
seeds serve
seeds agent tests/fixtures/agent/answers/*.txt tests/fixtures/agent/bad/*.txt
# a glmv quantize file: a BF16 vector and Q8_0 rows as U8, their format in __metadata__
st_hdr='{"__metadata__":{"format":"pt","glmv.quant:w":"Q8_0"},"b":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},"w":{"dtype":"U8","shape":[2,34],"data_offsets":[8,76]}}'
n=${#st_hdr}
printf "$(printf '\\%03o' $((n & 255)) $((n >> 8 & 255)) 0 0 0 0 0 0)" >"$T/safetensors/q8"
printf '%s' "$st_hdr" >>"$T/safetensors/q8"
head -c 76 /dev/zero >>"$T/safetensors/q8"
printf '{"messages":[{"role":"user","content":"hi"}],"n":2,"logprobs":true,"top_logprobs":3}' >"$T/serve/a"
printf '{"input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"text":{"format":{"type":"json_object"}}}' >"$T/serve/b"
printf '{"type":"object","properties":{"a":{"type":"integer","minimum":1,"maximum":12},"b":{"enum":["x",1]}},"required":["a"]}\n{"a":7,"b":"x"}' >"$T/schema/a"
fail=0
for t in agent config gguf image safetensors schema serve tokenizer video; do
    [ -x "$F/fuzz_$t" ] || { echo "fuzz_ci: no $F/fuzz_$t (make fuzz)"; fail=1; continue; }
    n=$RUNS
    [ $t = video ] && n=$((RUNS / 10)) # FFmpeg under ASan: 10x slower a run
    if (cd "$T" && "$OLDPWD/$F/fuzz_$t" -seed=1 -runs="$n" -timeout=60 -rss_limit_mb=2048 \
            -artifact_prefix="$T/crash-$t-" "$T/$t" >"$T/$t.log" 2>&1); then
        echo "ok fuzz_$t: $(tail -1 "$T/$t.log")"
    else
        echo "not ok fuzz_$t:"
        tail -30 "$T/$t.log"
        fail=1
    fi
done
exit $fail

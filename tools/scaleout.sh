#!/usr/bin/env bash
# scaleout.sh [SECONDS] [CLIENTS] [BUILD_DIR] -- glmv serve behind a real load balancer, on loopback:
# three replicas of the demo model behind HAProxy (Debian's package: apt-get install haproxy),
# health checks on /health/ready, least-connections balancing with affinity by conversation
# (the X-Conversation-Id header: a conversation keeps its replica, so its prompt cache is reused),
# a load of CLIENTS parallel clients (default 8) for SECONDS (default 30), and replica 2 restarted
# mid-run the way a rolling restart does it (SIGTERM: it drains, then starts again). Prints the
# requests by HTTP status and by replica, and exits 1 if any request failed.
# The HAProxy configuration written to $TMP/haproxy.cfg is the recipe (README, "Running in production").
set -u
DUR=${1:-30}
CLIENTS=${2:-8}
B=${3:-build/release}
cd "$(dirname "$0")/.."
G=$PWD/$B/glmv
command -v haproxy >/dev/null || { echo "scaleout: haproxy is not installed (apt-get install haproxy)"; exit 2; }
[ -x "$G" ] || { echo "scaleout: no $G (run make)"; exit 2; }
TMP=$(mktemp -d)
BASE=$((20000 + RANDOM % 20000))
LB=$BASE
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -f "$TMP/haproxy.pid" ] && kill "$(cat "$TMP/haproxy.pid")" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

start_replica() { # i: serve on BASE+i, remembered in pids[i]
    local i=$1
    "$G" serve -m models/demo -t 1 --port $((BASE + i)) --drain-timeout 60 >"$TMP/r$i.log" 2>&1 &
    pids[$i]=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$((BASE + i))/health/ready" >/dev/null && return 0
        sleep 0.1
    done
    echo "scaleout: replica $i did not start"; cat "$TMP/r$i.log"; exit 1
}
for i in 1 2 3; do start_replica $i; done

# HAProxy answers what it refuses itself (no replica up, a replica that fails, a request too
# slow to arrive) with these: OpenAI-shaped JSON, like every error a replica sends. (HAProxy
# 2.6 answers a request it cannot parse at all with its own HTML 400.)
mkdir -p "$TMP/errors"
errfile() { # code reason type code-name message
    local body
    body=$(printf '{"error":{"message":"%s","type":"%s","param":null,"code":"%s"}}' "$5" "$3" "$4")
    printf 'HTTP/1.1 %s %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "${#body}" "$body" >"$TMP/errors/$1.http"
}
errfile 400 "Bad Request" invalid_request_error bad_request "malformed HTTP request"
errfile 408 "Request Timeout" invalid_request_error request_timeout "the request did not arrive in time"
errfile 413 "Payload Too Large" invalid_request_error body_too_large "the request is too large"
errfile 429 "Too Many Requests" server_error rate_limited "too many requests: retry later"
errfile 500 "Internal Server Error" server_error internal_error "internal error at the load balancer"
errfile 501 "Not Implemented" invalid_request_error not_implemented "not implemented"
errfile 502 "Bad Gateway" server_error bad_gateway "no valid answer from a replica: retry"
errfile 503 "Service Unavailable" server_error no_replica "no replica is ready: retry later"
errfile 504 "Gateway Timeout" server_error gateway_timeout "a replica did not answer in time: retry"

cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn 4096
    pidfile $TMP/haproxy.pid
    tune.bufsize 1048576          # whole requests (images in base64) stay buffered for retries
http-errors json
$(for f in "$TMP"/errors/*.http; do echo "    errorfile $(basename "$f" .http) $f"; done)
defaults
    mode http
    errorfiles json               # the balancer's own refusals in the API's JSON shape
    timeout connect 2s
    timeout client 600s
    timeout server 600s
    timeout http-request 10s      # a client gets 10 s for its headers: no slowloris past the edge
    retries 3
    option redispatch 1           # a replica that refuses (draining, restarting): try another
    option http-buffer-request
    retry-on conn-failure empty-response 503
    option httplog
frontend glmv
    bind 127.0.0.1:$LB
    default_backend replicas
backend replicas
    balance leastconn
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 300ms fall 1 rise 2
    # affinity by conversation: the first request of a conversation goes to the least loaded
    # replica, the next ones follow it (while it is up), so its prompt cache is reused
    stick-table type string len 64 size 100k expire 30m
    stick on req.hdr(X-Conversation-Id)
    http-response set-header X-Replica %s
    server r1 127.0.0.1:$((BASE + 1)) check
    server r2 127.0.0.1:$((BASE + 2)) check
    server r3 127.0.0.1:$((BASE + 3)) check
EOF
haproxy -D -f "$TMP/haproxy.cfg" || { echo "scaleout: haproxy did not start"; exit 1; }
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$LB/health" >/dev/null && break; sleep 0.1; done

IMG=$(base64 -w0 models/demo/example.png)
client() { # c: requests until the deadline, each a turn of conversation c-k (two turns each)
    local c=$1 end=$2 k=0
    while [ "$(date +%s)" -lt "$end" ]; do
        k=$((k + 1))
        for turn in 1 2; do
            local body
            if [ $turn = 1 ]; then
                body='{"model":"demo","max_tokens":48,"temperature":0,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,'"$IMG"'"}},{"type":"text","text":"How many shapes are there?"}]}]}'
            else
                body='{"model":"demo","max_tokens":48,"temperature":0,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,'"$IMG"'"}},{"type":"text","text":"How many shapes are there?"}]},{"role":"assistant","content":"4"},{"role":"user","content":"What colour is the circle?"}]}'
            fi
            curl -s -o "$TMP/body.$c" -D "$TMP/hdr.$c" -w '%{http_code}\n' -m 120 \
                -H 'content-type: application/json' -H "X-Conversation-Id: c$c-$k" \
                --data-binary "$body" "http://127.0.0.1:$LB/v1/chat/completions" >>"$TMP/codes.$c"
            tr -d '\r' <"$TMP/hdr.$c" | awk -v t=$turn -v k="c$c-$k" 'tolower($1)=="x-replica:" {print k, t, $2}' >>"$TMP/replicas.$c"
            if [ $turn = 2 ] && ! grep -q '"cached_tokens":[1-9]' "$TMP/body.$c"; then echo "c$c-$k" >>"$TMP/uncached.$c"; fi
        done
    done
}

END=$(($(date +%s) + DUR))
cpids=()
for c in $(seq "$CLIENTS"); do client "$c" "$END" & cpids+=($!); done
sleep $((DUR / 3))
echo "scaleout: restarting replica 2 (SIGTERM, drain, start again)"
kill -TERM "${pids[2]}"
wait "${pids[2]}"
echo "scaleout: replica 2 exited with status $? ($(grep 'in flight' "$TMP/r2.log"))"
start_replica 2
wait "${cpids[@]}"

# with every replica down the balancer answers 503 in the API's shape, which clients retry
for i in 1 2 3; do kill -TERM "${pids[$i]}" 2>/dev/null; done
wait "${pids[1]}" "${pids[2]}" "${pids[3]}" 2>/dev/null
for _ in $(seq 50); do
    down=$(curl -s -o "$TMP/down.body" -w '%{http_code} %{content_type}' "http://127.0.0.1:$LB/v1/models")
    [ "${down%% *}" = 503 ] && break
    sleep 0.1
done
echo "no replica up: $down $(grep -o '"code":"[a-z_]*"' "$TMP/down.body")"

echo "requests by status:"
cat "$TMP"/codes.* | sort | uniq -c
echo "turns by replica:"
cat "$TMP"/replicas.* | awk '{print $3}' | sort | uniq -c
moved=$(cat "$TMP"/replicas.* | awk '{r[$1" "$2]=$3} END {for (k in r) {split(k, a, " "); if (a[2]==2 && r[a[1]" 1"] != "" && r[a[1]" 1"] != r[k]) n++} print n+0}')
uncached=$(cat "$TMP"/uncached.* 2>/dev/null | wc -l)
total=$(cat "$TMP"/codes.* | wc -l)
failed=$(cat "$TMP"/codes.* | grep -vc '^200$')
echo "second turns on another replica than the first: $moved; second turns without a cached prompt: $uncached"
echo "scaleout: requests=$total failed=$failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# End-to-end throughput of the example servers under wrk, cached token vs no authentication.
#
#   bash benches/e2e.sh
#
# Builds examples/server (axum) and examples/hyper_server (plain hyper, pipeline_flush on) in
# release, starts each on an ephemeral port with its embedded MockAmazon, pinned to core 0;
# wrk runs pinned to core 1. Three interleaved rounds of:
#   (a) examples/server, keep-alive:           GET /healthz   vs  GET /me (cached demo token)
#   (b) examples/hyper_server, pipelined x16:  GET /healthz   vs  GET /me (cached demo token)
#       plus GET /nope with the token: the layer, then a bare 404 (no JSON handler), which
#       isolates the layer's cost from /me's JSON body
#   and, in both modes, GET /healthz *with* the token header (ignored there): a baseline with
#   the same request bytes, separating the cost of receiving ~430 more header bytes from the
#   layer's own
#   (c) server CPU microseconds per request in each mode, from /proc/PID/stat utime+stime
#       (clock ticks) before and after each wrk run, divided by the requests wrk completed;
#       also from the threads' /proc/PID/task/*/schedstat run time (nanoseconds)
# and prints medians and ratios. Knobs (environment): E2E_DURATION (5s), E2E_ROUNDS (3),
# E2E_CONNECTIONS (32, keep-alive), E2E_PIPELINE_CONNECTIONS (16), E2E_DEPTH (16).
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${E2E_DURATION:-5s}
ROUNDS=${E2E_ROUNDS:-3}
CONNECTIONS=${E2E_CONNECTIONS:-32}
PIPELINE_CONNECTIONS=${E2E_PIPELINE_CONNECTIONS:-16}
DEPTH=${E2E_DEPTH:-16}
SERVER_CORE=0
LOAD_CORE=1

if ! command -v wrk >/dev/null 2>&1; then
    echo "# installing wrk" >&2
    apt-get update && apt-get install -y wrk
fi
for tool in taskset curl awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required" >&2; exit 1; }
done

echo "# building the example servers (release)" >&2
cargo build --release --example server --example hyper_server --all-features >&2
BIN=${CARGO_TARGET_DIR:-target}/release/examples
HZ=$(getconf CLK_TCK)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start_server NAME: starts target/release/examples/NAME on core 0 and sets
# ADDR_<NAME>, TOKEN_<NAME> and PID_<NAME>.
start_server() {
    local name=$1 out="$TMP/$1.out" line="" pid
    LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn taskset -c "$SERVER_CORE" "$BIN/$name" >"$out" 2>"$TMP/$name.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        line=$(grep -m1 '^curl ' "$out" || true)
        [ -n "$line" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.err" >&2; echo "error: $name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$line" ] || { echo "error: $name printed no curl line within 30 s" >&2; exit 1; }
    local token addr
    token=$(sed -E "s/^curl -H 'Authorization: Bearer ([^']+)' http:\/\/([^/ ]+)\/me\$/\1/" <<<"$line")
    addr=$(sed -E "s/^curl -H 'Authorization: Bearer ([^']+)' http:\/\/([^/ ]+)\/me\$/\2/" <<<"$line")
    # Warm the cache: the one and only verification of the demo token.
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://$addr/me"
    curl -fsS -o /dev/null "http://$addr/healthz"
    printf -v "ADDR_$name" '%s' "$addr"
    printf -v "TOKEN_$name" '%s' "$token"
    printf -v "PID_$name" '%s' "$pid"
    echo "# $name: pid $pid on core $SERVER_CORE, http://$addr, demo token cached" >&2
}

# CPU time of PID (all threads): clock ticks from /proc/PID/stat (utime + stime).
cpu_ticks() {
    # Fields after "pid (comm) ": state is $1, so utime (14) is $12 and stime (15) is $13.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Run time of PID's threads in nanoseconds, from /proc/PID/task/*/schedstat.
sched_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

RESULTS="$TMP/results"
: >"$RESULTS"

# measure LABEL PID EXPECT_2XX WRK_ARGS...: one wrk run pinned to core 1; records
# "LABEL req/s stat-µs/req schedstat-µs/req" in $RESULTS.
measure() {
    local label=$1 pid=$2 expect_ok=$3
    shift 3
    local t0 t1 s0 s1 out rps n bad errors
    t0=$(cpu_ticks "$pid")
    s0=$(sched_ns "$pid")
    out=$(taskset -c "$LOAD_CORE" wrk "$@")
    t1=$(cpu_ticks "$pid")
    s1=$(sched_ns "$pid")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    errors=$(grep -E '^ *Socket errors:' <<<"$out" || true)
    if [ "$expect_ok" = yes ] && [ -n "$bad" ]; then
        echo "error: $label: $bad non-2xx responses" >&2
        echo "$out" >&2
        exit 1
    fi
    [ -z "$errors" ] || echo "# warning: $label: $errors" >&2
    local stat_us sched_us
    stat_us=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }')
    sched_us=$(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / 1e3 / n }')
    echo "$label $rps $stat_us $sched_us $ROUND" >>"$RESULTS"
    printf '  %-28s %12s req/s  %9s requests  cpu %7s µs/req (stat)  %7s µs/req (schedstat)\n' \
        "$label" "$rps" "$n" "$stat_us" "$sched_us" >&2
}

start_server server
start_server hyper_server

AUTH_AXUM="Authorization: Bearer $TOKEN_server"
BEARER_HYPER="Bearer $TOKEN_hyper_server"
KA=(-t1 -c"$CONNECTIONS" -d"$DURATION")
PIPE=(-t1 -c"$PIPELINE_CONNECTIONS" -d"$DURATION" -s benches/pipeline.lua)

ROUND=0
for round in $(seq "$ROUNDS"); do
    ROUND=$round
    echo "# round $round/$ROUNDS" >&2
    measure keepalive/healthz "$PID_server" yes "${KA[@]}" "http://$ADDR_server/healthz"
    measure keepalive/healthz+token "$PID_server" yes "${KA[@]}" -H "$AUTH_AXUM" "http://$ADDR_server/healthz"
    measure keepalive/me "$PID_server" yes "${KA[@]}" -H "$AUTH_AXUM" "http://$ADDR_server/me"
    measure pipelined/healthz "$PID_hyper_server" yes "${PIPE[@]}" "http://$ADDR_hyper_server" -- /healthz "$DEPTH"
    measure pipelined/healthz+token "$PID_hyper_server" yes "${PIPE[@]}" "http://$ADDR_hyper_server" -- /healthz "$DEPTH" "$BEARER_HYPER"
    measure pipelined/me "$PID_hyper_server" yes "${PIPE[@]}" "http://$ADDR_hyper_server" -- /me "$DEPTH" "$BEARER_HYPER"
    measure pipelined/auth_404 "$PID_hyper_server" no "${PIPE[@]}" "http://$ADDR_hyper_server" -- /nope "$DEPTH" "$BEARER_HYPER"
done

# median LABEL COLUMN: median over rounds of column 2 (req/s), 3 (stat µs) or 4 (schedstat µs).
median() {
    awk -v l="$1" -v c="$2" '$1 == l { print $c }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "## end to end ($ROUNDS rounds of $DURATION; medians; server on core $SERVER_CORE, wrk on core $LOAD_CORE)"
printf '%-24s %14s %18s %22s\n' "run" "req/s" "cpu µs/req (stat)" "cpu µs/req (schedstat)"
for label in keepalive/healthz keepalive/healthz+token keepalive/me pipelined/healthz pipelined/healthz+token pipelined/me pipelined/auth_404; do
    printf '%-24s %14.0f %18.3f %22.3f\n' "$label" "$(median "$label" 2)" "$(median "$label" 3)" "$(median "$label" 4)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# paired OP A B COLUMN: median over rounds of A/B (OP=ratio) or A−B (OP=delta) within each
# round; runs of one round are adjacent in time, so this resists slow drifts of the machine.
paired() {
    awk -v op="$1" -v a="$2" -v b="$3" -v c="$4" '
        $1 == a { va[$5] = $c }
        $1 == b { vb[$5] = $c }
        END { for (r in va) if (r in vb) print (op == "ratio" ? va[r] / vb[r] : va[r] - vb[r]) }
    ' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
echo
echo "keep-alive  /me ÷ /healthz req/s:        $(ratio "$(median keepalive/me 2)" "$(median keepalive/healthz 2)")  (target ≥ 0.95)"
echo "pipelined   /me ÷ /healthz req/s:        $(ratio "$(median pipelined/me 2)" "$(median pipelined/healthz 2)")  (target ≥ 0.70)"
echo "pipelined   auth_404 ÷ /healthz req/s:   $(ratio "$(median pipelined/auth_404 2)" "$(median pipelined/healthz 2)")"
echo "keep-alive  added cpu µs/req (/me − /healthz):       stat $(delta "$(median keepalive/me 3)" "$(median keepalive/healthz 3)")  schedstat $(delta "$(median keepalive/me 4)" "$(median keepalive/healthz 4)")"
echo "pipelined   added cpu µs/req (/me − /healthz):       stat $(delta "$(median pipelined/me 3)" "$(median pipelined/healthz 3)")  schedstat $(delta "$(median pipelined/me 4)" "$(median pipelined/healthz 4)")  (target ≤ 0.5)"
echo "pipelined   added cpu µs/req (auth_404 − /healthz): stat $(delta "$(median pipelined/auth_404 3)" "$(median pipelined/healthz 3)")  schedstat $(delta "$(median pipelined/auth_404 4)" "$(median pipelined/healthz 4)")"
echo "Same request bytes (the token header sent to /healthz too, which ignores it):"
echo "keep-alive  /me ÷ /healthz+token req/s:  $(ratio "$(median keepalive/me 2)" "$(median keepalive/healthz+token 2)")"
echo "pipelined   /me ÷ /healthz+token req/s:  $(ratio "$(median pipelined/me 2)" "$(median pipelined/healthz+token 2)")"
echo "pipelined   auth_404 ÷ /healthz+token req/s (the layer alone): $(ratio "$(median pipelined/auth_404 2)" "$(median pipelined/healthz+token 2)")"
echo "keep-alive  added cpu µs/req (/me − /healthz+token):       schedstat $(delta "$(median keepalive/me 4)" "$(median keepalive/healthz+token 4)")"
echo "pipelined   added cpu µs/req (/me − /healthz+token):       schedstat $(delta "$(median pipelined/me 4)" "$(median pipelined/healthz+token 4)")"
echo "pipelined   added cpu µs/req (auth_404 − /healthz+token): schedstat $(delta "$(median pipelined/auth_404 4)" "$(median pipelined/healthz+token 4)")"
echo "pipelined   token header alone, cpu µs/req (/healthz+token − /healthz): schedstat $(delta "$(median pipelined/healthz+token 4)" "$(median pipelined/healthz 4)")"
echo
echo "Paired within rounds (median over rounds of the per-round ratio or difference):"
echo "keep-alive  /me ÷ /healthz req/s:        $(paired ratio keepalive/me keepalive/healthz 2)"
echo "pipelined   /me ÷ /healthz req/s:        $(paired ratio pipelined/me pipelined/healthz 2)"
echo "pipelined   auth_404 ÷ /healthz req/s:   $(paired ratio pipelined/auth_404 pipelined/healthz 2)"
echo "pipelined   auth_404 ÷ /healthz+token req/s (the layer alone): $(paired ratio pipelined/auth_404 pipelined/healthz+token 2)"
echo "pipelined   added cpu µs/req (/me − /healthz):       $(paired delta pipelined/me pipelined/healthz 4)"
echo "pipelined   added cpu µs/req (auth_404 − /healthz+token): $(paired delta pipelined/auth_404 pipelined/healthz+token 4)"

#!/usr/bin/env bash
# Instructions a request costs the server's shard threads, counted by
# callgrind: steady where wall-clock rates are not (a noisy VM). One shard,
# one client (wrk -c1, or C=N), a warm-up first (V8's optimizing compiler
# settles within ~30 s under valgrind), then a measured stretch.
#
#   bench/callgrind/run.sh BINARY [PATH] [METHOD]
#   SERVER=js bench/callgrind/run.sh build/release/src/dobj-js /counter/hot
#   bench/callgrind/run.sh build/release/examples/dobj-examples /counter/hot/increment POST
#
# BINARY is dobj-examples (or any server taking its flags) or, with
# SERVER=js, dobj-js (it serves bench/workerd's Worker). WARM (s, default 30),
# DURATION (s, default 10), C (clients, default 1), OUT (callgrind file, default
# a temporary one, kept for callgrind_annotate). Prints the requests, the
# shard threads' instructions and their quotient.
set -euo pipefail
BIN=${1:?usage: run.sh BINARY [PATH] [METHOD]}
P=${2:-/counter/hot}
M=${3:-GET}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
OUT=${OUT:-$WORK/callgrind.out}
PORT=${PORT:-18961}
ARGS=(--shards 1 --listen 127.0.0.1:$PORT --data "$WORK/data" --admin-token x)
[ "${SERVER:-}" = js ] && ARGS=("$ROOT/bench/workerd/wrangler.jsonc" "${ARGS[@]}")
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" "${ARGS[@]}" > "$WORK/server.log" 2>&1 &
VP=$!
trap 'kill $VP 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -s -o /dev/null -X "$M" "http://127.0.0.1:$PORT$P" && break; sleep 0.3; done
SCRIPT=()
[ "$M" = POST ] && SCRIPT=(-s "$ROOT/bench/wrk/post.lua")
wrk -t1 -c"${C:-1}" -d"${WARM:-30}"s "${SCRIPT[@]}" "http://127.0.0.1:$PORT$P" > /dev/null
callgrind_control -z $VP > /dev/null
N=$(wrk -t1 -c"${C:-1}" -d"${DURATION:-10}"s "${SCRIPT[@]}" "http://127.0.0.1:$PORT$P" | awk '/requests in/ {print $1}')
callgrind_control -d measured $VP > /dev/null
kill -TERM $VP
wait $VP 2>/dev/null || true
trap - EXIT
DUMP=$(ls "$OUT".* | head -1)
I=$(callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null |
    awk '!found && /Shard::start\(\)::\{lambda\(\)#1\}::operator\(\)\(\) const/ {gsub(",", "", $1); print $1; found = 1}')
echo "requests $N, shard instructions $I, per request $((I / N)) ($DUMP)"

#!/usr/bin/env bash
# The hot counter in rounds with the object idle between them (long enough
# to be evicted, so each round begins by reopening its history), showing
# whether the rate holds as the history grows. Not a test.
#
#   bench/history/idle_rounds.sh BINARY [ROUNDS] [IDLE_SECONDS] [server flags...]
#   bench/history/idle_rounds.sh build/release/examples/dobj-examples 6 25 --history
#
# Prints each round's rate and the data folder's size; at the end, the time
# of the first history query after an eviction (which reads the index) and of
# the second.
set -euo pipefail
bin=${1:?usage: bench/history/idle_rounds.sh BINARY [ROUNDS] [IDLE_SECONDS] [flags...]}
rounds=${2:-6}
idle=${3:-25}
shift $(($# < 3 ? $# : 3))
here=$(cd "$(dirname "$0")/.." && pwd)
data=$(mktemp -d)
port=18931
"$bin" --listen 127.0.0.1:$port --data "$data" --admin-token bench "$@" > "$data.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data" "$data.log"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/counter/warm" && break; sleep 0.1; done
curl -s -X POST "http://127.0.0.1:$port/counter/hot/increment" > /dev/null
for ((r = 1; r <= rounds; r++)); do
  rps=$(wrk -t2 -c64 -d5s -s "$here/wrk/post.lua" "http://127.0.0.1:$port/counter/hot/increment" |
        awk '/Requests\/sec/ {print int($2)}')
  echo "round $r: $rps/s, data $(du -sm "$data" | cut -f1) MB"
  sleep "$idle"
done
file=$(find "$data/objects" -name '*.sqlite' -size +0 | head -1)
[[ -n $file ]] || exit 0
route="/_dobj/objects/$(basename "$(dirname "$(dirname "$file")")")/$(basename "$file" .sqlite)/history?limit=1"
for which in first second; do
  t=$(curl -s -o /dev/null -w '%{time_total}' -H 'authorization: Bearer bench' "http://127.0.0.1:$port$route")
  echo "$which history query after the idle time: ${t}s"
done

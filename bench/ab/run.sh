#!/usr/bin/env bash
# Two builds of the example server side by side: each workload runs against
# A, then B, round after round, so that machine noise hits both alike; the
# table gives each side's median and B/A.
#
#   bench/ab/run.sh A_BINARY B_BINARY            # 6 rounds of 5 s
#   ROUNDS=10 DURATION=10 bench/ab/run.sh A B
#   B_FLAGS=--history bench/ab/run.sh BIN BIN   # one build, two sets of flags
#   ONLY=hot-c64 bench/ab/run.sh A B             # one workload
#
# Build an older commit with: git worktree add /tmp/old <commit> &&
# (cd /tmp/old && cmake --preset release && cmake --build build/release
# --target dobj-examples). Not a test: nothing here runs in CI.
set -euo pipefail
a=${1:?usage: bench/ab/run.sh A_BINARY B_BINARY}
b=${2:?usage: bench/ab/run.sh A_BINARY B_BINARY}
rounds=${ROUNDS:-6}
duration=${DURATION:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() {  # binary, name, port, extra flags
  mkdir -p "$work/$2"
  # shellcheck disable=SC2086
  "$1" --listen "127.0.0.1:$3" --data "$work/$2" ${4:-} > "$work/$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$3/counter/warm" && return 0
    sleep 0.1
  done
  echo "ab: $2 did not start" >&2; cat "$work/$2.log" >&2; exit 1
}
start "$a" A 18801 "${A_FLAGS:-}"
start "$b" B 18802 "${B_FLAGS:-}"
for port in 18801 18802; do
  curl -s -X PUT "http://127.0.0.1:$port/kv/bench/k" -d '{"user":"ada","score":42}' > /dev/null
  curl -s -X POST "http://127.0.0.1:$port/counter/hot/increment" > /dev/null
done

# name, wrk arguments (the URL's port is filled in)
workloads=(
  "hot-c64|-s $here/wrk/post.lua|/counter/hot/increment"
  "read-c64||/counter/hot"
  "kv-get-c64||/kv/bench/k"
  "many-c64|-s $here/wrk/many.lua|/"  # increments over 100,000 counters, most not open
)
if [[ -n ${ONLY:-} ]]; then  # ONLY=hot-c64: that workload alone
  kept=()
  for w in "${workloads[@]}"; do [[ ${w%%|*} == "$ONLY" ]] && kept+=("$w"); done
  workloads=("${kept[@]}")
fi
declare -A samples
for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    IFS='|' read -r name args path <<< "$w"
    for side in A B; do
      port=$([[ $side == A ]] && echo 18801 || echo 18802)
      # shellcheck disable=SC2086
      rps=$(wrk -t2 -c64 -d"${duration}s" $args "http://127.0.0.1:$port$path" |
            awk '/Requests\/sec/ {print int($2)}')
      samples[$name.$side]+="$rps "
      echo "round $r $name $side: $rps/s" >&2
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2))}'; }
echo "| workload | A (req/s) | B (req/s) | B/A | A samples | B samples |"
echo "|---|---:|---:|---:|---|---|"
for w in "${workloads[@]}"; do
  name=${w%%|*}
  ma=$(echo "${samples[$name.A]}" | median)
  mb=$(echo "${samples[$name.B]}" | median)
  echo "| $name | $ma | $mb | $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2f", b/a}') | ${samples[$name.A]}| ${samples[$name.B]}|"
done

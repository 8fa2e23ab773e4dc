#!/usr/bin/env bash
# bench/cluster/run.sh: a 3-node cluster (3 etcd members, all on this machine)
# against a single node and workerd (bench/workerd/workerd.sh: the newest
# release unless WORKERD_VERSION pins one), side by side in one run, with wrk.
#
#   bench/cluster/run.sh              # 3 rounds of 5 s per workload, 3 replicas
#   DURATION=10 ROUNDS=5 REPLICAS=1 bench/cluster/run.sh
#   NODE_FLAGS=--history bench/cluster/run.sh   # flags for every dobj node (single included)
#
# Workloads (64 connections):
#   hot-local    one counter, requests sent to the node that owns it
#   hot-forward  the same counter through a node that forwards to the owner
#   many         increments of 100,000 counters through one node (2/3 forwarded)
# Prints a Markdown table (medians over rounds) to stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
REPLICAS=${REPLICAS:-3}
read -ra node_flags <<<"${NODE_FLAGS:-}"
extra=(wrk etcd-server)
command -v npm >/dev/null || extra+=(npm)
scripts/deps.sh "${extra[@]}"
# shellcheck source=bench/workerd/workerd.sh
source bench/workerd/workerd.sh
workerd_install
cmake --preset release >/dev/null
cmake --build build/release --target dobj-examples dobj-cli >/dev/null
bin=build/release/examples/dobj-examples
cli=build/release/src/dobj
tmp=$(mktemp -d /tmp/dobj-cluster-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
token=bench

initial="" endpoints=""
for i in 1 2 3; do
  initial+="${initial:+,}e$i=http://127.0.0.1:$((23180 + 10 * i))"
  endpoints+="${endpoints:+,}127.0.0.1:$((23179 + 10 * i))"
done
for i in 1 2 3; do
  c=http://127.0.0.1:$((23179 + 10 * i)) p=http://127.0.0.1:$((23180 + 10 * i))
  etcd --name "e$i" --data-dir "$tmp/e$i" --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "$initial" \
    >"$tmp/e$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  $bin --listen "127.0.0.1:1890$i" --data "$tmp/n$i" --cluster "$endpoints" --node-id "n$i" \
    --peer-listen "127.0.0.1:1891$i" --admin-token $token --replicas "$REPLICAS" "${node_flags[@]}" >"$tmp/n$i.log" 2>&1 &
  pids+=($!)
done
$bin --listen 127.0.0.1:18900 --data "$tmp/single" --admin-token $token "${node_flags[@]}" >"$tmp/single.log" 2>&1 &
pids+=($!)
workerd_start 18920 "$tmp/workerd"
pids+=($workerd_pid)
for _ in $(seq 300); do
  $cli --server http://127.0.0.1:18901 --token $token --json cluster status 2>/dev/null |
    grep -q '"unplaced": 0' && break
  sleep 0.2
done
sleep 1

# Which node owns the hot counter: the one with its WAL (backups keep plain
# copies) after one increment.
curl -s -X POST http://127.0.0.1:18901/counter/hot/increment >/dev/null
owner=1
for i in 1 2 3; do [[ -n $(find "$tmp/n$i/objects" -name '*.sqlite-wal' 2>/dev/null) ]] && owner=$i; done
forwarder=$((owner % 3 + 1))
curl -s -X POST http://127.0.0.1:18900/counter/hot/increment >/dev/null
for _ in $(seq 100); do curl -s -o /dev/null -X POST http://127.0.0.1:18920/counter/hot/increment && break; sleep 0.1; done

cat >"$tmp/hot.lua" <<'LUA'
wrk.method = "POST"
request = function() return wrk.format(nil, "/counter/hot/increment") end
LUA
run() {  # port script -> "req/s p99ms"
  wrk -t2 -c64 -d"${DURATION}s" -s "$2" --latency "http://127.0.0.1:$1" >"$tmp/wrk.out"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' "$tmp/wrk.out")
  if grep -q "Non-2xx" "$tmp/wrk.out"; then echo "errors: $(grep Non-2xx "$tmp/wrk.out")" >&2; fi
  echo "$rps $p99"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A results
for round in $(seq "$ROUNDS"); do
  for w in hot-local hot-forward many; do
    case $w in
      hot-local)
        c=$(run $((18900 + owner)) "$tmp/hot.lua"); s=$(run 18900 "$tmp/hot.lua"); k=$(run 18920 "$tmp/hot.lua") ;;
      hot-forward) c=$(run $((18900 + forwarder)) "$tmp/hot.lua") ;;  # single and workerd: as hot-local
      many) c=$(run 18901 bench/wrk/many.lua); s=$(run 18900 bench/wrk/many.lua); k=$(run 18920 bench/wrk/many.lua) ;;
    esac
    results[$w-c]+="$c"$'\n' results[$w-s]+="$s"$'\n' results[$w-k]+="$k"$'\n'
  done
done
echo "replicas: $REPLICAS; node flags: ${NODE_FLAGS:-none}; the hot counter's owner: n$owner, forwarded through n$forwarder"
echo
echo "workerd $WORKERD_VERSION (one process, its own storage: no replicas)"
echo
echo "| workload | cluster req/s | cluster p99 ms | single req/s | single p99 ms | workerd req/s | workerd p99 ms | cluster/single | cluster/workerd |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
col() { printf '%s' "${results[$1]}" | awk -v f="$2" '{print $f}' | median; }
for w in hot-local hot-forward many; do
  cr=$(col "$w-c" 1) cp=$(col "$w-c" 2) sr=$(col "$w-s" 1) sp=$(col "$w-s" 2) kr=$(col "$w-k" 1) kp=$(col "$w-k" 2)
  echo "| $w | $cr | $cp | $sr | $sp | $kr | $kp | $(awk -v a="$cr" -v b="$sr" 'BEGIN {printf "%.2f", a / b}') |" \
    "$(awk -v a="$cr" -v b="$kr" 'BEGIN {printf "%.1f", a / b}') |"
done

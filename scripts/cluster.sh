#!/usr/bin/env bash
# Starts a local cluster for development: three etcd members and three dobj
# nodes (the example server) on loopback ports, each with its own folder under
# ./dobj-cluster, and prints their addresses. Ctrl-C stops them all; their
# data stays, so running it again brings the same cluster back.
#
#   scripts/cluster.sh              # nodes on 127.0.0.1:8801-8803
#   DOBJ_CLUSTER_DIR=/tmp/c scripts/cluster.sh --replicas 1
#
# Extra arguments go to every node. docs/cluster.md explains the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh etcd-server
cmake --preset release >/dev/null
cmake --build build/release --target dobj-examples dobj-cli
dir=${DOBJ_CLUSTER_DIR:-dobj-cluster}
token=${DOBJ_ADMIN_TOKEN:-dev-cluster-token}
mkdir -p "$dir"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

initial=""
for i in 1 2 3; do initial+="${initial:+,}e$i=http://127.0.0.1:$((2380 + 10 * i))"; done
state=new
[[ -d "$dir/e1" ]] && state=existing
endpoints=""
for i in 1 2 3; do
  client=http://127.0.0.1:$((2379 + 10 * i))
  peer=http://127.0.0.1:$((2380 + 10 * i))
  endpoints+="${endpoints:+,}127.0.0.1:$((2379 + 10 * i))"
  etcd --name "e$i" --data-dir "$dir/e$i" --listen-client-urls "$client" \
    --advertise-client-urls "$client" --listen-peer-urls "$peer" \
    --initial-advertise-peer-urls "$peer" --initial-cluster "$initial" \
    --initial-cluster-state "$state" --initial-cluster-token dobj-dev \
    >"$dir/e$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  build/release/examples/dobj-examples --listen "127.0.0.1:880$i" --data "$dir/n$i" \
    --cluster "$endpoints" --node-id "n$i" --peer-listen "127.0.0.1:881$i" \
    --admin-token "$token" "$@" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
echo "etcd members: $endpoints (logs in $dir/e*.log)"
echo "dobj nodes:   http://127.0.0.1:8801 http://127.0.0.1:8802 http://127.0.0.1:8803 (logs in $dir/n*.log)"
echo "admin token:  $token"
for _ in $(seq 1 100); do
  if build/release/src/dobj --server http://127.0.0.1:8801 --token "$token" --json cluster status 2>/dev/null |
      grep -q '"unplaced": 0'; then
    break
  fi
  sleep 0.2
done
build/release/src/dobj --server http://127.0.0.1:8801 --token "$token" cluster status || true
echo
echo "try: curl -X POST http://127.0.0.1:8802/counter/hello/increment"
echo "     build/release/src/dobj --server http://127.0.0.1:8801 --token $token cluster status"
wait -n
echo "a process of the cluster exited; see the logs in $dir"

#!/usr/bin/env bash
# Installs dobj into a temporary prefix, builds examples/out_of_tree against it
# with find_package(dobj), runs its test (the installed test kit), starts it
# and checks that it answers.
set -euo pipefail
build_dir=$1
source_dir=$2
tmp=$(mktemp -d)
pid=""
cleanup() { [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source_dir/examples/out_of_tree" -B "$tmp/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/greeter_test"

"$tmp/build/greeter" --listen 127.0.0.1:0 --data "$tmp/data" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q listening "$tmp/out" && break
  sleep 0.1
done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/out")
[[ -n $port ]] || { echo "greeter did not start:"; cat "$tmp/out"; exit 1; }

ask() {
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /greeter/ada HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  tail -n1 <&3
  exec 3<&-
}
first=$(ask)
second=$(ask)
[[ $first == "hello ada, visit 1" ]] || { echo "unexpected: $first"; exit 1; }
[[ $second == "hello ada, visit 2" ]] || { echo "unexpected: $second"; exit 1; }
echo "out-of-tree greeter answered: $second"

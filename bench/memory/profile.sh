#!/usr/bin/env bash
# What a fresh server's memory holds after touching N objects: anonymous RSS,
# jemalloc's live bytes, the size classes with the most live bytes, and the
# allocation sites (jemalloc's heap profile, symbolized). A measuring aid,
# not a test; docs/performance.md, "What a resident object costs in memory".
#
#   bench/memory/profile.sh                    # C++ example server, 10,000 objects
#   SERVER=js bench/memory/profile.sh          # dobj-js serving bench/workerd/worker.js
#   OBJECTS=2000 bench/memory/profile.sh --max-open-databases 4   # server flags after
#
# Needs a release build with jemalloc (the default), cc, python3, addr2line.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
objects=${OBJECTS:-10000}
port=${PORT:-18911}
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cmake --build "$here/build/release" --target dobj-examples dobj-js dobj-touch >/dev/null
cc -shared -fPIC -O1 -o "$work/jemalloc_dump.so" "$here/bench/memory/jemalloc_dump.c" -ljemalloc -lpthread
if [[ ${SERVER:-cpp} == js ]]; then
  binary=$here/build/release/src/dobj-js
  command=("$binary" "$here/bench/workerd/wrangler.jsonc")
else
  binary=$here/build/release/examples/dobj-examples
  command=("$binary")
fi
anon() { awk '/RssAnon/ { print $2 }' "/proc/$pid/status"; }
live() { awk '/^Allocated:/ { sub(",", "", $2); print $2 }' "$work/heap.stats"; }
dump() {  # signal, then wait until the files are written
  rm -f "$work/heap.stats"
  kill -USR2 "$pid"
  for _ in $(seq 100); do
    grep -q "jemalloc_dump: done" "$work/heap.stats" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no statistics from the server (is it linked with jemalloc?)" >&2
  exit 1
}
# A fresh server (profiling or not: its own bookkeeping would swell the
# figures, so they come from a run without it), warmed by one request, then
# N objects touched; dumps before and after.
touch_objects() {
  rm -rf "$work/data"
  JEMALLOC_DUMP=$work/heap MALLOC_CONF=$1 LD_PRELOAD=$work/jemalloc_dump.so \
    "${command[@]}" --listen "127.0.0.1:$port" --data "$work/data" "${flags[@]}" >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/counter/warm" && break
    sleep 0.1
  done
  dump
  before_live=$(live) before=$(anon)
  "$here/build/release/bench/dobj-touch" "$port" /counter/mem "$objects" 16 >/dev/null
  after=$(anon)
  dump
  after_live=$(live)
}
flags=("$@")

touch_objects ""
kill "$pid"
wait "$pid" 2>/dev/null || true
echo "after touching $objects objects ($(basename "$binary")${*:+ $*}):"
echo "  anonymous RSS: $before -> $after kB, $(( (after - before) * 1024 / objects )) bytes per object"
echo "  jemalloc live: $(( before_live / 1024 )) -> $(( after_live / 1024 )) kB, $(( (after_live - before_live) / objects )) bytes per object"
echo
echo "size classes with the most live bytes (jemalloc's bins and large classes):"
awk '/^bins:/ { table = 1; next }  # the bins, then the large size classes, same columns
     table && $1 ~ /^[0-9]+$/ && $3 + 0 > 0 { print $3, $1 }' "$work/heap.stats" |
  sort -rn | head -12 | awk '{ printf "  %9.2f MB in blocks of %d bytes (%d)\n", $1 / 1e6, $2, $1 / $2 }'
echo

touch_objects prof:true,lg_prof_sample:6
echo "allocation sites of the live heap (a second run, with profiling: one sample every 64 bytes on average):"
python3 "$here/bench/memory/sites.py" "$work/heap.prof" "$binary" 2 20 | sed 's/^/  /'

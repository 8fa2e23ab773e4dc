#!/usr/bin/env bash
# Time to restore a 1 GiB object to a bookmark from before a week of small
# writes (issue #22), and what the history costs on disk. Not a test.
#
#   bench/history/restore.sh build/ci/examples/dobj-examples [GIB] [SMALL_COMMITS]
#
# The object is filled with 120 KB values through /kv/<name>/batch (60 per
# commit), a bookmark is taken, SMALL_COMMITS single-key writes follow (the
# "week"), then POST .../restore?bookmark= puts the filled state back. The
# restore rebuilds the database from the history's last base before the
# bookmark plus every commit after it, off the object's shard (the blocking
# pool). One shard, so that a probe reading another object meanwhile shows
# whether the shard is still free: its slowest answer is printed, and the
# server's resident memory, sampled with it.
set -euo pipefail
bin=${1:?usage: bench/history/restore.sh DOBJ_EXAMPLES [GIB] [SMALL_COMMITS]}
gib=${2:-1}
small=${3:-1000}
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
port=18931
token=bench-history
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
"$bin" --listen 127.0.0.1:$port --data "$work/data" --history --history-days 0 --admin-token $token \
  --max-object-bytes $((gib * 3 << 30)) --shards 1 > "$work/log" 2>&1 &
pid=$!
trap cleanup EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/counter/warm" && break; sleep 0.1; done
python3 - "$port" "$gib" "$small" "$token" "$pid" <<'PY'
import http.client, json, sys, threading, time
port, gib, small, token, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
c = http.client.HTTPConnection("127.0.0.1", port)
def req(method, path, body=None, admin=False):
    h = {"Authorization": "Bearer " + token} if admin else {}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{method} {path}: {r.status} {data[:200]}")
    return data
value = "v" * 120_000
target, n, t0 = gib << 30, 0, time.time()
while n * 120_000 < target:
    req("POST", "/kv/big/batch", json.dumps({"put": {f"k{n + i}": value for i in range(60)}}))
    n += 60
fill = time.time() - t0
hist = json.loads(req("GET", "/_dobj/objects/KV/name:big/history?limit=1", admin=True))
mark = hist["current"]
t0 = time.time()
for i in range(small):
    req("PUT", f"/kv/big/k{i % 1000}", json.dumps("week %d" % i))
week = time.time() - t0
hist = json.loads(req("GET", "/_dobj/objects/KV/name:big/history?limit=1", admin=True))
# A probe on another connection: another object, the same (only) shard.
done, probes = threading.Event(), []
rss_before, rss_peak = rss_mib(), [0.0]
def probe():
    p = http.client.HTTPConnection("127.0.0.1", port)
    while not done.is_set():
        rss_peak[0] = max(rss_peak[0], rss_mib())
        t = time.time()
        p.request("GET", "/counter/probe")
        p.getresponse().read()
        probes.append(time.time() - t)
        time.sleep(0.01)
prober = threading.Thread(target=probe)
prober.start()
t0 = time.time()
out = json.loads(req("POST", "/_dobj/objects/KV/name:big/restore?bookmark=" + mark, admin=True))
restore = time.time() - t0
done.set()
prober.join()
check = req("GET", "/kv/big/k0")
assert json.loads(check) == value, "k0 is not the filled value after the restore"
print(f"filled {n} values of 120 KB ({n * 120_000 / 2**30:.2f} GiB) in {fill:.1f} s; "
      f"{small} small commits in {week:.1f} s")
print(f"history: {hist['commits']} commits, {hist['historyBytes'] / 2**30:.2f} GiB; "
      f"database {out['databaseBytes'] / 2**30:.2f} GiB")
print(f"restore to the bookmark before the small commits: {restore:.1f} s")
print(f"another object on the same shard meanwhile: {len(probes)} reads, slowest {max(probes) * 1000:.1f} ms")
print(f"server memory (RSS) during the restore: up to {rss_peak[0]:.0f} MiB, {rss_before:.0f} MiB before it")
PY

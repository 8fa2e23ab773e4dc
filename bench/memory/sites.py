#!/usr/bin/env python3
"""Live heap by allocation site, from a jemalloc heap profile (prof.dump).

    sites.py PROFILE BINARY [DEPTH] [TOP]

Each site is the first DEPTH frames in BINARY (the server; jemalloc's frames
skipped), with the library that made the allocation in brackets;
symbolized with addr2line. A measuring aid for bench/memory/profile.sh."""
import collections
import re
import subprocess
import sys

path, binary = sys.argv[1], sys.argv[2]
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 2
top = int(sys.argv[4]) if len(sys.argv) > 4 else 25
lines = open(path).read().split("\n")
stacks, maps, in_maps = [], [], False
for i, line in enumerate(lines):
    if line.startswith("MAPPED_LIBRARIES"):
        in_maps = True
    elif in_maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \S+\s*(\S*)", line)
        if m and "x" in m.group(3):
            maps.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(4), 16), m.group(5)))
    elif line.startswith("@"):
        m = re.match(r"\s*t\*:\s*(\d+):\s*(\d+)", lines[i + 1])
        stacks.append(([int(a, 16) for a in line.split()[1:]], int(m.group(2))))


def where(address):
    for low, high, offset, name in maps:
        if low <= address < high:
            return name, address - low + offset
    return "?", address


names = {}


def symbol(name, offset):
    if (name, offset) not in names:
        out = subprocess.run(["addr2line", "-f", "-C", "-e", name, hex(offset - 1)],
                             capture_output=True, text=True).stdout.split("\n")
        function = out[0][:80] if out and out[0] else "?"
        place = out[1].split("/")[-1] if len(out) > 1 else ""
        names[(name, offset)] = f"{function} ({place})"
    return names[(name, offset)]


sites, total = collections.Counter(), 0
for addresses, size in stacks:
    total += size
    frames = [where(a) for a in addresses]
    frames = [f for f in frames if "jemalloc" not in f[0]]
    own = [f for f in frames if f[0] == binary][:depth]
    library = frames[0][0].split("/")[-1] if frames else "?"
    site = " <- ".join(symbol(*f) for f in own) if own else "(no frame of the server's)"
    sites[f"[{library}] {site}"] += size
print(f"live heap: {total / 1e6:.1f} MB (sampled)")
for site, size in sites.most_common(top):
    print(f"{size / 1e6:8.2f} MB  {site}")

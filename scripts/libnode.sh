#!/usr/bin/env bash
# Unpacks V8 (Debian 12's libnode108 and libnode-dev, Node.js 18.20 / V8 10.2)
# under build/deps/libnode, for dobj's JavaScript objects (src/js), and
# Debian's node-acorn (the JavaScript parser the reviewer runs in V8,
# src/review).
#
# Not installed system-wide: libnode108 depends on node-acorn and friends,
# which conflict with the Node.js many machines already have (NodeSource's
# nodejs package). The library's own dependencies are ordinary Debian
# packages and are installed as usual. Safe to run again: it does nothing
# when the folder is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=build/deps/libnode
if [[ -f $dest/usr/lib/x86_64-linux-gnu/libnode.so.108 && -f $dest/usr/include/node/v8.h &&
      -f $dest/usr/share/nodejs/acorn/dist/acorn.js ]]; then
  exit 0
fi
scripts/deps.sh libuv1 libuv1-dev libicu72 libc-ares2 libnghttp2-14 libbrotli1 zlib1g
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt-get download drops privileges to _apt
(cd "$tmp" && apt-get download libnode108 libnode-dev node-acorn >/dev/null 2>&1) || {
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  (cd "$tmp" && apt-get download libnode108 libnode-dev node-acorn >/dev/null)
}
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest.tmp"; done
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "libnode: unpacked $(ls "$tmp") under $dest"

#!/bin/sh
# Runs $DOBJ_TMPFS_BINARY with the arguments it is given (ServerProcess's:
# --listen ADDR --data DIR ...), its data folder DIR on a tmpfs of
# $DOBJ_TMPFS_SIZE in a mount namespace of its own: a small disk for the
# full-disk test, seen by no other process. Needs root (CI runs as root).
data=$4
exec unshare -m sh -c 'mount -t tmpfs -o size="$DOBJ_TMPFS_SIZE" tmpfs "$0" && exec "$DOBJ_TMPFS_BINARY" "$@"' "$data" "$@"

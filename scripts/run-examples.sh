#!/usr/bin/env bash
# Builds dobj (release) and starts the example server on 127.0.0.1:8787 with
# its data in ./dobj-data. Extra arguments go to the server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/libnode.sh
cmake --preset release >/dev/null
cmake --build build/release --target dobj-examples dobj-cli
exec build/release/examples/dobj-examples --listen 127.0.0.1:8787 --data dobj-data "$@"

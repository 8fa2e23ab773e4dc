#!/usr/bin/env bash
# Builds dobj with warnings as errors and runs every test (unit, runtime,
# integration against the real server binary, and the out-of-tree build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh chromium  # the chat page is tested in headless Chromium
cmake --preset ci >/dev/null
cmake --build build/ci
ctest --preset ci -j2

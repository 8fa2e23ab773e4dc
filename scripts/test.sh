#!/usr/bin/env bash
# Builds dobj with warnings as errors and runs every test (unit, runtime,
# integration against the real server binary, the out-of-tree build, and the
# MCP test with the official SDK), runs each fuzz target for 30 seconds, then
# builds and runs the suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh chromium etcd-server iptables  # the chat page is tested in headless Chromium; the cluster tests run etcd (and cut links with iptables)
scripts/mcp-sdk.sh        # the official MCP SDK, from npm, for the MCP test
scripts/libnode.sh        # V8 (Debian's libnode) for JavaScript objects, under build/deps
cmake --preset ci >/dev/null
cmake --build build/ci
ctest --preset ci -j2

# Each libFuzzer target for 30 s from its seeds (scripts/fuzz.sh; longer runs
# are recorded in docs/security.md).
scripts/fuzz.sh all 30

# The sanitizer build: every test but the out-of-tree build (it installs and
# links a plain build) and the SDK test (a Node.js process against the server,
# already run above).
cmake --preset asan >/dev/null
cmake --build build/asan
ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --preset asan -j2 -E 'OutOfTree|McpSdk'

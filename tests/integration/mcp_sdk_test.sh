#!/usr/bin/env bash
# Runs mcp_sdk_test.mjs against a fresh example server. The SDK comes from npm,
# which the test command does not download from: scripts/mcp-sdk.sh installs
# it into ~/.cache/dobj-mcp-sdk. Without it (or without node) the test is
# skipped (exit 77).
#   mcp_sdk_test.sh <dobj-examples> <dobj cli>
set -euo pipefail
examples=$1 cli=$2
sdk=${DOBJ_MCP_SDK:-$HOME/.cache/dobj-mcp-sdk}/node_modules
if ! command -v node >/dev/null || [[ ! -d $sdk/@modelcontextprotocol/sdk ]]; then
  echo "skipped: the MCP SDK is not installed (run scripts/mcp-sdk.sh)"
  exit 77
fi
dir=$(mktemp -d /tmp/dobj-mcp-XXXXXX)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
"$examples" --listen 127.0.0.1:0 --data "$dir/data" --admin-token sdk-token >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  port=$(sed -n 's/^dobj listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/log")
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { cat "$dir/log"; exit 1; }
# The test file is copied next to the SDK so that node resolves it there.
cp "$(dirname "$0")/mcp_sdk_test.mjs" "$sdk/../dobj_mcp_sdk_test.mjs"
node "$sdk/../dobj_mcp_sdk_test.mjs" "http://127.0.0.1:$port" sdk-token "$cli"

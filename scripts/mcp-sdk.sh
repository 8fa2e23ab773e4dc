#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (npm @modelcontextprotocol/sdk)
# into ~/.cache/dobj-mcp-sdk, for tests/integration/mcp_sdk_test.sh. Opt-in:
# the test command does not download from npm, and skips that test without it.
set -euo pipefail
dir=${DOBJ_MCP_SDK:-$HOME/.cache/dobj-mcp-sdk}
version=${MCP_SDK_VERSION:-1.32.2}
# A Node.js from elsewhere may bring its own npm.
command -v npm >/dev/null || "$(dirname "$0")/deps.sh" nodejs npm
mkdir -p "$dir"
cd "$dir"
[[ -f package.json ]] || echo '{"name": "dobj-mcp-sdk", "private": true, "type": "module"}' >package.json
npm install --no-audit --no-fund "@modelcontextprotocol/sdk@$version" >/dev/null
echo "MCP SDK $version in $dir"

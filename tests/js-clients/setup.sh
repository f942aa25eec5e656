#!/usr/bin/env bash
# Installs the JS clients (tests/js-clients: @helia/verified-fetch,
# kubo-rpc-client) from their lockfile. Idempotent: runs `npm ci` only when
# node_modules is missing or older than package-lock.json. Called by cairn's
# Rust interop tests (tests/js_clients.rs).
set -euo pipefail

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "tests/js-clients/setup.sh: '$tool' not found on PATH; install Node.js >= 20.19 with npm to run the JS client interop tests" >&2
    exit 127
  fi
done

cd "$(dirname "${BASH_SOURCE[0]}")"

# @noble/hashes 2.x (via libp2p, and ours for BLAKE3) needs Node >= 20.19
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "tests/js-clients/setup.sh: Node.js >= 20.19 required, found $(node --version)" >&2
  exit 1
fi

# npm ci writes node_modules/.package-lock.json last: use it as the stamp.
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! "$stamp" -ot package-lock.json ]; then
  exit 0
fi

echo "tests/js-clients/setup.sh: installing the JS clients (npm ci)" >&2
npm ci --no-audit --no-fund >&2
touch "$stamp"

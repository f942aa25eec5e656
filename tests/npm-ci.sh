#!/usr/bin/env bash
# Installs the npm packages of one JS test harness (tests/helia, tests/js,
# tests/js-clients, tests/browser) exactly as its package-lock.json pins
# them: `npm ci`, run only when node_modules is missing or older than
# package.json or package-lock.json, nothing otherwise. The directory's
# .npmrc applies (legacy-peer-deps). The Node.js version needed is the one
# the directory's package.json names in engines.node (">=MAJOR.MINOR").
# Called by cairn's Rust tests (tests/common/process.rs). Progress goes to
# stderr only.
# Usage: tests/npm-ci.sh DIR
set -euo pipefail

dir=${1:?usage: tests/npm-ci.sh DIR}
cd "$dir"
me="tests/npm-ci.sh $(basename "$PWD")"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$me: '$tool' not found on PATH; install Node.js with npm to run the tests that use $PWD" >&2
    exit 127
  fi
done

want=$(node -p 'require("./package.json").engines?.node ?? ""')
if ! node -e '
  const m = /^>=\s*(\d+)(?:\.(\d+))?/.exec(process.argv[1]);
  const [a, b] = process.versions.node.split(".").map(Number);
  process.exit(!m || a > +m[1] || (a === +m[1] && b >= +(m[2] ?? 0)) ? 0 : 1);
' "$want"; then
  echo "$me: Node.js $want required, found $(node --version)" >&2
  exit 1
fi

# npm ci writes node_modules/.package-lock.json last: use it as the stamp.
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! "$stamp" -ot package-lock.json ] && [ ! "$stamp" -ot package.json ]; then
  exit 0
fi
echo "$me: installing $(node -p 'require("./package.json").name') (npm ci)" >&2
npm ci --no-audit --no-fund >&2
touch "$stamp"

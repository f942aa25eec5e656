#!/usr/bin/env bash
# Installs what cairn's browser tests (tests/browser.rs) need, idempotently
# and quickly when already there:
#   - Debian's Chromium at /usr/bin/chromium, plus fonts so that pages render
#     readably (fonts-liberation for Arial/Helvetica metrics,
#     fonts-noto-color-emoji for the listing page's 📁/📄 icons); apt-get,
#     only as root. Playwright never downloads a browser of its own here.
#   - playwright-core, pinned in package.json/package-lock.json, into
#     tests/browser/node_modules with `npm ci`.
# Prints progress on stderr only.
set -euo pipefail

me="tests/browser/setup.sh"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"  # shot.mjs honours $CHROMIUM too

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$me: '$tool' not found on PATH; install Node.js >= 20 with npm to run the browser tests" >&2
    exit 127
  fi
done
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "$me: Node.js >= 20 required (playwright-core), found $(node --version)" >&2
  exit 1
fi

cd "$(dirname "${BASH_SOURCE[0]}")"

# --- Debian packages -------------------------------------------------------
installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in fonts-liberation fonts-noto-color-emoji; do
    installed "$pkg" || missing+=("$pkg")
  done
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if [ ! -x "$CHROMIUM" ]; then
      echo "$me: $CHROMIUM is missing and this is not root, so it cannot be installed;" \
        "run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
    echo "$me: warning: not root, cannot install ${missing[*]}; screenshots may show missing glyphs" >&2
  elif ! command -v apt-get >/dev/null 2>&1; then
    echo "$me: need ${missing[*]} but apt-get is not available (not Debian?)" >&2
    [ -x "$CHROMIUM" ] || exit 1
  else
    echo "$me: installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    if [ ! -x "$CHROMIUM" ]; then
      echo "$me: apt-get finished but $CHROMIUM is still missing" >&2
      exit 1
    fi
  fi
fi

# --- playwright-core ---------------------------------------------------------
# npm ci writes node_modules/.package-lock.json last: use it as the stamp.
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! "$stamp" -ot package-lock.json ] && [ ! "$stamp" -ot package.json ]; then
  exit 0
fi
echo "$me: installing playwright-core (npm ci)" >&2
npm ci --no-audit --no-fund >&2
touch "$stamp"

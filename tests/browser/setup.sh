#!/usr/bin/env bash
# Installs what cairn's browser tests (tests/browser.rs) need, idempotently
# and quickly when already there:
#   - playwright-core, pinned in package.json/package-lock.json, into
#     tests/browser/node_modules (tests/npm-ci.sh: `npm ci` when stale);
#   - Debian's Chromium at /usr/bin/chromium, plus fonts so that pages render
#     readably (fonts-liberation for Arial/Helvetica metrics,
#     fonts-noto-color-emoji for the listing page's 📁/📄 icons); apt-get,
#     only as root. Playwright never downloads a browser of its own here.
# Prints progress on stderr only.
set -euo pipefail

me="tests/browser/setup.sh"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"  # shot.mjs honours $CHROMIUM too

cd "$(dirname "${BASH_SOURCE[0]}")"
bash ../npm-ci.sh .

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

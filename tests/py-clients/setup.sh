#!/usr/bin/env bash
# Installs the Python clients of tests/py_clients.rs: a virtualenv at
# tests/py-clients/.venv holding exactly the PyPI packages requirements.txt
# pins (pip, no other index). Made only when the venv is missing or older
# than requirements.txt; nothing otherwise. Needs Python >= 3.11 (pandas 3)
# with its venv module. Called by the Rust test (tests/common/process.rs);
# progress goes to stderr only. Given a directory (tests/s3-clients), makes
# DIR/.venv from DIR/requirements.txt instead.
# Usage: tests/py-clients/setup.sh [DIR]
set -euo pipefail

here="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)"
me="tests/py-clients/setup.sh${1:+ $1}"
py="${PYTHON:-python3}"

if ! command -v "$py" >/dev/null 2>&1; then
  echo "$me: '$py' not found on PATH; install Python >= 3.11 to run the Python client tests" >&2
  exit 127
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "$me: Python >= 3.11 required (pandas 3), found $("$py" --version 2>&1)" >&2
  exit 1
fi

venv="$here/.venv"
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ ! "$stamp" -ot "$here/requirements.txt" ]; then
  exit 0
fi
echo "$me: creating $venv from requirements.txt" >&2
rm -rf "$venv"
if ! "$py" -m venv "$venv" >&2; then
  echo "$me: '$py -m venv' failed (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  --requirement "$here/requirements.txt" >&2
touch "$stamp"

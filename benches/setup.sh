#!/usr/bin/env bash
# Installs the reference tools the benchmarks measure the machine with
# (b3sum; dd and sha256sum come with coreutils) and the HTTP load generator
# the gateway bench uses (wrk). Debian packages only.
set -euo pipefail
if ! command -v b3sum >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq b3sum >/dev/null
  else
    echo "b3sum is missing: install Debian's b3sum package (sudo apt-get install b3sum)" >&2
    exit 1
  fi
fi
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is missing: install Debian's wrk package (sudo apt-get install wrk)" >&2
    exit 1
  fi
fi
b3sum --version
wrk --version 2>&1 | head -1 || true

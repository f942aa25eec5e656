#!/usr/bin/env bash
# Installs the reference tools the benchmarks measure the machine with
# (b3sum; dd and sha256sum come with coreutils) and the HTTP load generator
# the gateway bench uses (wrk), from Debian's packages; and s3s-fs, the S3
# bench's reference server, built from crates.io source into benches/.tools.
set -euo pipefail

# need TOOL: installs Debian's package of that name when TOOL is missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "$1" >/dev/null
  else
    echo "$1 is missing: install Debian's $1 package (sudo apt-get install $1)" >&2
    exit 1
  fi
}
# pkg TOOL PACKAGE: like need, for a tool whose package has another name.
# Debian's packages start their service on install unless policy-rc.d says
# no; the benches start their own copies, so none is started here.
pkg() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ]; then
    local policy=/usr/sbin/policy-rc.d made=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made=1
    fi
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
    if [ -n "$made" ]; then rm -f "$policy"; fi
  else
    echo "$1 is missing: install Debian's $2 package (sudo apt-get install $2)" >&2
    exit 1
  fi
}
need b3sum
need wrk
# The hot-read bench's references: nginx serving a static file, redis GET.
pkg nginx nginx-light
pkg redis-server redis-server
pkg redis-benchmark redis-tools
b3sum --version
wrk --version 2>&1 | head -1 || true

# s3s-fs: the s3s protocol crate over plain files (0.14.1: the s3s release
# cairn uses), built from source once.
tools="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.tools"
if [ ! -x "$tools/bin/s3s-fs" ]; then
  cargo install s3s-fs --version =0.14.1 --features binary --locked --root "$tools"
fi
"$tools/bin/s3s-fs" --version 2>&1 | head -1 || true

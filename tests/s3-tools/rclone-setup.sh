#!/usr/bin/env bash
# Installs the rclone tests/s3_clients.rs drives against cairn's S3
# endpoint: Debian's package, at exactly the version below (apt-get, as
# root: the tests run as root on CI). Nothing when that rclone is already on
# PATH. Called once per test binary by the Rust test; progress goes to
# stderr only.
# Usage: tests/s3-tools/rclone-setup.sh
set -euo pipefail

me="tests/s3-tools/rclone-setup.sh"
deb_version="1.60.1+dfsg-2+b5" # Debian 12 (bookworm)
reports="rclone v1.60.1-DEV"   # what that build's `rclone version` says first

installed() {
  command -v rclone >/dev/null 2>&1 && [ "$(rclone version 2>/dev/null | head -n1)" = "$reports" ]
}

if installed; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$me: no apt-get; install rclone $deb_version (Debian's package) by hand" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$me: installing Debian's rclone needs root (apt-get install rclone=$deb_version)" >&2
  exit 1
fi
echo "$me: installing rclone=$deb_version with apt-get" >&2
apt-get update -qq >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "rclone=$deb_version" >&2; then
  echo "$me: apt-get could not install rclone=$deb_version (available: $(apt-cache policy rclone | sed -n 's/ *Candidate: //p'))" >&2
  exit 1
fi
if ! installed; then
  echo "$me: after the install, \`rclone version\` says '$(rclone version 2>&1 | head -n1)', not '$reports'" >&2
  exit 1
fi

#!/usr/bin/env bash
# Prints the reference CIDs of the standard samples (gen-samples.mjs) for the
# option sets cairn compares against: `CONFIG<TAB>SAMPLE<TAB>CID`.
# usage: tests/js/reference-table.sh [SAMPLEDIR]   (default: a temp dir)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/../npm-ci.sh" "$here"
dir="${1:-}"
if [ -z "$dir" ]; then dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT; fi
node "$here/gen-samples.mjs" "$dir"
configs=(
  ""
  "--cid-version 1"
  "--cid-version 1 --hash blake3"
  "--chunker size-1048576 --max-links 1024 --cid-version 1"
  "--profile unixfs-v1-2025"
  "--layout trickle"
  "--layout trickle --cid-version 1"
  "--chunker size-1024 --max-links 4"
  "--chunker size-1024 --max-links 4 --layout trickle"
)
for cfg in "${configs[@]}"; do
  for s in f0 f1 f262144 f262145 f1000000 f52428800 dir; do
    # shellcheck disable=SC2086
    printf '%s\t%s\t%s\n' "${cfg:-(defaults)}" "$s" "$(node "$here/unixfs-ref.mjs" $cfg "$dir/$s")"
  done
  # shellcheck disable=SC2086
  printf '%s\t%s\t%s\n' "${cfg:-(defaults)}" "dir --hidden" "$(node "$here/unixfs-ref.mjs" $cfg --hidden "$dir/dir")"
done

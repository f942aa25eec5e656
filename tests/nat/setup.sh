#!/usr/bin/env bash
# What tests/nat.rs needs beside iproute2 (`ip netns`): iptables for the NAT
# router namespace and curl to read a daemon's /metrics inside a namespace,
# both Debian's packages, installed when missing.
set -euo pipefail
missing=()
command -v iptables >/dev/null || missing+=(iptables)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
iptables --version

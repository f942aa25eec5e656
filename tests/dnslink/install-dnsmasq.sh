#!/bin/sh
# Installs Debian's dnsmasq (the binary only, no service) for
# tests/dnslink.rs, which serves DNSLink TXT records with it inside a
# network namespace. Does nothing when it is already there.
set -eu
[ -x /usr/sbin/dnsmasq ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends dnsmasq-base
}
[ -x /usr/sbin/dnsmasq ]

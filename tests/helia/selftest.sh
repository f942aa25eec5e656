#!/usr/bin/env bash
# Self-test of the Helia test peer, Helia <-> Helia on 127.0.0.1:
#   A adds a ~3 MiB random file (CIDv0, then CIDv1 + raw leaves) and provides
#   it on the DHT; B dials A and cats it; C dials only B, finds A through the
#   DHT (findprovs) and cats it from A. Bytes compared with cmp. Then a cat of
#   an unknown CID must fail within its timeout while the peer stays usable,
#   D and E (--no-dht --pubsub) join one gossipsub topic and each receives
#   the other's 60,000-byte message byte for byte, but not its own;
#   and every peer must exit 0 on "stop".
# Usage: ./selftest.sh   (KEEP=1 keeps the temp dir with the peers' stderr logs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
here=$PWD
bash ../npm-ci.sh .

tmp=$(mktemp -d "${TMPDIR:-/tmp}/helia-selftest.XXXXXX")
declare -A PID IN OUT
cleanup () {
  local rc=$?
  for p in "${!PID[@]}"; do kill "${PID[$p]}" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    for p in "${!PID[@]}"; do echo "---- stderr of peer $p (last 30 lines)" >&2; tail -n 30 "$tmp/$p.log" >&2 || true; done
  fi
  if [ "${KEEP:-}" = 1 ] || [ "$rc" -ne 0 ]; then echo "logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT

fail () { echo "FAIL: $*" >&2; exit 1; }

# jget JSON EXPR: evaluate a JS expression on the parsed JSON `j`
jget () { node -e 'const j = JSON.parse(process.argv[1]); const v = eval(process.argv[2]); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))' "$1" "$2"; }

# start_peer NAME [flags...]: starts peer.mjs on FIFOs, sets READY to its ready line
start_peer () {
  local name=$1; shift
  mkfifo "$tmp/$name.in" "$tmp/$name.out"
  node "$here/peer.mjs" "$@" <"$tmp/$name.in" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  PID[$name]=$!
  local fdin fdout
  exec {fdin}>"$tmp/$name.in"
  exec {fdout}<"$tmp/$name.out"
  IN[$name]=$fdin OUT[$name]=$fdout
  IFS= read -r -t 60 READY <&"$fdout" || fail "peer $name did not report ready"
  [ "$(jget "$READY" j.ready)" = true ] || fail "peer $name: $READY"
}

# send NAME JSON [TIMEOUT_S]: sends one command, sets REPLY_JSON to the answer line
send () {
  local name=$1 cmd=$2 t=${3:-120}
  printf '%s\n' "$cmd" >&"${IN[$name]}"
  IFS= read -r -t "$t" REPLY_JSON <&"${OUT[$name]}" || fail "peer $name: no answer to $cmd within ${t}s"
  echo "  $name <- $cmd" >&2
  echo "  $name -> ${REPLY_JSON:0:300}" >&2
}
ok () { [ "$(jget "$REPLY_JSON" j.ok)" = true ] || fail "expected ok: $REPLY_JSON"; }

echo "== starting peers A, B, C" >&2
start_peer A; A_ID=$(jget "$READY" j.peerId); A_ADDR=$(jget "$READY" j.addrs[0])
start_peer B; B_ID=$(jget "$READY" j.peerId); B_ADDR=$(jget "$READY" j.addrs[0])
start_peer C; C_ID=$(jget "$READY" j.peerId)
echo "A=$A_ID B=$B_ID C=$C_ID" >&2

send B "{\"cmd\":\"dial\",\"addr\":\"$A_ADDR\"}"; ok
[ "$(jget "$REPLY_JSON" 'j.protocols.includes("/ipfs/bitswap/1.2.0") && j.protocols.includes("/ipfs/kad/1.0.0")')" = true ] \
  || fail "A does not advertise bitswap 1.2.0 + kad: $REPLY_JSON"
send C "{\"cmd\":\"dial\",\"addr\":\"$B_ADDR\"}"; ok

for v in 0 1; do
  if [ "$v" = 0 ]; then opts='"cidVersion":0,"rawLeaves":false'; prefix=Qm; else opts='"cidVersion":1,"rawLeaves":true'; prefix=bafy; fi
  echo "== CIDv$v" >&2
  f="$tmp/in-v$v.bin"
  head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$f"

  send A "{\"cmd\":\"add\",\"path\":\"$f\",$opts,\"chunkSize\":262144,\"maxLinks\":174,\"provide\":true,\"timeoutMs\":30000}"; ok
  cid=$(jget "$REPLY_JSON" j.cid)
  case "$cid" in "$prefix"*) ;; *) fail "unexpected CID $cid for CIDv$v" ;; esac

  # C is connected to B only: it must learn about A through the DHT
  send C "{\"cmd\":\"findprovs\",\"cid\":\"$cid\",\"max\":1,\"timeoutMs\":30000}"; ok
  [ "$(jget "$REPLY_JSON" "j.providers.includes('$A_ID')")" = true ] || fail "C did not find A as provider: $REPLY_JSON"
  send C "{\"cmd\":\"cat\",\"cid\":\"$cid\",\"out\":\"$tmp/out-C-v$v.bin\",\"timeoutMs\":60000}"; ok
  cmp "$f" "$tmp/out-C-v$v.bin" || fail "C: bytes differ for $cid"
  send C '{"cmd":"peers"}'; ok
  [ "$(jget "$REPLY_JSON" "j.peers.some(p => p.peerId === '$A_ID')")" = true ] || fail "C did not connect to A"

  send B "{\"cmd\":\"cat\",\"cid\":\"$cid\",\"out\":\"$tmp/out-B-v$v.bin\",\"timeoutMs\":60000}"; ok
  [ "$(jget "$REPLY_JSON" j.bytes)" = "$(stat -c %s "$f")" ] || fail "B: wrong byte count"
  cmp "$f" "$tmp/out-B-v$v.bin" || fail "B: bytes differ for $cid"
  echo "OK CIDv$v $cid: $(stat -c %s "$f") bytes A->B (direct) and A->C (via DHT)" >&2
done

echo "== missing CID must time out, peer must stay usable" >&2
missing=bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
start=$(date +%s)
send B "{\"cmd\":\"cat\",\"cid\":\"$missing\",\"out\":\"$tmp/missing.bin\",\"timeoutMs\":3000}" 30
[ "$(jget "$REPLY_JSON" j.ok)" = false ] || fail "cat of a missing CID did not fail: $REPLY_JSON"
[ $(( $(date +%s) - start )) -le 15 ] || fail "cat timeout not honoured"
[ ! -e "$tmp/missing.bin" ] || fail "partial output left behind"
send B '{"cmd":"peers"}'; ok
send B '{"cmd":"nosuch","id":42}'
[ "$(jget "$REPLY_JSON" 'j.ok === false && j.id === 42')" = true ] || fail "unknown command: $REPLY_JSON"

echo "== gossipsub: D <-> E on one topic, both ways" >&2
start_peer D --no-dht --pubsub; D_ID=$(jget "$READY" j.peerId); D_ADDR=$(jget "$READY" j.addrs[0])
start_peer E --no-dht --pubsub; E_ID=$(jget "$READY" j.peerId)
for p in D E; do send "$p" '{"cmd":"psSubscribe","topic":"selftest"}'; ok; done
send E "{\"cmd\":\"dial\",\"addr\":\"$D_ADDR\"}"; ok
[ "$(jget "$REPLY_JSON" 'j.protocols.includes("/meshsub/1.1.0")')" = true ] || fail "D does not speak /meshsub/1.1.0: $REPLY_JSON"
for i in $(seq 1 50); do
  send D '{"cmd":"psPeers","topic":"selftest"}'; ok
  [ "$(jget "$REPLY_JSON" "j.peers.includes('$E_ID')")" = true ] && break
  [ "$i" -lt 50 ] || fail "D never saw E on the topic"
  sleep 0.2
done
# 60,000 random bytes each way (a JSON line stays under the 128 KiB argv limit of jget), compared after a base64url round trip
for pair in "D E $D_ID" "E D $E_ID"; do
  set -- $pair
  data=u$(head -c 60000 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
  printf '{"cmd":"psPublish","topic":"selftest","data":"%s"}\n' "$data" >"$tmp/pub.json"
  send "$1" "$(cat "$tmp/pub.json")"; ok
  send "$2" '{"cmd":"psNext","topic":"selftest","timeoutMs":10000}'; ok
  [ "$(jget "$REPLY_JSON" j.from)" = "$3" ] || fail "$2: message not from $1: ${REPLY_JSON:0:200}"
  [ "$(jget "$REPLY_JSON" j.data)" = "$data" ] || fail "$2: data differs"
  echo "OK gossipsub $1 -> $2: 60000 bytes" >&2
done
send D '{"cmd":"psNext","topic":"selftest","timeoutMs":1000}' 30
[ "$(jget "$REPLY_JSON" j.ok)" = false ] || fail "D got its own message back: ${REPLY_JSON:0:200}"

echo "== stopping" >&2
for p in A B C D E; do
  send "$p" '{"cmd":"stop"}' 30; ok
  rc=0; wait "${PID[$p]}" || rc=$?
  unset "PID[$p]"
  [ "$rc" = 0 ] || fail "peer $p exited with $rc after stop"
done
echo "selftest: PASS" >&2

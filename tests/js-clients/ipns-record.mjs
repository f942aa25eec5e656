#!/usr/bin/env node
// IPNS records made and checked by Helia's own code (@helia/ipns, with
// @libp2p/crypto and @libp2p/peer-id: pinned by this directory's
// package-lock.json as dependencies of @helia/verified-fetch), for cairn's
// interop tests (tests/ipns.rs). Nothing touches the network.
//
//   node ipns-record.mjs verify NAME FILE
//       validates the record in FILE as NAME's (k51... or a peer ID) with
//       @helia/ipns's ipnsValidator; prints
//       {"ok":true,"value":V,"sequence":"N","validity":T,"ttl":"NS"}
//       or {"ok":false,"reason":R}
//   node ipns-record.mjs create FILE VALUE SEQUENCE
//       signs a record of VALUE (a path) with a new Ed25519 key, valid an
//       hour, writes it to FILE; prints {"ok":true,"name":"k51..."}
import { createIPNSRecord, ipnsValidator, multihashToIPNSRoutingKey, IPNSEntry } from '@helia/ipns'
import { generateKeyPair, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { readFileSync, writeFileSync } from 'node:fs'
import { base36 } from 'multiformats/bases/base36'

const text = (bytes) => new TextDecoder().decode(bytes)
const keychain = { loadPublicKeyFromProtobuf: async (bytes) => publicKeyFromProtobuf(bytes) }

const peerOf = (name) => peerIdFromString(name, base36)

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'verify') {
  const [name, file] = args
  const key = multihashToIPNSRoutingKey(peerOf(name).toMultihash())
  try {
    const r = await ipnsValidator(key, readFileSync(file), keychain)
    console.log(JSON.stringify({
      ok: true,
      value: text(r.value),
      sequence: String(r.sequence),
      validity: text(r.validity),
      ttl: String(r.ttl)
    }))
  } catch (e) {
    console.log(JSON.stringify({ ok: false, reason: `${e.name}: ${e.message}` }))
  }
} else if (cmd === 'create') {
  const [file, value, seq] = args
  const key = await generateKeyPair('Ed25519')
  const record = await createIPNSRecord(key, value, BigInt(seq), 3600 * 1000)
  writeFileSync(file, IPNSEntry.encode(record))
  const name = peerIdFromPrivateKey(key).toCID().toString(base36)
  console.log(JSON.stringify({ ok: true, name }))
} else {
  console.log(JSON.stringify({ error: 'usage: node ipns-record.mjs verify NAME FILE | create FILE VALUE SEQUENCE' }))
  process.exit(2)
}

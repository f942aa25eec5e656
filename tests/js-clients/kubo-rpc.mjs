#!/usr/bin/env node
// Drives a node's Kubo-compatible RPC API (a cairn daemon's, on 127.0.0.1)
// with kubo-rpc-client, the JS client for Kubo, and prints what each call
// returned as JSON, for cairn's interop tests (tests/js_clients.rs).
//
//   node kubo-rpc.mjs --api http://127.0.0.1:PORT --file PATH --dir PATH
//                     [--dir-file REL] [--timeout-ms 60000]
//
// --file is uploaded with `add` (as bytes, then named, with several
// options), --dir with `addAll` (every entry under it, directories included,
// named `<basename of dir>/<relative path>`, like `ipfs add -r`, CIDv0).
// Then: cat (whole, a range, and --dir-file by path inside the directory),
// ls, pin ls/rm/add, block get/stat/put, id, version, dag put/get/resolve,
// resolve, config, routing findProvs, object/stat, key gen/rename/list/rm,
// name publish/resolve, and calls that must fail.
//
// stdout: one JSON object {"ok":B,"steps":{NAME:{"ok":true,"value":V} |
// {"ok":false,"error":MSG,"status":HTTP_STATUS}},"refused":[...]}; `refused`
// lists network access other than the API (blocked by guard.mjs). Bytes are reported as
// {"size":N,"sha256":HEX}. Steps named `expect-error-*` succeed when the call
// fails (their value is the error: message, HTTP status, error name).
//
// Exit status: 0 when every step went as expected; 1 otherwise; 2 for bad
// usage; 124 if the run took longer than --timeout-ms (a ref'd timer).
import '../polyfill.mjs'
import { allowOnly, refused } from './guard.mjs'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'
import { CID } from 'multiformats/cid'

const usage = 'usage: node kubo-rpc.mjs --api http://127.0.0.1:PORT --file PATH --dir PATH [--dir-file REL] [--timeout-ms N]'

let args
try {
  args = parseArgs({
    options: {
      api: { type: 'string' },
      file: { type: 'string' },
      dir: { type: 'string' },
      'dir-file': { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' }
    }
  })
} catch (err) {
  console.error(`${err.message}\n${usage}`)
  process.exit(2)
}
const { api, file, dir } = args.values
const dirFile = args.values['dir-file']
const timeoutMs = Number(args.values['timeout-ms'])
if (api == null || file == null || dir == null || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
  console.error(usage)
  process.exit(2)
}
const apiUrl = new URL(api)
if (apiUrl.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(apiUrl.hostname)) {
  console.error(`refusing ${api}: only http:// on the loopback interface is allowed`)
  process.exit(2)
}

// Any TCP connection but to the API, any DNS lookup, any UDP socket is
// refused (guard.mjs).
allowOnly(apiUrl.toString())

const steps = {}
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: `timed out after ${timeoutMs} ms`, steps, refused }))
  process.exit(124)
}, timeoutMs)

const { create } = await import('kubo-rpc-client')

function digest (bytes) {
  return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }
}

async function collect (iterable) {
  const chunks = []
  for await (const chunk of iterable) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

async function all (iterable) {
  const out = []
  for await (const x of iterable) {
    out.push(x)
  }
  return out
}

function errorInfo (err) {
  return {
    error: `${err.name}: ${err.message}`,
    message: err.message,
    name: err.name,
    status: err.response?.status ?? null
  }
}

// Runs one step; its value must be JSON-serialisable.
async function step (name, fn) {
  try {
    const value = await fn()
    steps[name] = { ok: true, value: value ?? null }
    return value
  } catch (err) {
    steps[name] = { ok: false, ...errorInfo(err) }
    return undefined
  }
}

// A call that must fail: records how.
async function expectError (name, fn) {
  try {
    const value = await fn()
    steps[name] = { ok: false, error: 'the call succeeded but should have failed', value: value ?? null }
  } catch (err) {
    steps[name] = { ok: true, value: errorInfo(err) }
  }
}

// ipfs add -r order: a directory's entries (sorted) after the directory.
function dirEntries (root) {
  const top = basename(root)
  const out = [{ path: top }]
  const walk = (abs, rel) => {
    for (const ent of readdirSync(abs, { withFileTypes: true }).sort((a, b) => a.name < b.name ? -1 : 1)) {
      const a = join(abs, ent.name)
      const r = `${rel}/${ent.name}`
      if (ent.isDirectory()) {
        out.push({ path: r })
        walk(a, r)
      } else {
        out.push({ path: r, content: readFileSync(a) })
      }
    }
  }
  walk(root, top)
  return out
}

const addResult = (r) => ({ path: r.path, cid: r.cid.toString(), size: r.size })

const client = create({ url: new URL('/api/v0', apiUrl).toString(), timeout: timeoutMs })
const fileBytes = readFileSync(file)
const fileName = basename(file)

await step('version', async () => {
  const v = await client.version()
  return { version: v.version, system: v.system ?? null }
})
await step('id', async () => {
  const id = await client.id()
  return {
    id: id.id.toString(),
    agentVersion: id.agentVersion ?? null,
    addresses: (id.addresses ?? []).map(a => a.toString()),
    protocols: id.protocols ?? null
  }
})

// add: bytes without a name (the node's default format), then named
// uploads with Kubo's CIDv0, CIDv1 (raw leaves), a small chunker, only-hash,
// and progress reports.
await step('add-bytes', async () => addResult(await client.add(fileBytes)))
const v0 = await step('add-v0', async () => addResult(await client.add({ path: fileName, content: fileBytes }, { cidVersion: 0 })))
const v1 = await step('add-v1', async () => addResult(await client.add({ path: fileName, content: fileBytes }, { cidVersion: 1 })))
await step('add-v1-chunker', async () => addResult(await client.add({ path: fileName, content: fileBytes }, {
  cidVersion: 1, hashAlg: 'sha2-256', rawLeaves: false, chunker: 'size-65536'
})))
await step('add-only-hash', async () => addResult(await client.add({
  path: 'only-hash.txt', content: new TextEncoder().encode('only hashed, never stored\n')
}, { cidVersion: 1, onlyHash: true })))
await step('add-progress', async () => {
  const progress = []
  const added = await client.add({ path: fileName, content: fileBytes }, {
    cidVersion: 0,
    progress: (bytes, name) => { progress.push({ bytes, name: name ?? null }) }
  })
  return { ...addResult(added), progress }
})

// addAll: a directory tree, every entry reported.
const tree = await step('add-all-dir', async () => (await all(client.addAll(dirEntries(dir), { cidVersion: 0 }))).map(addResult))
const dirCid = tree?.find(e => e.path === basename(dir))?.cid

if (v0 != null) {
  await step('cat-v0', async () => digest(await collect(client.cat(v0.cid))))
  await step('cat-range', async () => digest(await collect(client.cat(v0.cid, { offset: 1000, length: 70000 }))))
  await step('block-stat', async () => {
    const s = await client.block.stat(v0.cid)
    return { cid: s.cid.toString(), size: s.size }
  })
  await step('block-get', async () => digest(Buffer.from(await client.block.get(v0.cid))))
}
if (v1 != null) {
  await step('cat-v1', async () => digest(await collect(client.cat(v1.cid))))
}
if (dirCid != null) {
  if (dirFile != null) {
    const path = `/ipfs/${dirCid}/${dirFile}`
    await step('cat-path', async () => ({ path, ...digest(await collect(client.cat(path))) }))
  }
  await step('ls-dir', async () => (await all(client.ls(dirCid))).map(e => ({
    name: e.name, path: e.path, cid: e.cid.toString(), size: e.size, type: e.type
  })))
}

await step('block-put', async () => {
  const cid = await client.block.put(new TextEncoder().encode('a raw block from kubo-rpc-client\n'))
  return { cid: cid.toString() }
})

// pins: add pins recursively; rm, ls, add again.
const pinList = async (opts) => (await all(client.pin.ls(opts))).map(p => ({ cid: p.cid.toString(), type: p.type }))
if (v0 != null) {
  await step('pin-ls-all', () => pinList())
  await step('pin-ls-recursive', () => pinList({ type: 'recursive' }))
  await step('pin-ls-path', () => pinList({ paths: [v0.cid] }))
  await step('pin-rm', async () => (await client.pin.rm(v0.cid)).toString())
  await step('pin-ls-after-rm', () => pinList({ type: 'recursive' }))
  await expectError('expect-error-pin-rm-unpinned', () => client.pin.rm(v0.cid))
  await step('pin-add', async () => (await client.pin.add(v0.cid)).toString())
  await step('pin-ls-after-add', () => pinList({ paths: [v0.cid] }))
}

await expectError('expect-error-cat-invalid-cid', () => collect(client.cat('not-a-cid')))
await expectError('expect-error-ls-invalid-cid', () => all(client.ls('not-a-cid')))

// IPLD, paths, config, routing, keys and names: what clients reach for
// past add/cat/pin. dag.get reads blocks (block/get) and follows paths in
// the client; dag.put, dag.resolve, resolve and config.* call the node.
const rawBlock = steps['block-put']?.value?.cid
const dagCid = rawBlock == null
  ? undefined
  : await step('dag-put', async () => (await client.dag.put({ hello: 'world', n: [1, 2], link: CID.parse(rawBlock) })).toString())
await step('dag-put-json', async () => (await client.dag.put(new TextEncoder().encode('{"b":true,"a":1}'), {
  inputCodec: 'dag-json', storeCodec: 'dag-json', pin: true
})).toString())
if (dagCid != null) {
  await step('dag-get', async () => {
    const { value } = await client.dag.get(CID.parse(dagCid))
    return { hello: value.hello, n: value.n, link: value.link.toString() }
  })
  await step('dag-get-path', async () => {
    const r = await client.dag.get(CID.parse(dagCid), { path: '/n/1' })
    return { value: r.value, remainderPath: r.remainderPath }
  })
  await step('dag-resolve', async () => {
    const r = await client.dag.resolve(CID.parse(dagCid), { path: 'link' })
    return { cid: r.cid.toString(), remainderPath: r.remainderPath }
  })
  await step('dag-resolve-inside', async () => {
    const r = await client.dag.resolve(`/ipfs/${dagCid}/n/0`)
    return { cid: r.cid.toString(), remainderPath: r.remainderPath }
  })
}
if (dirCid != null && dirFile != null) {
  await step('resolve', () => client.resolve(`/ipfs/${dirCid}/${dirFile}`))
}
await expectError('expect-error-resolve-missing', () => client.resolve(`/ipfs/${dirCid}/no-such-entry`))
await step('config-get-all', async () => {
  const c = await client.config.getAll()
  return { apiListen: c.api?.listen ?? null, tokens: c.api?.tokens ?? null }
})
await step('config-get', () => client.config.get('api.listen'))
if (v0 != null) {
  // This daemon has no DHT peers: the query answers, finding nobody else.
  await step('routing-find-provs', async () => (await all(client.routing.findProvs(CID.parse(v0.cid), { numProviders: 1 }))).map(e => e.name))
}
// Calls kubo-rpc-client 7 has no method for, made as it makes every call.
const rpc = async (path) => {
  const res = await fetch(new URL(`/api/v0/${path}`, apiUrl), { method: 'POST' })
  const text = await res.text()
  if (!res.ok) throw Object.assign(new Error(text), { name: 'HTTPError', response: { status: res.status } })
  return JSON.parse(text)
}
if (dirCid != null) {
  await step('object-stat', () => rpc(`object/stat?arg=${dirCid}`))
}
await expectError('expect-error-dht-findpeer-bad-id', () => rpc('dht/findpeer?arg=not-a-peer-id'))

await step('key-gen', () => client.key.gen('js-key', { type: 'ed25519' }))
await step('key-rename', () => client.key.rename('js-key', 'js-name'))
await step('key-list', async () => (await client.key.list()).map(k => k.name))
if (v1 != null) {
  const published = await step('name-publish', () => client.name.publish(`/ipfs/${v1.cid}`, { key: 'js-name', allowOffline: true, lifetime: '1h' }))
  if (published != null) {
    await step('name-resolve', async () => all(client.name.resolve(`/ipns/${published.name}`)))
  }
}
await step('key-rm', async () => (await client.key.rm('js-name')).name)
await expectError('expect-error-key-rm-self', () => client.key.rm('self'))

clearTimeout(deadline)
const ok = Object.values(steps).every(s => s.ok) && refused.length === 0
console.log(JSON.stringify({ ok, steps, refused }))
process.exit(ok ? 0 : 1)

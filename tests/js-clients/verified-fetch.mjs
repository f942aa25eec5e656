#!/usr/bin/env node
// Fetches IPFS resources with @helia/verified-fetch through ONE trustless
// gateway (a cairn daemon's, on 127.0.0.1) and prints what came back as JSON,
// for cairn's interop tests (tests/js_clients.rs).
//
//   node verified-fetch.mjs --gateway http://127.0.0.1:PORT [--out DIR]
//                           [--timeout-ms 60000] [RESOURCE...]
//
// RESOURCE is `ipfs://CID[/path]` (or a bare CID). Without RESOURCE
// arguments, a JSON array is read from stdin; each item is a resource string
// or {"name":N,"resource":R,"headers":{...},"method":"GET"|"HEAD",
// "timeoutMs":N,"expectError":B} (that fetch is aborted after timeoutMs,
// default: the whole run's --timeout-ms; with expectError, its failure does
// not make the run fail).
//
// stdout: one JSON object
//   {"ok":B,"gateway":URL,"results":[{name,resource,status,statusText,
//     redirected,url,headers:{...},size,sha256,bodyFile?,text?,error?}],
//    "requests":[{method,url,accept,status?,error?}],"refused":[URL...]}
// `requests` is every HTTP request verified-fetch made (all to --gateway);
// `refused` lists what was blocked: fetches of any other origin, and (from
// guard.mjs) TCP connections elsewhere, DNS lookups, UDP sockets.
// `text` is the body when it is at most 4096 bytes of UTF-8. With --out, each
// body is also written to DIR/<index>.bin (`bodyFile`).
//
// Exit status: 0 when every resource was fetched (whatever its HTTP status;
// failures of items marked expectError aside) and nothing but the gateway
// was contacted; 1 if a fetch threw or anything was refused; 2 for bad
// usage; 124 if the whole run took longer than --timeout-ms (default 60000;
// a ref'd timer, since AbortSignal.timeout does not keep Node alive).
//
// Nothing but the gateway is ever contacted. The Helia node is built by
// hand (createHeliaLight + @helia/http's withHTTP): no libp2p, no bitswap,
// no delegated routers, the gateway as the only "recursive gateway", and a
// DNS resolver that always fails (no DNSLink/IPNS lookups). Underneath,
// guard.mjs refuses any other TCP connection, any DNS lookup, any UDP
// socket. createVerifiedFetch({ gateways, routers: [] }) is NOT used: it
// still starts a libp2p node (kad-dht client, AutoNAT, UPnP, WebRTC,
// WebSockets) with @helia/libp2p's defaults. Blocks are verified against
// their CIDs (sha2-256, identity and, since cairn makes them on request,
// blake3).
import '../polyfill.mjs'
import { allowOnly, refused as refusedConnections } from './guard.mjs'
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const usage = 'usage: node verified-fetch.mjs --gateway http://127.0.0.1:PORT [--out DIR] [--timeout-ms N] [RESOURCE...]'

let args
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      gateway: { type: 'string' },
      out: { type: 'string' },
      'timeout-ms': { type: 'string', default: '60000' }
    }
  })
} catch (err) {
  console.error(`${err.message}\n${usage}`)
  process.exit(2)
}
const gatewayArg = args.values.gateway
const timeoutMs = Number(args.values['timeout-ms'])
if (gatewayArg == null || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
  console.error(usage)
  process.exit(2)
}
let gateway
try {
  gateway = new URL(gatewayArg)
} catch {
  console.error(`not a URL: ${gatewayArg}\n${usage}`)
  process.exit(2)
}
if (gateway.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(gateway.hostname)) {
  console.error(`refusing ${gatewayArg}: only http:// gateways on the loopback interface are allowed`)
  process.exit(2)
}

// Below fetch, a socket-level guard (guard.mjs) refuses any TCP connection
// but to the gateway, any DNS lookup and any UDP socket.
allowOnly(gateway.toString())

// The whole run is bounded: a stalled block fetch must fail the test.
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: `timed out after ${timeoutMs} ms`, requests, refused: [...refused, ...refusedConnections] }))
  process.exit(124)
}, timeoutMs)

// Every HTTP request goes through the global fetch: record them and refuse
// any that is not for the gateway.
const requests = []
const refused = []
const realFetch = globalThis.fetch
globalThis.fetch = async function guardedFetch (input, init = {}) {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
  const record = { method: init.method ?? 'GET', url: url.toString(), accept: headers.get('accept') }
  requests.push(record)
  if (url.origin !== gateway.origin) {
    refused.push(url.toString())
    record.error = 'refused: not the configured gateway'
    throw new Error(`refused request to ${url} (only ${gateway.origin} is allowed)`)
  }
  try {
    const res = await realFetch(input, init)
    record.status = res.status
    record.contentType = res.headers.get('content-type')
    return res
  } catch (err) {
    record.error = err.message
    throw err
  }
}

async function readItems () {
  if (args.positionals.length > 0) {
    return args.positionals
  }
  const chunks = []
  for await (const chunk of process.stdin) {
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') {
    return []
  }
  const items = JSON.parse(text)
  if (!Array.isArray(items)) {
    throw new Error('stdin must hold a JSON array')
  }
  return items
}

function normalise (item, index) {
  const obj = typeof item === 'string' ? { resource: item } : item
  let resource = String(obj.resource)
  if (!resource.includes('://') && !resource.startsWith('/')) {
    resource = `ipfs://${resource}`
  }
  return {
    name: obj.name ?? `item${index}`,
    resource,
    headers: obj.headers ?? {},
    method: obj.method ?? 'GET',
    timeoutMs: Number(obj.timeoutMs ?? timeoutMs),
    expectError: obj.expectError === true
  }
}

const { createHeliaLight } = await import('helia')
const { withHTTP } = await import('@helia/http')
const { dns } = await import('@multiformats/dns')
const { createVerifiedFetchWithHelia } = await import('@helia/verified-fetch')
const { from: hasherFrom } = await import('multiformats/hashes/hasher')
const { blake3 } = await import('@noble/hashes/blake3.js')

// cairn makes CIDv1 with BLAKE3 (multihash 0x1e) with `--hash blake3`, which
// Helia does not verify out of the box (sha2-256 and identity only).
const blake3Hasher = hasherFrom({ name: 'blake3', code: 0x1e, encode: (bytes) => blake3(bytes) })

let helia
let ok = true
const results = []
try {
  const items = (await readItems()).map(normalise)
  helia = createHeliaLight({
    hashers: [blake3Hasher],
    // DNSLink and IPNS-over-DNS lookups fail here instead of going to a
    // public DNS-over-HTTPS resolver (@multiformats/dns's default).
    dns: dns({
      resolvers: {
        '.': async (domain) => { throw new Error(`DNS is disabled in this test client (${domain})`) }
      }
    })
  })
  // Helia's routing asks its ordinary routers first and its fallback routers
  // (where withHTTP puts the "recursive gateways") after; with no ordinary
  // router at all, findProviders never gets to the fallback ones and hangs
  // (helia 7.1.15: the provider queue only goes idle when an ordinary router
  // finishes). createVerifiedFetch always has libp2p's router there; this
  // one finds nothing, so the gateway is the only provider.
  helia.addRouter({
    name: 'no-other-providers',
    async * findProviders () {}
  })
  withHTTP(helia, {
    delegatedRouters: [], // default: https://delegated-ipfs.dev
    recursiveGateways: [gateway.toString()], // default: public trustless gateways
    allowInsecure: true, // http://
    allowLocal: true // 127.0.0.1
  })
  await helia.start()
  const verifiedFetch = await createVerifiedFetchWithHelia(helia)
  if (args.values.out != null) {
    mkdirSync(args.values.out, { recursive: true })
  }
  for (const [index, item] of items.entries()) {
    const result = { name: item.name, resource: item.resource }
    results.push(result)
    try {
      const res = await verifiedFetch(item.resource, {
        method: item.method,
        headers: item.headers,
        signal: AbortSignal.timeout(item.timeoutMs)
      })
      result.status = res.status
      result.statusText = res.statusText
      result.redirected = res.redirected
      result.url = res.url
      result.headers = Object.fromEntries(res.headers.entries())
      const body = Buffer.from(await res.arrayBuffer())
      result.size = body.length
      result.sha256 = createHash('sha256').update(body).digest('hex')
      if (body.length <= 4096) {
        const text = body.toString('utf8')
        if (Buffer.from(text, 'utf8').equals(body)) {
          result.text = text
        }
      }
      if (args.values.out != null) {
        result.bodyFile = join(args.values.out, `${index}.bin`)
        writeFileSync(result.bodyFile, body)
      }
    } catch (err) {
      ok &&= item.expectError
      result.error = `${err.name}: ${err.message}${err.errors != null ? ` (${err.errors.map(e => e.message).join('; ')})` : ''}`
    }
  }
} catch (err) {
  ok = false
  results.push({ error: `${err.name}: ${err.message}` })
}
refused.push(...refusedConnections)
if (refused.length > 0) {
  ok = false
}
try {
  await helia?.stop()
} catch {}
clearTimeout(deadline)
console.log(JSON.stringify({ ok, gateway: gateway.toString(), results, requests, refused }))
process.exit(ok ? 0 : 1)

#!/usr/bin/env node
// Helia test peer for cairn's interop tests: one long-running loopback-only
// node driven by JSON line commands on stdin, one JSON line answer per command
// on stdout. Everything else (logs, DEBUG=libp2p:* output) goes to stderr.
// See README.md for the protocol.
//
// Network: TCP on 127.0.0.1 only, Noise, Yamux, identify, ping, bitswap and
// (unless --no-dht) kad-dht in server mode (client mode with --dht-client)
// with a pass-through peer-info
// mapper (the default mapper drops loopback addresses), and with --pubsub
// gossipsub (StrictSign, /meshsub/1.2.0, 1.1.0, 1.0.0). No bootstrap, mDNS,
// UPnP, AutoNAT, relay or delegated routing: never createHelia() defaults.
import '../polyfill.mjs'

import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { ipns } from '@helia/ipns'
import { gossipsub } from '@libp2p/gossipsub'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { MemoryDatastore } from 'datastore-core/memory'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced, trickle } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

// ---------------------------------------------------------------- output

// stdout carries answers only: route any library console output to stderr.
console.log = console.info = console.debug = (...args) => console.error(...args)
const log = (...args) => console.error('[helia-peer]', ...args)

function answer (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const errText = (err) => (err?.name && err.name !== 'Error' ? `${err.name}: ` : '') + (err?.message ?? String(err))

// A process that leaves without having been told to stop is a failure:
// never exit 0 because the event loop emptied under a stalled operation.
let stopping = false
process.on('exit', (code) => {
  if (!stopping && code === 0) {
    process.stderr.write('[helia-peer] exiting without a stop command: forcing exit code 3\n')
    process.exitCode = 3
  }
})
process.on('unhandledRejection', (err) => log('unhandled rejection (ignored):', err?.stack ?? err))
process.on('uncaughtException', (err) => log('uncaught exception (ignored):', err?.stack ?? err))

// ---------------------------------------------------------------- flags

function parseFlags (argv) {
  const f = { kadProtocol: '/ipfs/kad/1.0.0', dht: true, dhtClient: false, pubsub: false, listen: '/ip4/127.0.0.1/tcp/0' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--kad-protocol') f.kadProtocol = value()
    else if (a === '--no-dht') f.dht = false
    else if (a === '--dht-client') f.dhtClient = true
    else if (a === '--pubsub') f.pubsub = true
    else if (a === '--listen') f.listen = value()
    else if (a === '--help' || a === '-h') {
      process.stderr.write('usage: node peer.mjs [--kad-protocol NAME] [--no-dht] [--dht-client] [--pubsub] [--listen /ip4/127.0.0.1/tcp/PORT]\n')
      stopping = true
      process.exit(0)
    } else throw new Error(`unknown flag ${a}`)
  }
  if (!f.listen.startsWith('/ip4/127.0.0.1/')) throw new Error('--listen must be a /ip4/127.0.0.1/ address')
  return f
}

// ---------------------------------------------------------------- node

async function createNode (flags) {
  const services = { identify: identify(), ping: ping() }
  if (flags.dht) {
    services.dht = kadDHT({
      protocol: flags.kadProtocol,
      // --dht-client: queries and provides, serves no one (not in
      // other peers' routing tables)
      clientMode: flags.dhtClient,
      // the default mapper (removePrivateAddressesMapper) drops 127.0.0.1
      peerInfoMapper: passthroughMapper
      // allowQueryWithZeroPeers stays false: a query started before any DHT
      // peer is in the routing table waits for one (bounded by timeoutMs)
    })
  }
  if (flags.pubsub) {
    services.pubsub = gossipsub({
      // Kubo's policy: every message signed, unsigned ones refused
      globalSignaturePolicy: 'StrictSign',
      // as Kubo: publishing to a topic nobody else joined is not an error
      allowPublishToZeroTopicPeers: true,
      // a node's own messages are not echoed: psNext shows others' only
      emitSelf: false,
      fallbackToFloodsub: false
    })
  }
  const libp2pOptions = {
    addresses: { listen: [flags.listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services
  }
  const helia = withBitswap(withLibp2pLight(createHeliaLight({
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore()
  }), libp2pOptions))
  await helia.start()
  return helia
}

// ---------------------------------------------------------------- helpers

/** Runs fn(signal) with a ref'd timer: aborts at timeoutMs and gives up waiting
 * 5 s later even if fn ignores the signal. */
async function withTimeout (timeoutMs, what, fn) {
  const controller = new AbortController()
  let hard
  const timer = setTimeout(() => controller.abort(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs)
  const giveUp = new Promise((resolve, reject) => {
    hard = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms (operation ignored abort)`)), timeoutMs + 5000)
  })
  try {
    return await Promise.race([fn(controller.signal), giveUp])
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason
    throw err
  } finally {
    clearTimeout(timer)
    clearTimeout(hard)
  }
}

function requireString (c, key) {
  if (typeof c[key] !== 'string' || c[key] === '') throw new Error(`missing "${key}"`)
  return c[key]
}

function importerOptions (c) {
  const cidVersion = c.cidVersion ?? 0
  if (cidVersion !== 0 && cidVersion !== 1) throw new Error('cidVersion must be 0 or 1')
  const rawLeaves = c.rawLeaves ?? (cidVersion === 1) // Kubo: raw leaves by default with CIDv1
  const chunkSize = c.chunkSize ?? 262144
  const maxLinks = c.maxLinks ?? 174
  const common = {
    cidVersion,
    rawLeaves,
    chunker: fixedSize({ chunkSize }),
    wrapWithDirectory: false,
    fieldOrder: 'links-first' // Kubo's dag-pb field order (also the importer default)
  }
  if ((c.layout ?? 'balanced') === 'trickle') {
    // as boxo: dag-pb leaves of UnixFS type "raw" without raw leaves, no single-leaf collapse
    return { ...common, layout: trickle({ maxChildrenPerNode: maxLinks, layerRepeat: 4 }), leafType: 'raw', reduceSingleLeafToSelf: false }
  }
  if (c.layout != null && c.layout !== 'balanced') throw new Error('layout must be "balanced" or "trickle"')
  // boxo balanced: UnixFS "file" leaves without raw leaves; a one-chunk file is its leaf
  return { ...common, layout: balanced({ maxChildrenPerNode: maxLinks }), leafType: 'file', reduceSingleLeafToSelf: true }
}

// ---------------------------------------------------------------- pubsub

/** Messages buffered per subscribed topic, oldest first; past either bound
 * the oldest are dropped and counted. */
const PS_MAX_MESSAGES = 1024
const PS_MAX_BYTES = 64 * 1024 * 1024

/** `u` + base64url without padding: Kubo's multibase form in its pubsub RPC. */
const toMultibase = (bytes) => 'u' + Buffer.from(bytes).toString('base64url')

function fromMultibase (s, what) {
  if (typeof s !== 'string' || !s.startsWith('u')) throw new Error(`"${what}" must be multibase base64url ("u...")`)
  const b64 = s.slice(1)
  if (!/^[A-Za-z0-9_-]*$/.test(b64)) throw new Error(`"${what}" is not base64url`)
  return new Uint8Array(Buffer.from(b64, 'base64url'))
}

/** Subscriptions of the local node and what arrived on them. */
function makePubsubBuffers (pubsub) {
  const topics = new Map() // topic -> { queue: [{...}], bytes, dropped, waiters: [] }
  pubsub.addEventListener('message', ({ detail: msg }) => {
    const t = topics.get(msg.topic)
    if (t == null) return
    const item = {
      from: msg.type === 'signed' ? msg.from.toString() : null,
      seqno: msg.type === 'signed' ? toMultibase(Buffer.from(msg.sequenceNumber.toString(16).padStart(16, '0'), 'hex')) : null,
      data: toMultibase(msg.data),
      size: msg.data.byteLength
    }
    const waiter = t.waiters.shift()
    if (waiter != null) return waiter(item)
    t.queue.push(item)
    t.bytes += item.size
    while (t.queue.length > PS_MAX_MESSAGES || t.bytes > PS_MAX_BYTES) {
      t.bytes -= t.queue.shift().size
      t.dropped++
    }
  })
  return {
    subscribe (topic) {
      if (!topics.has(topic)) topics.set(topic, { queue: [], bytes: 0, dropped: 0, waiters: [] })
      pubsub.subscribe(topic)
    },
    /** The oldest buffered message of `topic`, waiting for one up to the signal. */
    async next (topic, signal) {
      const t = topics.get(topic)
      if (t == null) throw new Error(`not subscribed to "${topic}"`)
      const item = t.queue.shift()
      if (item != null) {
        t.bytes -= item.size
        return { ...item, dropped: t.dropped }
      }
      const got = await new Promise((resolve, reject) => {
        t.waiters.push(resolve)
        signal.addEventListener('abort', () => {
          t.waiters = t.waiters.filter((w) => w !== resolve)
          reject(signal.reason)
        }, { once: true })
      })
      return { ...got, dropped: t.dropped }
    }
  }
}

// ---------------------------------------------------------------- commands

function makeCommands (helia, flags) {
  const libp2p = helia.libp2p
  const fs = unixfs(helia)
  // IPNS through Helia's routing (the DHT here); @helia/ipns also puts its
  // validator and selector on the DHT's record store.
  const names = ipns(helia)
  const pubsub = flags.pubsub ? libp2p.services.pubsub : null
  const buffers = pubsub == null ? null : makePubsubBuffers(pubsub)
  const needPubsub = (what) => {
    if (pubsub == null) throw new Error(`${what} needs gossipsub (start with --pubsub)`)
  }

  async function provide (cid, timeoutMs) {
    if (!flags.dht) throw new Error('provide needs the DHT (started with --no-dht)')
    await withTimeout(timeoutMs, 'provide', (signal) => helia.routing.provide(cid, { signal }))
  }

  return {
    async id () {
      return {
        peerId: libp2p.peerId.toString(),
        addrs: libp2p.getMultiaddrs().map(String),
        protocols: libp2p.getProtocols()
      }
    },

    async add (c) {
      const path = requireString(c, 'path')
      const opts = importerOptions(c)
      if (c.provide === true && !flags.dht) throw new Error('provide needs the DHT (started with --no-dht)')
      const cid = await fs.addByteStream(createReadStream(path, { highWaterMark: 1 << 20 }), opts)
      const res = { cid: cid.toString() }
      if (c.provide === true) {
        await provide(cid, c.timeoutMs ?? 30000)
        res.provided = true
      }
      return res
    },

    async provide (c) {
      const cid = CID.parse(requireString(c, 'cid'))
      await provide(cid, c.timeoutMs ?? 30000)
      return {}
    },

    async dial (c) {
      const ma = multiaddr(requireString(c, 'addr'))
      const idStr = ma.getComponents().findLast((x) => x.name === 'p2p')?.value
      if (idStr == null) throw new Error('addr must end with /p2p/<peer id>')
      const peerId = peerIdFromString(idStr)
      const timeoutMs = c.timeoutMs ?? 10000
      return await withTimeout(timeoutMs, 'dial+identify', async (signal) => {
        // listen before dialling: identify may finish before dial() returns
        let onIdentify
        const identified = new Promise((resolve, reject) => {
          onIdentify = (evt) => { if (evt.detail.peerId.equals(peerId)) resolve(evt.detail) }
          libp2p.addEventListener('peer:identify', onIdentify)
          signal.addEventListener('abort', () => reject(signal.reason), { once: true })
        })
        identified.catch(() => {})
        try {
          const already = libp2p.getConnections(peerId).length > 0
          const conn = await libp2p.dial(ma, { signal })
          let result
          if (already) {
            // an existing connection identifies only once: use the peer store if done
            const peer = await libp2p.peerStore.get(peerId).catch(() => null)
            if (peer != null && peer.protocols.length > 0) {
              const agent = peer.metadata.get('AgentVersion')
              result = { protocols: peer.protocols, agentVersion: agent == null ? undefined : new TextDecoder().decode(agent) }
            }
          }
          result ??= await identified
          return {
            peerId: peerId.toString(),
            remoteAddr: conn.remoteAddr.toString(),
            agentVersion: result.agentVersion,
            protocols: result.protocols
          }
        } finally {
          libp2p.removeEventListener('peer:identify', onIdentify)
        }
      })
    },

    async cat (c) {
      const cid = CID.parse(requireString(c, 'cid'))
      const out = requireString(c, 'out')
      const timeoutMs = c.timeoutMs ?? 60000
      const bytes = await withTimeout(timeoutMs, 'cat', async (signal) => {
        const ws = createWriteStream(out)
        let n = 0
        try {
          for await (const chunk of fs.cat(cid, { signal })) {
            n += chunk.byteLength
            if (!ws.write(chunk)) await once(ws, 'drain', { signal })
          }
          ws.end()
          await once(ws, 'finish')
        } catch (err) {
          ws.destroy()
          await fsp.rm(out, { force: true }).catch(() => {})
          throw err
        }
        return n
      })
      return { bytes }
    },

    async findprovs (c) {
      if (!flags.dht) throw new Error('findprovs needs the DHT (started with --no-dht)')
      const cid = CID.parse(requireString(c, 'cid'))
      const timeoutMs = c.timeoutMs ?? 30000
      const max = c.max ?? Infinity
      const found = new Map()
      let timedOut = false
      try {
        await withTimeout(timeoutMs, 'findprovs', async (signal) => {
          for await (const prov of libp2p.contentRouting.findProviders(cid, { signal })) {
            const id = prov.id.toString()
            const addrs = found.get(id) ?? new Set()
            for (const a of prov.multiaddrs ?? []) addrs.add(a.toString())
            found.set(id, addrs)
            if (found.size >= max) break
          }
        })
      } catch (err) {
        if (!/timed out/.test(err?.message ?? '')) throw err
        timedOut = true // like `ipfs routing findprovs`: report what was found
      }
      return {
        providers: [...found.keys()],
        details: [...found].map(([id, addrs]) => ({ id, addrs: [...addrs] })),
        timedOut
      }
    },

    async ipnsPublish (c) {
      if (!flags.dht) throw new Error('ipnsPublish needs the DHT (started with --no-dht)')
      const value = requireString(c, 'value')
      const timeoutMs = c.timeoutMs ?? 30000
      const res = await withTimeout(timeoutMs, 'ipnsPublish', (signal) => names.publish(c.key ?? 'ipns-test', value, {
        signal,
        ...(c.lifetimeMs == null ? {} : { lifetime: c.lifetimeMs }),
        ...(c.ttlMs == null ? {} : { ttl: c.ttlMs })
      }))
      return { name: res.name.replace(/^\/ipns\//, ''), sequence: String(res.record.sequence) }
    },

    async ipnsResolve (c) {
      if (!flags.dht) throw new Error('ipnsResolve needs the DHT (started with --no-dht)')
      const name = requireString(c, 'name')
      const timeoutMs = c.timeoutMs ?? 30000
      return await withTimeout(timeoutMs, 'ipnsResolve', async (signal) => {
        let last = null
        for await (const r of names.resolve(name, { signal, nocache: c.nocache ?? true })) last = r
        if (last == null) throw new Error(`nothing resolved for ${name}`)
        return { value: last.value, sequence: String(last.record.sequence) }
      })
    },

    async psSubscribe (c) {
      needPubsub('psSubscribe')
      buffers.subscribe(requireString(c, 'topic'))
      return {}
    },

    async psPublish (c) {
      needPubsub('psPublish')
      const topic = requireString(c, 'topic')
      const data = fromMultibase(c.data, 'data')
      const timeoutMs = c.timeoutMs ?? 10000
      const res = await withTimeout(timeoutMs, 'psPublish', () => pubsub.publish(topic, data))
      return { recipients: res.recipients.map(String) }
    },

    async psNext (c) {
      needPubsub('psNext')
      const topic = requireString(c, 'topic')
      const timeoutMs = c.timeoutMs ?? 10000
      const { size, ...msg } = await withTimeout(timeoutMs, 'psNext', (signal) => buffers.next(topic, signal))
      return msg
    },

    async psPeers (c) {
      needPubsub('psPeers')
      return { peers: pubsub.getSubscribers(requireString(c, 'topic')).map(String).sort() }
    },

    async peers () {
      return {
        peers: libp2p.getConnections().map((conn) => ({
          peerId: conn.remotePeer.toString(),
          addr: conn.remoteAddr.toString(),
          direction: conn.direction,
          id: conn.id
        }))
      }
    }
  }
}

// ---------------------------------------------------------------- main

let helia
async function shutdown () {
  stopping = true
  try {
    await withTimeout(10000, 'stop', () => helia?.stop())
  } catch (err) {
    log('stop failed:', err?.stack ?? err)
  }
}

async function main () {
  let flags
  try {
    flags = parseFlags(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`[helia-peer] ${err.message}\n`)
    stopping = true
    process.exit(2)
  }
  try {
    helia = await createNode(flags)
  } catch (err) {
    log('start failed:', err?.stack ?? err)
    answer({ ready: false, error: errText(err) })
    stopping = true
    process.exit(1)
  }
  const commands = makeCommands(helia, flags)
  const libp2p = helia.libp2p
  const peerId = libp2p.peerId.toString()
  answer({
    ready: true,
    peerId,
    addrs: libp2p.getMultiaddrs().map(String),
    dht: flags.dht ? flags.kadProtocol : null
  })
  log(`ready: ${peerId} dht=${flags.dht ? flags.kadProtocol : 'off'}`)
  for (const [evt, what] of [['connection:open', 'opened'], ['connection:close', 'closed']]) {
    libp2p.addEventListener(evt, ({ detail: conn }) => {
      log(`connection ${conn.id} ${what}: ${conn.direction} ${conn.remotePeer} ${conn.remoteAddr}`)
    })
  }

  // Commands run one at a time, in order: one answer line per input line.
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  for await (const line of rl) {
    if (line.trim() === '') continue
    let c
    try {
      c = JSON.parse(line)
      if (c == null || typeof c !== 'object' || typeof c.cmd !== 'string') throw new Error('expected {"cmd": ...}')
    } catch (err) {
      answer({ ok: false, error: `bad command: ${errText(err)}` })
      continue
    }
    const tag = c.id === undefined ? {} : { id: c.id }
    if (c.cmd === 'stop') {
      await shutdown()
      answer({ ...tag, ok: true })
      process.exit(0)
    }
    const fn = Object.hasOwn(commands, c.cmd) ? commands[c.cmd] : null
    if (fn == null) {
      answer({ ...tag, ok: false, error: `unknown command "${c.cmd}"` })
      continue
    }
    const t0 = Date.now()
    try {
      const res = await fn(c)
      answer({ ...tag, ok: true, ...res })
      log(`${c.cmd} ok in ${Date.now() - t0} ms`)
    } catch (err) {
      log(`${c.cmd} failed in ${Date.now() - t0} ms:`, err?.stack ?? err)
      answer({ ...tag, ok: false, error: errText(err) })
    }
  }
  // stdin closed without a stop command: stop cleanly and exit.
  log('stdin closed: stopping')
  await shutdown()
  process.exit(0)
}

main()

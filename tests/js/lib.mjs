// Shared code of the reference harness: option parsing (mirroring Kubo's
// `ipfs add`), walking a path the way Kubo does, importing it with the JS
// reference importer (ipfs-unixfs-importer) and collecting the DAG.
//
// Every default below is Kubo's, not the JS importer's: the JS importer
// defaults to CIDv1 + raw leaves, and its profiles differ in details. Sources
// (ipfs/kubo, ipfs/boxo):
//   kubo config/import.go            DefaultCidVersion=0, DefaultUnixFSRawLeaves=false,
//                                    DefaultUnixFSChunker="size-262144", sha2-256,
//                                    HAMT threshold 262144, estimation "links",
//                                    layout "balanced", include empty dirs
//   kubo core/coreiface/options/unixfs.go
//                                    non-sha2-256 hash => CIDv1 (CIDv0 is an error);
//                                    CIDv1 => raw leaves unless --raw-leaves given
//   boxo ipld/unixfs/importer/helpers/helpers.go
//                                    DefaultLinksPerBlock = 8192 / (34+8+5) = 174
//   kubo config/profile.go           unixfs-v1-2025: CIDv1, raw leaves, sha2-256,
//                                    size-1048576, 1024 file links, HAMT fanout 256,
//                                    threshold 256KiB, estimation "block", balanced
//   boxo files/serialfile.go, files/filter.go, files/is_hidden.go
//                                    hidden entries (name starting with '.') are
//                                    skipped unless --hidden; symlinks are kept as
//                                    UnixFS symlink nodes unless dereferenced

import { promises as fsp, createReadStream } from 'node:fs'
import path from 'node:path'
import * as dagPb from '@ipld/dag-pb'
import { blake3 as nobleBlake3 } from '@noble/hashes/blake3.js'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { UnixFS } from 'ipfs-unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced, trickle } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { from as hasherFrom } from 'multiformats/hashes/hasher'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'

// BLAKE3 multihash: code 0x1e, 32-byte digest (Kubo/go-multihash default length).
export const blake3 = hasherFrom({
  name: 'blake3',
  code: 0x1e,
  encode: (bytes) => nobleBlake3(bytes, { dkLen: 32 })
})

export const HASHERS = new Map([
  [sha256.code, sha256],
  [blake3.code, blake3],
  [identity.code, identity]
])

// Kubo's size-N limit: 2 MiB minus 256 bytes of framing (kubo core/commands/add.go help).
const MAX_CHUNK = 2096896

export class UsageError extends Error {}

const PROFILES = {
  'unixfs-v0-2015': { cidVersion: 0, rawLeaves: false, hash: 'sha2-256', chunkSize: 262144, maxLinks: 174, hamtEstimation: 'links' },
  'unixfs-v1-2025': { cidVersion: 1, rawLeaves: true, hash: 'sha2-256', chunkSize: 1048576, maxLinks: 1024, hamtEstimation: 'block' }
}

export const OPTIONS_HELP = `Options (Kubo 'ipfs add' equivalents, Kubo defaults):
  --cid-version 0|1            default 0 (1 if --hash is not sha2-256)
  --hash sha2-256|blake3       default sha2-256
  --chunker size-N             default size-262144 (fixed-size only)
  --raw-leaves true|false      default false for CIDv0, true for CIDv1
  --max-links N                max links per file node, default 174 (alias --max-file-links)
  --layout balanced|trickle    default balanced (--trickle / -t = trickle)
  --hidden / -H                include hidden files (names starting with '.')
  --empty-dirs true|false      include empty directories, default true (Kubo -E)
  --dereference-symlinks       follow symlinks instead of storing symlink nodes
  --hamt-threshold N           HAMT sharding threshold in bytes, default 262144
  --hamt-estimation links|block  directory size estimation, default links
  --max-hamt-fanout N          HAMT fanout, default 256
  --profile unixfs-v0-2015|unixfs-v1-2025   Kubo import profile (flags override it)`

function parseBool (name, v) {
  if (v === 'true' || v === undefined) return true
  if (v === 'false') return false
  throw new UsageError(`${name} takes true or false, got ${v}`)
}

function parseInt10 (name, v) {
  if (v == null || !/^[0-9]+$/.test(v)) throw new UsageError(`${name} takes a non-negative integer, got ${v}`)
  return Number.parseInt(v, 10)
}

/**
 * Parse argv into { opts, positional }. Flags with a value accept both
 * `--flag value` and `--flag=value`. Unknown flags are errors.
 * `extraBool` lists extra boolean flags of the calling script (e.g. --all).
 */
export function parseArgs (argv, extraBool = []) {
  const raw = {}
  const positional = []
  const valued = new Set(['--cid-version', '--hash', '--chunker', '--raw-leaves', '--max-links', '--layout',
    '--empty-dirs', '--hamt-threshold', '--hamt-estimation', '--max-hamt-fanout', '--profile'])
  const aliases = { '--max-file-links': '--max-links', '-t': '--trickle', '-H': '--hidden' }
  const bools = new Set(['--hidden', '--trickle', '--dereference-symlinks', ...extraBool])
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    if (a === '--') { positional.push(...argv.slice(i + 1)); break }
    if (!a.startsWith('-') || a === '-') { positional.push(a); continue }
    let value
    const eq = a.indexOf('=')
    if (a.startsWith('--') && eq > 0) { value = a.slice(eq + 1); a = a.slice(0, eq) }
    a = aliases[a] ?? a
    if (valued.has(a)) {
      if (value === undefined) {
        // --raw-leaves may be given bare, as in Kubo (bool flag)
        if (a === '--raw-leaves' && (i + 1 >= argv.length || !/^(true|false)$/.test(argv[i + 1]))) {
          value = 'true'
        } else {
          if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`)
          value = argv[++i]
        }
      }
      raw[a] = value
    } else if (bools.has(a)) {
      raw[a] = value === undefined ? true : parseBool(a, value)
    } else {
      throw new UsageError(`unknown option ${a}`)
    }
  }
  return { raw, positional }
}

/** Resolve parsed flags into importer settings, applying Kubo's rules. */
export function resolveOptions (raw) {
  let base = { cidVersion: undefined, rawLeaves: undefined, hash: 'sha2-256', chunkSize: 262144, maxLinks: 174, hamtEstimation: 'links' }
  if (raw['--profile'] !== undefined) {
    const p = PROFILES[raw['--profile']]
    if (p == null) throw new UsageError(`unknown profile ${raw['--profile']}`)
    base = { ...p }
  }
  const o = {
    hash: raw['--hash'] ?? base.hash,
    cidVersion: raw['--cid-version'] !== undefined ? parseInt10('--cid-version', raw['--cid-version']) : base.cidVersion,
    rawLeaves: raw['--raw-leaves'] !== undefined ? parseBool('--raw-leaves', raw['--raw-leaves']) : base.rawLeaves,
    chunkSize: base.chunkSize,
    maxLinks: raw['--max-links'] !== undefined ? parseInt10('--max-links', raw['--max-links']) : base.maxLinks,
    layout: raw['--layout'] ?? (raw['--trickle'] ? 'trickle' : 'balanced'),
    hidden: Boolean(raw['--hidden']),
    emptyDirs: raw['--empty-dirs'] !== undefined ? parseBool('--empty-dirs', raw['--empty-dirs']) : true,
    dereference: Boolean(raw['--dereference-symlinks']),
    hamtThreshold: raw['--hamt-threshold'] !== undefined ? parseInt10('--hamt-threshold', raw['--hamt-threshold']) : 262144,
    hamtEstimation: raw['--hamt-estimation'] ?? base.hamtEstimation,
    hamtFanout: raw['--max-hamt-fanout'] !== undefined ? parseInt10('--max-hamt-fanout', raw['--max-hamt-fanout']) : 256
  }
  // kubo config/import.go: a power of two in 8..1024
  if (o.hamtFanout < 8 || o.hamtFanout > 1024 || (o.hamtFanout & (o.hamtFanout - 1)) !== 0) {
    throw new UsageError('--max-hamt-fanout must be a power of 2 in 8..1024')
  }
  if (raw['--chunker'] !== undefined) {
    const m = /^size-([0-9]+)$/.exec(raw['--chunker'])
    if (m == null) throw new UsageError(`only fixed-size chunkers (size-N) are supported, got ${raw['--chunker']}`)
    o.chunkSize = Number.parseInt(m[1], 10)
  }
  if (o.chunkSize < 1 || o.chunkSize > MAX_CHUNK) throw new UsageError(`chunk size must be in 1..${MAX_CHUNK}`)
  if (o.maxLinks < 2) throw new UsageError('--max-links must be at least 2')
  if (!['balanced', 'trickle'].includes(o.layout)) throw new UsageError(`unknown layout ${o.layout}`)
  if (!['links', 'block'].includes(o.hamtEstimation)) throw new UsageError(`unknown HAMT estimation ${o.hamtEstimation}`)
  if (!['sha2-256', 'blake3'].includes(o.hash)) throw new UsageError(`unsupported hash ${o.hash}`)
  // kubo core/coreiface/options/unixfs.go: a non-sha2-256 hash needs CIDv1.
  if (o.hash !== 'sha2-256') {
    if (o.cidVersion === 0) throw new UsageError('CIDv0 only supports sha2-256')
    o.cidVersion = 1
  } else if (o.cidVersion === undefined) {
    o.cidVersion = 0
  }
  if (o.cidVersion !== 0 && o.cidVersion !== 1) throw new UsageError('--cid-version must be 0 or 1')
  // CIDv1 turns raw leaves on unless the user chose explicitly.
  if (o.rawLeaves === undefined) o.rawLeaves = o.cidVersion > 0
  return o
}

/** Options object for ipfs-unixfs-importer reproducing Kubo's importer. */
export function importerOptions (o) {
  const common = {
    cidVersion: o.cidVersion,
    rawLeaves: o.rawLeaves,
    chunker: fixedSize({ chunkSize: o.chunkSize }),
    wrapWithDirectory: false,
    // Kubo writes Links (field 2) before Data (field 1) — the canonical dag-pb order.
    fieldOrder: 'links-first',
    // boxo ipld/unixfs/io/directory.go: HAMTShardingSize = 256 KiB, switch when the
    // estimate is strictly greater than it; DefaultShardWidth = 256 (8 bits),
    // murmur3-x64-64 bucket hash, link names = uppercase hex index + name.
    shardSplitThresholdBytes: o.hamtThreshold,
    shardSplitStrategy: o.hamtEstimation === 'block' ? 'block-bytes' : 'links-bytes',
    shardFanoutBits: Math.log2(o.hamtFanout)
  }
  if (o.layout === 'trickle') {
    // boxo ipld/unixfs/importer/trickle/trickledag.go: the root is always a
    // UnixFS "file" node filled by FillNodeLayer (helpers/dagbuilder.go), which
    // creates its leaves with NewLeafDataNode(ft.TRaw): without raw leaves the
    // leaves are dag-pb nodes of UnixFS type "raw" (not "file"), and a file of
    // a single chunk is NOT collapsed to its leaf (root -> 1 link -> leaf).
    // Subtrees: depthRepeat = 4 subtrees per depth (JS: layerRepeat).
    return {
      ...common,
      layout: trickle({ maxChildrenPerNode: o.maxLinks, layerRepeat: 4 }),
      leafType: 'raw',
      reduceSingleLeafToSelf: false
    }
  }
  // boxo balanced/builder.go: leaves are NewLeafDataNode(ft.TFile) (UnixFS
  // "file" leaves without raw leaves), and a one-chunk file is its leaf alone.
  return {
    ...common,
    layout: balanced({ maxChildrenPerNode: o.maxLinks }),
    leafType: 'file',
    reduceSingleLeafToSelf: true
  }
}

function isHidden (name) {
  // boxo files/is_hidden.go (non-Windows)
  return name !== '' && name !== '.' && name !== '..' && name[0] === '.'
}

async function * fileContent (p) {
  for await (const buf of createReadStream(p, { highWaterMark: 1 << 20 })) {
    yield new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  }
}

/**
 * Entries for the importer, in Kubo's order (os.ReadDir sorts by name; the
 * directory node sorts its links anyway). The top-level path is always taken
 * (filters apply to directory entries only), like Kubo's serialfile.
 */
async function entriesOf (fsPath, importPath, o, toplevel) {
  const st = await fsp.lstat(fsPath)
  if (st.isSymbolicLink()) {
    if (!o.dereference) return [{ path: importPath, link: await fsp.readlink(fsPath) }]
    const target = await fsp.stat(fsPath)
    if (target.isDirectory()) return dirEntries(fsPath, importPath, o, toplevel)
    return [{ path: importPath, content: fileContent(fsPath) }]
  }
  if (st.isDirectory()) return dirEntries(fsPath, importPath, o, toplevel)
  if (st.isFile()) return [{ path: importPath, content: fileContent(fsPath) }]
  throw new Error(`unsupported file type: ${fsPath}`)
}

async function dirEntries (fsPath, importPath, o, toplevel) {
  const names = (await fsp.readdir(fsPath)).filter((n) => o.hidden || !isHidden(n)).sort()
  // kubo core/coreunix/add.go addDir: an empty directory (after filtering) is
  // skipped only when empty dirs are excluded and it is not the top level.
  if (names.length === 0 && !o.emptyDirs && !toplevel) return []
  const out = [{ path: importPath }]
  for (const n of names) {
    out.push(...await entriesOf(path.join(fsPath, n), `${importPath}/${n}`, o, false))
  }
  return out
}

export async function concatBlock (bs, cid) {
  const parts = []
  for await (const p of bs.get(cid)) parts.push(p)
  return parts.length === 1 ? parts[0] : new Uint8Array(Buffer.concat(parts))
}

/**
 * Re-address a sha2-256 DAG with another hasher. The JS importer hashes with
 * sha2-256 only (utils/persist.js has no hasher option), so for BLAKE3 the DAG
 * is built with sha2-256 and every block is re-hashed bottom-up with its links
 * rewritten. This is exact: a CIDv1 with a 32-byte BLAKE3 digest has the same
 * length as one with a 32-byte sha2-256 digest (varint code 0x1e and 0x12 are
 * both one byte), so every block length, every Tsize, every Blocksizes value
 * and every HAMT sizing decision is the same as if BLAKE3 had been used from
 * the start, as Kubo does with --hash blake3.
 */
async function rehash (root, bs, hasher) {
  const map = new Map() // old cid string -> new CID
  const blocks = new Map() // new cid string -> bytes
  async function visit (cid) {
    const key = cid.toString()
    const done = map.get(key)
    if (done != null) return done
    let bytes = await concatBlock(bs, cid)
    if (cid.code === dagPb.code) {
      const node = dagPb.decode(bytes)
      const links = []
      for (const l of node.Links) links.push({ ...l, Hash: await visit(l.Hash) })
      const out = dagPb.encode({ ...node, Links: links })
      if (out.length !== bytes.length) throw new Error(`rehash changed the size of ${key}`)
      bytes = out
    } else if (cid.code !== raw.code) {
      throw new Error(`unexpected codec ${cid.code} in ${key}`)
    }
    const ncid = CID.create(1, cid.code, await hasher.digest(bytes))
    if (ncid.bytes.length !== cid.toV1().bytes.length) throw new Error('CID length changed')
    map.set(key, ncid)
    blocks.set(ncid.toString(), bytes)
    return ncid
  }
  const nroot = await visit(root)
  return { root: nroot, map, blocks }
}

/**
 * Collect the blocks reachable from root in depth-first pre-order, each once
 * (the order of Kubo's `ipfs dag export`). Returns [{cid, bytes}].
 */
export async function collectDag (root, getBytes) {
  const seen = new Set()
  const out = []
  async function visit (cid) {
    const key = cid.toString()
    if (seen.has(key)) return
    seen.add(key)
    const bytes = await getBytes(cid)
    out.push({ cid, bytes })
    if (cid.code === dagPb.code) {
      for (const l of dagPb.decode(bytes).Links) await visit(l.Hash)
    }
  }
  await visit(root)
  return out
}

/** Walk the UnixFS DAG under root and list its entries (see importPath). */
export async function listEntries (root, name, getBytes) {
  const out = []
  async function dirLinks (cid) {
    // the named entries of a directory, descending into HAMT sub-shards
    const node = dagPb.decode(await getBytes(cid))
    const fs = UnixFS.unmarshal(node.Data)
    if (fs.type === 'directory') return node.Links.map((l) => ({ name: l.Name, cid: l.Hash }))
    // HAMT: link name = hex bucket index (padded to the width of fanout-1),
    // followed by the entry name; a name of the index alone is a sub-shard
    const pad = (Number(fs.fanout) - 1).toString(16).length
    const res = []
    for (const l of node.Links) {
      if (l.Name.length === pad) res.push(...await dirLinks(l.Hash))
      else res.push({ name: l.Name.slice(pad), cid: l.Hash })
    }
    return res
  }
  async function visit (cid, p) {
    if (cid.code === dagPb.code) {
      const fs = UnixFS.unmarshal(dagPb.decode(await getBytes(cid)).Data)
      if (fs.isDirectory()) {
        const children = await dirLinks(cid)
        children.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
        for (const c of children) await visit(c.cid, `${p}/${c.name}`)
      }
    }
    out.push({ cid, path: p })
  }
  await visit(root, name)
  return out
}

/**
 * Import a path. Returns { root, entries: [{cid, path}], blocks: [{cid, bytes}] }
 * where blocks are exactly the blocks of the DAG under root and entries are
 * the files, symlinks and directories of the DAG (as `ipfs add` lists them),
 * children before their directory, names in link order, the root last.
 */
export async function importPath (p, o) {
  const abs = path.resolve(p)
  let name = path.basename(abs)
  if (name === '' || name === '/') name = 'root'
  // file contents are async generators: a file is opened only when the importer reads it
  const candidates = await entriesOf(abs, name, o, true)
  const bs = new MemoryBlockstore()
  let top
  for await (const e of importer(candidates, bs, importerOptions(o))) {
    // the root is the entry whose path is the top-level name
    if (e.path === name) top = e
  }
  if (top == null) throw new Error('nothing imported')
  let root = top.cid
  let getBytes = (cid) => concatBlock(bs, cid)
  if (o.hash === 'blake3') {
    const r = await rehash(root, bs, blake3)
    root = r.root
    getBytes = async (cid) => r.blocks.get(cid.toString())
  }
  const blocks = await collectDag(root, getBytes)
  const entries = await listEntries(root, name, getBytes)
  return { root, entries, blocks }
}

export function die (err, usage) {
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n${usage}\n`)
    process.exit(2)
  }
  process.stderr.write(`error: ${err?.stack ?? err}\n`)
  process.exit(1)
}

/** Root CID of a byte array imported as a file (no name), with options o. */
export async function importBytes (data, o) {
  const bs = new MemoryBlockstore()
  let last
  for await (const e of importer([{ content: data }], bs, importerOptions(o))) last = e
  if (o.hash === 'blake3') return (await rehash(last.cid, bs, blake3)).root
  return last.cid
}

/** The generator rule shared with the Rust tests: byte i is i % 251. */
export function patternBytes (n) {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = i % 251
  return out
}

// A small, independent model of how Kubo (boxo ipld/unixfs/importer) lays out
// a file, written from the behaviour described in boxo's balanced/builder.go,
// trickle/trickledag.go and helpers/dagbuilder.go. selftest.mjs compares it
// with ipfs-unixfs-importer configured by lib.mjs, so that a mismatch between
// the JS reference and Kubo's algorithm shows up as a test failure instead of
// silently becoming the reference. It is also a compact spec for cairn.
//
// Node encodings (all dag-pb, Links before Data, every link with Name "" —
// i.e. the bytes 0x12 0x00 are present — and Tsize):
//   leaf, raw leaves    : the chunk itself, CIDv1 raw
//   leaf, otherwise     : dag-pb, Data = UnixFS{Type, Data: chunk, Filesize: len}
//                         Type = File (balanced) or Raw (trickle)
//   parent              : dag-pb, Data = UnixFS{Type: File, Filesize: sum,
//                         Blocksizes: [child file sizes]}, one link per child
//   Tsize of a link     : child block length + sum of the child's link Tsizes
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { blake3 } from './lib.mjs'

// built directly with the chosen hash (not re-hashed afterwards like lib.mjs)
const hasherOf = (o) => (o.hash === 'blake3' ? blake3 : sha256)

async function mkLeaf (chunk, type, o) {
  if (o.rawLeaves) {
    return { cid: CID.createV1(raw.code, await hasherOf(o).digest(chunk)), tsize: chunk.length, fileSize: chunk.length }
  }
  const bytes = dagPb.encode({ Data: new UnixFS({ type, data: chunk }).marshal(), Links: [] })
  return { cid: CID.create(o.cidVersion, dagPb.code, await hasherOf(o).digest(bytes)), tsize: bytes.length, fileSize: chunk.length }
}

async function mkParent (children, o) {
  const fs = new UnixFS({ type: 'file' })
  for (const c of children) fs.addBlockSize(BigInt(c.fileSize))
  const links = children.map((c) => ({ Name: '', Tsize: c.tsize, Hash: c.cid }))
  const bytes = dagPb.encode({ Data: fs.marshal(), Links: links })
  const cid = CID.create(o.cidVersion, dagPb.code, await hasherOf(o).digest(bytes))
  return { cid, tsize: bytes.length + children.reduce((a, c) => a + c.tsize, 0), fileSize: children.reduce((a, c) => a + c.fileSize, 0) }
}

export function chunks (data, size) {
  // boxo chunker size-N: full chunks, then the remainder; no chunk for empty input
  const out = []
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, Math.min(i + size, data.length)))
  return out
}

/** Kubo's balanced layout. o: {cidVersion, rawLeaves, maxLinks, chunkSize} */
export async function balancedRoot (data, o) {
  const cs = chunks(data, o.chunkSize)
  if (cs.length === 0) return (await mkLeaf(new Uint8Array(0), 'file', o)).cid
  let next = 0
  // the first leaf is the root until a second chunk exists
  let root = await mkLeaf(cs[next++], 'file', o)
  // fill(children, depth): add subtrees of height depth-1 (leaves at depth 1)
  // while the node has room and data remains
  async function fill (children, depth) {
    while (children.length < o.maxLinks && next < cs.length) {
      children.push(depth === 1 ? await mkLeaf(cs[next++], 'file', o) : await fill([], depth - 1))
    }
    return mkParent(children, o)
  }
  // each round puts the previous (full) root as first child of a taller root
  for (let depth = 1; next < cs.length; depth++) root = await fill([root], depth)
  return root.cid
}

/** Kubo's trickle layout (depthRepeat 4). */
export async function trickleRoot (data, o) {
  const cs = chunks(data, o.chunkSize)
  let next = 0
  async function fillRec (maxDepth) {
    const children = []
    // FillNodeLayer: up to maxLinks leaves of UnixFS type Raw
    while (children.length < o.maxLinks && next < cs.length) children.push(await mkLeaf(cs[next++], 'raw', o))
    // then, for depth = 1, 2, ... (below maxDepth, unbounded for the root),
    // up to 4 subtrees each built by fillRec(depth), while data remains
    for (let depth = 1; maxDepth === -1 || depth < maxDepth; depth++) {
      if (next >= cs.length) break
      for (let r = 0; r < 4 && next < cs.length; r++) children.push(await fillRec(depth))
    }
    return mkParent(children, o)
  }
  return (await fillRec(-1)).cid
}

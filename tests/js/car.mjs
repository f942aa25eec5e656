#!/usr/bin/env node
// CAR reference tool.
//   node car.mjs pack PATH OUT.car [options]   import PATH like `ipfs add`
//        (same options as unixfs-ref.mjs), write every block of the DAG once,
//        depth-first pre-order (like `ipfs dag export`), into a CARv1 whose
//        header has the root; print the root CID.
//   node car.mjs unpack IN.car OUTPATH         read a CAR with @ipld/car, verify
//        every block against its CID, then export its (single) root with
//        ipfs-unixfs-exporter to OUTPATH as a file, symlink or directory tree.
//   node car.mjs roots IN.car                  print the header roots, one a line.
// Exit status: 0 on success, 1 on any error, 2 on a usage error.
import '../polyfill.mjs'
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { CarBlockIterator, CarWriter } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { exporter } from 'ipfs-unixfs-exporter'
import { equals } from 'multiformats/bytes'
import { HASHERS, OPTIONS_HELP, UsageError, die, importPath, parseArgs, resolveOptions } from './lib.mjs'

const USAGE = `usage:
  node car.mjs pack PATH OUT.car [options]
  node car.mjs unpack IN.car OUTPATH
  node car.mjs roots IN.car
${OPTIONS_HELP}`

async function pack (src, out, o) {
  const { root, blocks } = await importPath(src, o)
  const { writer, out: carBytes } = CarWriter.create([root])
  const done = pipeline(Readable.from(carBytes), createWriteStream(out))
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await done
  process.stdout.write(`${root}\n`)
}

async function verify (cid, bytes) {
  const hasher = HASHERS.get(cid.multihash.code)
  if (hasher == null) throw new Error(`block ${cid}: unsupported multihash code 0x${cid.multihash.code.toString(16)}`)
  const digest = await hasher.digest(bytes)
  if (!equals(digest.bytes, cid.multihash.bytes)) throw new Error(`block ${cid}: hash mismatch`)
}

async function readCar (file) {
  const it = await CarBlockIterator.fromIterable(createReadStream(file))
  const roots = await it.getRoots()
  const bs = new MemoryBlockstore()
  let count = 0
  for await (const { cid, bytes } of it) {
    await verify(cid, bytes)
    await bs.put(cid, bytes)
    count++
  }
  return { roots, bs, count }
}

function safeName (name) {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`refusing unsafe entry name ${JSON.stringify(name)}`)
  }
  return name
}

async function extract (cid, bs, dest) {
  const e = await exporter(cid, bs)
  if (e.type === 'directory') {
    await fsp.mkdir(dest)
    for await (const child of e.entries()) {
      await extract(child.cid, bs, path.join(dest, safeName(child.name)))
    }
    return
  }
  if (e.type === 'file' && e.unixfs.type === 'symlink') {
    await fsp.symlink(new TextDecoder().decode(e.unixfs.data ?? new Uint8Array(0)), dest)
    return
  }
  if (e.type === 'file' || e.type === 'raw' || e.type === 'identity') {
    await pipeline(Readable.from(e.content()), createWriteStream(dest, { flags: 'wx' }))
    return
  }
  throw new Error(`${cid}: cannot export entry of type ${e.type}`)
}

async function unpack (file, dest) {
  const { roots, bs } = await readCar(file)
  if (roots.length !== 1) throw new Error(`expected exactly one root, found ${roots.length}`)
  try {
    await fsp.lstat(dest)
    throw new Error(`${dest} already exists`)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  try {
    await extract(roots[0], bs, dest)
  } catch (err) {
    // leave nothing half-written behind
    await fsp.rm(dest, { recursive: true, force: true })
    throw err
  }
  process.stdout.write(`${roots[0]}\n`)
}

async function roots (file) {
  const it = await CarBlockIterator.fromIterable(createReadStream(file))
  for (const r of await it.getRoots()) process.stdout.write(`${r}\n`)
}

try {
  const [cmd, ...rest] = process.argv.slice(2)
  if (cmd === '--help' || cmd === '-h' || cmd == null) {
    if (cmd == null) throw new UsageError('missing command')
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const { raw, positional } = parseArgs(rest)
  if (cmd === 'pack') {
    if (positional.length !== 2) throw new UsageError('pack needs PATH and OUT.car')
    await pack(positional[0], positional[1], resolveOptions(raw))
  } else if (cmd === 'unpack' || cmd === 'roots') {
    if (Object.keys(raw).length > 0) throw new UsageError(`${cmd} takes no options`)
    if (cmd === 'unpack') {
      if (positional.length !== 2) throw new UsageError('unpack needs IN.car and OUTPATH')
      await unpack(positional[0], positional[1])
    } else {
      if (positional.length !== 1) throw new UsageError('roots needs IN.car')
      await roots(positional[0])
    }
  } else {
    throw new UsageError(`unknown command ${cmd}`)
  }
} catch (err) {
  die(err, USAGE)
}

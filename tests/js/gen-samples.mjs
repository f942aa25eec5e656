#!/usr/bin/env node
// Writes the deterministic sample inputs used to record reference CIDs.
// Generator rule (shared with the Rust tests): a file of N bytes holds
// byte i = i % 251 (as u8), for i in 0..N.
//   f0 (0 B), f1 (1 B), f262144, f262145, f1000000, f52428800 (50 MiB), and
//   dir/ : Z (10 B), a.txt (1000 B), empty-file (0 B), .hidden (10 B),
//          empty-dir/, sub/b.bin (300000 B), sub/sub2/c (1 B),
//          sub/.hdir/d (5 B)
// usage: node gen-samples.mjs OUTDIR
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { patternBytes } from './lib.mjs'

const out = process.argv[2]
if (out == null) { process.stderr.write('usage: node gen-samples.mjs OUTDIR\n'); process.exit(2) }
await fsp.mkdir(out, { recursive: true })
for (const n of [0, 1, 262144, 262145, 1000000, 52428800]) {
  await fsp.writeFile(path.join(out, `f${n}`), patternBytes(n))
}
const dir = path.join(out, 'dir')
await fsp.rm(dir, { recursive: true, force: true })
const files = { Z: 10, 'a.txt': 1000, 'empty-file': 0, '.hidden': 10, 'sub/b.bin': 300000, 'sub/sub2/c': 1, 'sub/.hdir/d': 5 }
for (const [rel, n] of Object.entries(files)) {
  await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true })
  await fsp.writeFile(path.join(dir, rel), patternBytes(n))
}
await fsp.mkdir(path.join(dir, 'empty-dir'))

#!/usr/bin/env node
// Self-test of the reference harness: known Kubo CIDs, and the JS importer
// (as configured by lib.mjs) against kubo-model.mjs, an independent model of
// boxo's balanced and trickle layouts, over many sizes and shapes.
import '../polyfill.mjs'
import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { importBytes, importPath, patternBytes, resolveOptions } from './lib.mjs'
import { balancedRoot, trickleRoot } from './kubo-model.mjs'

let passed = 0
let failed = 0
function check (name, got, want) {
  if (String(got) === String(want)) { passed++; return }
  failed++
  process.stdout.write(`FAIL ${name}: got ${got}, want ${want}\n`)
}

const opts = (flags) => resolveOptions(flags)
const enc = new TextEncoder()

// Known CIDs produced by Kubo's `ipfs add` with default settings.
check('empty file, defaults', await importBytes(new Uint8Array(0), opts({})), 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH')
check('hello world\\n, defaults', await importBytes(enc.encode('hello world\n'), opts({})), 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')
check('hello world\\n, cidv1', await importBytes(enc.encode('hello world\n'), opts({ '--cid-version': '1' })), 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4')

check('empty file, blake3', await importBytes(new Uint8Array(0), opts({ '--hash': 'blake3' })), 'bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi')
{
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cairn-selftest-'))
  try {
    await fsp.mkdir(path.join(tmp, 'd'))
    check('empty directory, defaults', (await importPath(path.join(tmp, 'd'), opts({}))).root, 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn')
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true })
  }
}

// Values recorded with this harness (regression guard for dependency updates;
// the layouts themselves are checked against kubo-model.mjs below).
for (const [flags, n, want] of [
  [{}, 262144, 'QmeqfRyS3vkku7n6krqC3DgGMex3x2sCpSeKMDmrG13QQq'],
  [{}, 262145, 'QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB'],
  [{ '--cid-version': '1' }, 262145, 'bafybeiexg2oqkfnj56l7fcmawswqbijt5shq4b5rg6a546uwpkqqzwjioi'],
  [{ '--cid-version': '1', '--hash': 'blake3' }, 262145, 'bafyb4idsmr6thccsu5hnmeskh4cehtijor5uwlxdr7426jeol27ttppngm'],
  [{ '--layout': 'trickle' }, 1, 'QmcBmLQtSpKgG8TpQwKWx82bxy2PZAfYSewvQdwToBEvrj'],
  [{ '--layout': 'trickle' }, 1000000, 'QmRyd9XgfxDnFzURMMbVm58CmAmrNKodevcTBV8uXVHNtH']
]) {
  check(`recorded ${JSON.stringify(flags)} ${n} B`, await importBytes(patternBytes(n), opts(flags)), want)
}

// Layout equivalence with small chunks so that trees get deep quickly.
for (const layout of ['balanced', 'trickle']) {
  for (const [cidv, rawLeaves, hash] of [['0', 'false', 'sha2-256'], ['1', 'true', 'sha2-256'], ['1', 'false', 'sha2-256'], ['0', 'true', 'sha2-256'], ['1', 'true', 'blake3'], ['1', 'false', 'blake3']]) {
    for (const maxLinks of [2, 3, 5]) {
      const chunkSize = 3
      const o = opts({ '--layout': layout, '--hash': hash, '--cid-version': cidv, '--raw-leaves': rawLeaves, '--max-links': String(maxLinks), '--chunker': `size-${chunkSize}` })
      for (let nChunks = 0; nChunks <= 130; nChunks += (nChunks < 40 ? 1 : 7)) {
        for (const extra of [0, 1]) {
          const len = Math.max(0, nChunks * chunkSize - extra)
          const data = patternBytes(len)
          const model = layout === 'balanced' ? await balancedRoot(data, o) : await trickleRoot(data, o)
          check(`${layout} v${cidv} ${hash} raw=${rawLeaves} links=${maxLinks} len=${len}`, await importBytes(data, o), model)
        }
      }
    }
  }
}

process.stdout.write(`${passed} passed, ${failed} failed\n`)
process.exit(failed === 0 ? 0 : 1)

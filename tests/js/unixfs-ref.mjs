#!/usr/bin/env node
// Reference CIDs: import PATH like Kubo's `ipfs add [-r] PATH` with the JS
// reference importer (ipfs-unixfs-importer) into an in-memory blockstore and
// print the root CID; with --all print `CID PATH` for every entry (files,
// symlinks and directories, like `ipfs add` output lines), read back from
// the DAG so that empty directories and HAMT members are listed too; root last.
import '../polyfill.mjs'
import { OPTIONS_HELP, die, importPath, parseArgs, resolveOptions, UsageError } from './lib.mjs'

const USAGE = `usage: node unixfs-ref.mjs [options] [--all] PATH\n${OPTIONS_HELP}\n  --all                        print 'CID PATH' for every entry`

try {
  const { raw, positional } = parseArgs(process.argv.slice(2), ['--all', '--help', '-h'])
  if (raw['--help'] || raw['-h']) { process.stdout.write(USAGE + '\n'); process.exit(0) }
  if (positional.length !== 1) throw new UsageError('exactly one PATH is required')
  const o = resolveOptions(raw)
  const { root, entries } = await importPath(positional[0], o)
  if (raw['--all']) {
    // children before their directory, names in byte order, the root last
    for (const e of entries) process.stdout.write(`${e.cid} ${e.path}\n`)
  } else {
    process.stdout.write(`${root}\n`)
  }
} catch (err) {
  die(err, USAGE)
}

// A network guard for the client scripts: once allowOnly(url) is called,
// the process may open TCP connections to that URL's host and port only.
// Every other TCP connection (whatever module opens it: fetch/undici,
// http, net), every DNS lookup of a name other than "localhost", and every
// UDP socket is refused before anything leaves the process, and recorded
// in `refused`. Import it before any client library.
import dgram from 'node:dgram'
import dns from 'node:dns'
import net from 'node:net'

export const refused = []

let allowed = null // { hosts: Set, port: string }

const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])

export function allowOnly (url) {
  const u = new URL(url)
  const port = u.port !== '' ? u.port : (u.protocol === 'https:' ? '443' : '80')
  const hosts = new Set([u.hostname, u.hostname.replace(/^\[|\]$/g, '')])
  if (u.hostname === 'localhost') {
    hosts.add('127.0.0.1')
    hosts.add('::1')
  }
  allowed = { hosts, port }
}

function refuse (what) {
  refused.push(what)
  return new Error(`network guard: refused ${what} (only ${allowed == null ? 'nothing' : `${[...allowed.hosts][0]}:${allowed.port}`} is allowed)`)
}

// net.connect(...) and socket.connect(...) pass either (options[, cb]),
// (port[, host][, cb]), (path[, cb]) or Node's internal normalised
// [options, cb] array.
function target (args) {
  let first = args[0]
  if (Array.isArray(first)) {
    first = first[0]
  }
  if (first != null && typeof first === 'object') {
    return { host: first.host ?? 'localhost', port: first.port, path: first.path }
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) {
    return { path: first }
  }
  return { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: first }
}

const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function guardedConnect (...args) {
  const t = target(args)
  if (t.path == null) {
    const ok = allowed != null && allowed.hosts.has(String(t.host)) && String(t.port) === allowed.port
    if (!ok) {
      const err = refuse(`tcp ${t.host}:${t.port}`)
      process.nextTick(() => this.destroy(err))
      return this
    }
  }
  return connect.apply(this, args)
}

const lookup = dns.lookup
dns.lookup = function guardedLookup (hostname, ...rest) {
  if (!LOCAL_NAMES.has(hostname)) {
    const cb = rest.find(x => typeof x === 'function')
    const err = refuse(`dns ${hostname}`)
    err.code = 'ENOTFOUND'
    if (cb != null) {
      process.nextTick(() => cb(err))
      return
    }
    throw err
  }
  return lookup.call(this, hostname, ...rest)
}
const promisesLookup = dns.promises.lookup
dns.promises.lookup = async function guardedLookup (hostname, ...rest) {
  if (!LOCAL_NAMES.has(hostname)) {
    throw refuse(`dns ${hostname}`)
  }
  return promisesLookup.call(this, hostname, ...rest)
}
for (const name of ['resolve', 'resolve4', 'resolve6', 'resolveTxt', 'resolveAny', 'resolveSrv', 'resolveCname']) {
  const cbApi = dns[name]
  if (typeof cbApi === 'function') {
    dns[name] = function guardedResolve (hostname, ...rest) {
      const cb = rest.find(x => typeof x === 'function')
      const err = refuse(`dns ${name} ${hostname}`)
      if (cb != null) {
        process.nextTick(() => cb(err))
        return
      }
      throw err
    }
  }
  if (typeof dns.promises[name] === 'function') {
    dns.promises[name] = async (hostname) => { throw refuse(`dns ${name} ${hostname}`) }
  }
}

const createSocket = dgram.createSocket
dgram.createSocket = function guardedCreateSocket (...args) {
  const what = `udp socket ${typeof args[0] === 'object' ? args[0]?.type : args[0]}`
  refused.push(what)
  throw new Error(`network guard: refused ${what}`)
}
void createSocket

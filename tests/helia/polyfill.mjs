// Node 20 lacks Promise.withResolvers (Node >= 22), which the IPFS JS stack
// uses (see shared/INTEROP.md): here @libp2p/ping (a kad-dht dependency) calls
// it at run time. Imported first by peer.mjs, before any libp2p module.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

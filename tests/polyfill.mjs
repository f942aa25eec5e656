// Node 20 lacks Promise.withResolvers (Node >= 22), which the IPFS JS stack
// uses (see shared/INTEROP.md): @libp2p/ping (a kad-dht dependency of the
// Helia peer) calls it at run time. Imported first by every entry point of
// the JS harnesses (tests/js, tests/helia, tests/js-clients), before any
// IPFS module.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

// Node 20 lacks Promise.withResolvers (Node >= 22), which the IPFS JS stack
// uses at run time (see shared/INTEROP.md). Imported first by the client
// scripts, before any Helia/libp2p module.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

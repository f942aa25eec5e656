// Node 20 lacks Promise.withResolvers (Node >= 22), which parts of the IPFS JS
// stack use (see shared/INTEROP.md); none of the versions pinned here calls it
// at run time today, so this only guards future upgrades. Imported first by
// every entry point.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

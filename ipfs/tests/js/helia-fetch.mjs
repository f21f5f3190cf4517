// Fetch files from a trustless gateway with an independent IPFS client: Helia's
// `@helia/verified-fetch` over `@helia/http`, whose trustless-gateway block broker asks for every
// block as its own `?format=raw` request, many in parallel, and checks each block's hash.
//   node helia-fetch.mjs GATEWAY_URL CID...  -> prints JSON [{cid, status, size, sha256}, ...]

// Node 20 lacks Promise.withResolvers, which a dependency calls: polyfill it before the imports.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createHash } = await import('node:crypto')
const { createHeliaHTTP } = await import('@helia/http')
const { trustlessGateway } = await import('@helia/block-brokers')
const { httpGatewayRouting } = await import('@helia/routers')
const { createVerifiedFetch } = await import('@helia/verified-fetch')

const [gateway, ...cids] = process.argv.slice(2)
// Only this gateway: no delegated routing, no public gateways. A loopback HTTP gateway must be
// allowed explicitly.
const helia = await createHeliaHTTP({
  blockBrokers: [trustlessGateway({ allowInsecure: true, allowLocal: true })],
  routers: [httpGatewayRouting({ gateways: [gateway] })]
})
const verifiedFetch = await createVerifiedFetch(helia)
const results = []
process.on('unhandledRejection', (err) => {
  console.error('unhandled rejection:', err?.stack ?? err)
  process.exit(1)
})
for (const cid of cids) {
  const resp = await verifiedFetch(`ipfs://${cid}`, { signal: AbortSignal.timeout(60_000) })
  const body = new Uint8Array(await resp.arrayBuffer())
  results.push({
    cid,
    status: resp.status,
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex')
  })
}
await verifiedFetch.stop()
console.log(JSON.stringify(results))

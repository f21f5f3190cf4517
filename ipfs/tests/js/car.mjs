// CAR interop with the npm `@ipld/car` reference implementation.
//   node car.mjs write FILE PROFILE OUT.car  -> imports FILE with ipfs-unixfs-importer, writes its
//                                              DAG (DFS order) as a CAR v1, prints the root CID
//   node car.mjs read IN.car                 -> checks every block's sha2-256, walks the UnixFS
//                                              file from the root, prints JSON
//                                              {roots, blocks, size, sha256}
import { createReadStream, createWriteStream, readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { CarWriter, CarBlockIterator } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals } from 'multiformats/bytes'
import { UnixFS } from 'ipfs-unixfs'
import { importFile } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'

const PROFILES = {
  kubo: { cidVersion: 0, rawLeaves: false, chunkSize: 262144, links: 174 },
  'kubo-v1': { cidVersion: 1, rawLeaves: true, chunkSize: 262144, links: 174 },
  'unixfs-v1-2025': { cidVersion: 1, rawLeaves: true, chunkSize: 1048576, links: 1024 }
}

async function write (file, profile, out, chunk) {
  const o = PROFILES[profile]
  const store = new MemoryBlockstore()
  const entry = await importFile({ content: createReadStream(file) }, store, {
    cidVersion: o.cidVersion,
    rawLeaves: o.rawLeaves,
    chunker: fixedSize({ chunkSize: chunk === undefined ? o.chunkSize : Number(chunk) }),
    layout: balanced({ maxChildrenPerNode: o.links })
  })
  const { writer, out: carOut } = CarWriter.create([entry.cid])
  const done = new Promise((resolve, reject) => {
    Readable.from(carOut).pipe(createWriteStream(out)).on('finish', resolve).on('error', reject)
  })
  const seen = new Set()
  const walk = async (cid) => {
    if (seen.has(cid.toString())) return
    seen.add(cid.toString())
    const bytes = await collect(store.get(cid))
    await writer.put({ cid, bytes })
    if (cid.code === dagPb.code) {
      for (const link of dagPb.decode(bytes).Links) await walk(link.Hash)
    }
  }
  await walk(entry.cid)
  await writer.close()
  await done
  console.log(entry.cid.toString())
}

async function collect (value) {
  const v = await value
  if (v instanceof Uint8Array) return v
  const parts = []
  for await (const p of v) parts.push(p)
  return Buffer.concat(parts)
}

async function read (file) {
  const iter = await CarBlockIterator.fromIterable(Readable.from([readFileSync(file)]))
  const roots = (await iter.getRoots()).map((c) => c.toString())
  const blocks = new Map()
  for await (const { cid, bytes } of iter) {
    const digest = await sha256.digest(bytes)
    if (!equals(digest.bytes, cid.multihash.bytes)) throw new Error(`hash mismatch ${cid}`)
    blocks.set(cid.toString(), { cid, bytes })
  }
  const hash = createHash('sha256')
  let size = 0
  const walk = (key) => {
    const block = blocks.get(key)
    if (block === undefined) throw new Error(`missing block ${key}`)
    if (block.cid.code !== dagPb.code) {
      hash.update(block.bytes)
      size += block.bytes.length
      return
    }
    const node = dagPb.decode(block.bytes)
    const fs = UnixFS.unmarshal(node.Data)
    if (fs.data !== undefined && fs.data.length > 0) {
      hash.update(fs.data)
      size += fs.data.length
    }
    for (const link of node.Links) walk(link.Hash.toString())
  }
  walk(roots[0])
  console.log(JSON.stringify({ roots, blocks: blocks.size, size, sha256: hash.digest('hex') }))
}

const [cmd, ...args] = process.argv.slice(2)
if (cmd === 'write') await write(...args)
else if (cmd === 'read') await read(...args)
else { console.error('usage: car.mjs write FILE PROFILE OUT [CHUNK] | read IN'); process.exit(2) }

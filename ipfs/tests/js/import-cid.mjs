// Prints the CID that the npm `ipfs-unixfs-importer` computes for a file.
// Usage: node import-cid.mjs FILE PROFILE [CHUNK_SIZE|-] [CID_VERSION|-] [RAW_LEAVES|-]
//   PROFILE: kubo | kubo-v1 | unixfs-v1-2025 (the Rust crate's profiles)
// Blocks are dropped (only-hash), so memory stays small for large inputs.
import { createReadStream } from 'node:fs'
import { importFile } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [file, profile, chunk, cidVersion, rawLeaves] = process.argv.slice(2)
const options = {
  kubo: { cidVersion: 0, rawLeaves: false, chunkSize: 262144, links: 174 },
  'kubo-v1': { cidVersion: 1, rawLeaves: true, chunkSize: 262144, links: 174 },
  'unixfs-v1-2025': { cidVersion: 1, rawLeaves: true, chunkSize: 1048576, links: 1024 }
}[profile]
if (options === undefined) {
  console.error(`unknown profile ${profile}`)
  process.exit(2)
}
const given = (v) => v !== undefined && v !== '-'
const chunkSize = given(chunk) ? Number(chunk) : options.chunkSize
if (given(cidVersion)) options.cidVersion = Number(cidVersion)
if (given(rawLeaves)) options.rawLeaves = rawLeaves === 'true'
const nullBlockstore = {
  put: async (cid) => cid,
  has: async () => false,
  get: async () => { throw new Error('only-hash blockstore') }
}
const entry = await importFile({ content: createReadStream(file, { highWaterMark: 1 << 20 }) }, nullBlockstore, {
  cidVersion: options.cidVersion,
  rawLeaves: options.rawLeaves,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize }),
  layout: balanced({ maxChildrenPerNode: options.links })
})
console.log(entry.cid.toString())

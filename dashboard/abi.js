// The Solidity ABI for the few calls the dashboard makes through a wallet: a small encoder
// and decoder (no dependency, no bundle) and the function selectors, event topics and error
// selectors of UpdateRegistry, UpdateMarket and ERC-20. Browsers have no keccak-256, so the
// selectors are constants here; `indexer/tests/dashboard_abi.rs` checks every one (and the
// signature it belongs to) against the `sol!` bindings in core, and checks this encoder's
// output against alloy's, so a contract change fails that test rather than the page.
//
// Scope (docs/dashboard.md): uint<N>, address, bool, bytes<N>, bytes, string, dynamic
// arrays `T[]` and tuples of those, nested. Fixed-size arrays `T[k]` and signed integers
// are refused (no call of the page uses them). Values: integers as BigInt, numbers or
// decimal/0x strings; addresses and bytes as 0x hex; tuples as arrays in field order.
// Decoding is strict: out-of-range integers, dirty address/bool/bytes<N> padding and
// offsets or lengths past the end of the data are errors, never silently accepted.

/** Bad input to the encoder or malformed data to the decoder; the message names the value. */
export class AbiError extends Error {
  constructor(message) { super(message); this.name = 'AbiError'; }
}

/** The manifest struct as the contracts spell it (IUpdateRegistry.Manifest). */
export const MANIFEST = '(uint32,uint64,bytes32,uint64,bytes,bytes32,uint128,address,bytes32,uint64,bytes32)';

const fn = (signature, selector, returns = '()') => ({ signature, selector, returns });

/** Functions the page calls: signature, selector (checked in Rust), return tuple. */
export const FUNCTIONS = {
  // UpdateRegistry
  device: fn('device(uint64)', '0xa9c6f53a', '((address,uint32,uint8))'),
  manufacturer: fn('manufacturer(uint32)', '0xb4e27cff', '((bytes32,address,uint64,address))'),
  release: fn('release(bytes32)', '0x67d42a8b', '((uint64,uint32,uint40,uint40,uint16))'),
  releaseId: fn(`releaseId(${MANIFEST})`, '0x614336fb', '(bytes32)'),
  model: fn('model(uint32)', '0x75044588', '((uint32,uint64,uint64))'),
  publishRelease: fn(`publishRelease(${MANIFEST},(address[],uint8,bytes))`, '0xf77bfcf5', '(bytes32)'),
  revokeRelease: fn('revokeRelease(bytes32,string,(address[],uint8,bytes))', '0xb8084a91'),
  raiseFloor: fn('raiseFloor(uint32,uint64,(address[],uint8,bytes))', '0x7aadca15'),
  updateManufacturer: fn('updateManufacturer(uint32,address,address,(address[],uint8,bytes))', '0x27eb0207'),
  rotateSigners: fn('rotateSigners(uint32,address[],uint8,(address[],uint8,bytes))', '0xb5ca668d'),
  checkDevices: fn('checkDevices(address,uint32,bool,uint64[])', '0x53b79b42'),
  signersHash: fn('signersHash(address[],uint8)', '0xece4a549', '(bytes32)'),
  transferDevice: fn('transferDevice(uint64,address)', '0xaf1efca8'),
  registerManufacturer: fn('registerManufacturer(string,address,address,address[],uint8,string)', '0x2ac25eb9', '(uint32)'),
  defineModel: fn('defineModel(uint32,string,uint64)', '0x5e696f79', '(uint32)'),
  claimDevice: fn('claimDevice(uint64,uint64,address,uint32,address,bytes32[],bytes)', '0xdcd8a0db'),
  emergencyRevoke: fn('emergencyRevoke(bytes32,string)', '0x26568c40'),
  // UpdateMarket
  purchase: fn(`purchase(${MANIFEST},uint64[])`, '0x34e94d21'),
  purchaseWithPermit: fn(`purchaseWithPermit(${MANIFEST},uint64[],(uint256,uint256,uint8,bytes32,bytes32))`, '0xbf37d6bd'),
  claimRefund: fn(`claimRefund(${MANIFEST},uint64[])`, '0x3ca6437b'),
  isEntitled: fn('isEntitled(bytes32,uint64)', '0x8c6bae06', '(bool)'),
  // ERC-20
  allowance: fn('allowance(address,address)', '0xdd62ed3e', '(uint256)'),
  approve: fn('approve(address,uint256)', '0x095ea7b3', '(bool)'),
  decimals: fn('decimals()', '0x313ce567', '(uint8)'),
  symbol: fn('symbol()', '0x95d89b41', '(string)'),
  name: fn('name()', '0x06fdde03', '(string)'),
  // EIP-2612 and EIP-5267
  nonces: fn('nonces(address)', '0x7ecebe00', '(uint256)'),
  permit: fn('permit(address,address,uint256,uint256,uint8,bytes32,bytes32)', '0xd505accf'),
  DOMAIN_SEPARATOR: fn('DOMAIN_SEPARATOR()', '0x3644e515', '(bytes32)'),
  eip712Domain: fn('eip712Domain()', '0x84b0196e', '(bytes1,string,string,uint256,address,bytes32,uint256[])'),
};

/** Event topics the page reads from receipts (checked in Rust). */
export const EVENTS = {
  Purchased: {
    signature: 'Purchased(bytes32,address,uint64[],uint256,address)',
    topic: '0x6b905fbe388346a0011590477123a72ed892c40ecc77eb4c1f11971ce929fa9a',
    data: '(uint64[],uint256,address)',
  },
};

/** Every custom error of both contracts by selector (checked complete in Rust), plus Solidity's own. */
export const ERRORS = {
  '0x08c379a0': 'Error(string)',
  '0x4e487b71': 'Panic(uint256)',
  '0x6cb75a9b': 'ManifestHashCidOutOfBounds(uint256,uint256,uint256)',
  '0x684a37aa': 'ManifestHashDirtyField(uint256,uint256)',
  '0x05c3db8d': 'UpdateRegistryApprovalOutOfBounds(uint256,uint256,uint256,uint256,uint256)',
  '0xeeaa3beb': 'UpdateRegistryDeviceInactive(uint64,uint8)',
  '0xdc76e8c5': 'UpdateRegistryDeviceModelMismatch(uint64,uint32,uint32)',
  '0x3e6012d6': 'UpdateRegistryDeviceNotClaimable(uint64,uint8)',
  '0xfee7e93b': 'UpdateRegistryDeviceNotInBatch(uint64,uint64)',
  '0xe5af70e4': 'UpdateRegistryEmptyBatch()',
  '0x7dff87e8': 'UpdateRegistryExpired(uint64,uint256)',
  '0xa794ddd3': 'UpdateRegistryFloorNotIncreasing(uint32,uint64,uint64)',
  '0x9b8c25a9': 'UpdateRegistryInvalidDeviceSignature(uint64,address,address)',
  '0x4b9e66b3': 'UpdateRegistryInvalidProof(uint64,uint64)',
  '0x193e7b48': 'UpdateRegistryInvalidSignature(uint256,address)',
  '0x899c0256': 'UpdateRegistryInvalidSignerSet(uint256,uint256)',
  '0x9cbd71f3': 'UpdateRegistryModelManufacturerMismatch(uint32,uint32)',
  '0x7a7dbed2': 'UpdateRegistryNotDeviceOwner(uint64,address,address)',
  '0x8517728e': 'UpdateRegistryNotEnoughSignatures(uint256,uint256)',
  '0x5d14f1f0': 'UpdateRegistryNotOperator(uint32,address)',
  '0x2615774e': 'UpdateRegistryReleaseRevoked(bytes32)',
  '0xcd5e5a57': 'UpdateRegistrySignatureLength(uint256)',
  '0xd795b0f3': 'UpdateRegistrySignatureMalleable(uint256)',
  '0xb5ca7579': 'UpdateRegistrySignerSetMismatch(uint32,bytes32,bytes32)',
  '0x5ecd9b35': 'UpdateRegistrySignersNotAscending(uint256,address)',
  '0x0d9fb9e6': 'UpdateRegistryUnknownBatch(uint64)',
  '0xfe818102': 'UpdateRegistryUnknownManufacturer(uint32)',
  '0xa3cd4198': 'UpdateRegistryUnknownModel(uint32)',
  '0x71d7e685': 'UpdateRegistryUnknownRelease(bytes32)',
  '0xe062f359': 'UpdateRegistryVersionBelowFloor(uint32,uint64,uint64)',
  '0xd8ff9ff1': 'UpdateRegistryVersionNotIncreasing(uint32,uint64,uint64)',
  '0x5db9821a': 'UpdateRegistryZeroAddress()',
  '0x409e3d48': 'UpdateMarketAlreadyEntitled(bytes32,uint64)',
  '0x487cf95f': 'UpdateMarketDevicesNotAscending(uint256,uint64)',
  '0x63f055c6': 'UpdateMarketEarningsRefundable(bytes32)',
  '0xa90b5ac9': 'UpdateMarketEthTransferFailed(address,uint256)',
  '0xb8741721': 'UpdateMarketNoDevices()',
  '0x58767a50': 'UpdateMarketNotEntitled(bytes32,uint64)',
  '0x0ce22393': 'UpdateMarketNotRefundable(bytes32)',
  '0xf359c59c': 'UpdateMarketNotSettled(bytes32,uint256)',
  '0xe74e26b1': 'UpdateMarketNothingToWithdraw(bytes32)',
  '0x3bfaf68d': 'UpdateMarketPermitFailed(address,uint256,uint256)',
  '0x264848bd': 'UpdateMarketPermitForEthRelease()',
  '0x3f006698': 'UpdateMarketReentrant()',
  '0x3d4c25d8': 'UpdateMarketRefundWindowTooLong(uint256,uint256)',
  '0x619a8b9c': 'UpdateMarketReleaseExpired(bytes32,uint64)',
  '0x5082b403': 'UpdateMarketReleaseRevoked(bytes32)',
  '0xc5536167': 'UpdateMarketTokenAmountMismatch(address,uint256,uint256)',
  '0xc0fb8fb0': 'UpdateMarketTokenTransferFailed(address)',
  '0x062874f9': 'UpdateMarketUnknownRelease(bytes32)',
  '0xba467898': 'UpdateMarketWrongPayment(uint256,uint256)',
  '0x56b6389a': 'UpdateMarketZeroRegistry()',
};

// ---------------------------------------------------------------- types

function splitTop(s, what) {
  const parts = []; let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') { depth--; if (depth < 0) throw new AbiError(`unbalanced parentheses in ${what}`); }
    else if (s[i] === ',' && depth === 0) { parts.push(s.slice(start, i)); start = i + 1; }
  }
  if (depth !== 0) throw new AbiError(`unbalanced parentheses in ${what}`);
  if (s.length) parts.push(s.slice(start));
  return parts;
}

/** Parses a type (`uint64`, `bytes`, `address[]`, `(uint32,bytes)`...) into a descriptor. */
export function parseType(s) {
  if (s.endsWith('[]')) return { kind: 'array', of: parseType(s.slice(0, -2)) };
  if (s.endsWith(']')) throw new AbiError(`fixed-size array ${s} is outside this encoder's scope`);
  if (s.startsWith('(')) {
    if (!s.endsWith(')')) throw new AbiError(`malformed tuple type ${s}`);
    return { kind: 'tuple', items: splitTop(s.slice(1, -1), s).map(parseType) };
  }
  let m;
  if ((m = /^uint(\d+)$/.exec(s))) {
    const bits = Number(m[1]);
    if (bits < 8 || bits > 256 || bits % 8) throw new AbiError(`bad integer width in ${s}`);
    return { kind: 'uint', bits };
  }
  if ((m = /^bytes(\d+)$/.exec(s))) {
    const size = Number(m[1]);
    if (size < 1 || size > 32) throw new AbiError(`bad fixed bytes width in ${s}`);
    return { kind: 'fixed', size };
  }
  if (s === 'address' || s === 'bool' || s === 'bytes' || s === 'string') return { kind: s };
  throw new AbiError(`type ${JSON.stringify(s)} is outside this encoder's scope`);
}

/** `name(types)` → `{ name, inputs }` (the inputs as one tuple descriptor). */
export function parseSignature(signature) {
  const open = signature.indexOf('(');
  if (open < 1 || !signature.endsWith(')')) throw new AbiError(`malformed signature ${signature}`);
  return { name: signature.slice(0, open), inputs: parseType(signature.slice(open)) };
}

const isDynamic = (t) => t.kind === 'bytes' || t.kind === 'string' || t.kind === 'array'
  || (t.kind === 'tuple' && t.items.some(isDynamic));
const headSize = (t) => (isDynamic(t) ? 32 : t.kind === 'tuple' ? t.items.reduce((n, i) => n + headSize(i), 0) : 32);

// ---------------------------------------------------------------- bytes

/** 0x hex → bytes (even length, hex digits only). */
export function fromHex(hex, what = 'value') {
  if (typeof hex !== 'string' || !/^0x([0-9a-fA-F]{2})*$/.test(hex)) throw new AbiError(`${what}: expected 0x and an even number of hex digits, got ${JSON.stringify(hex)}`);
  const out = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16);
  return out;
}

/** bytes → 0x hex (lower case). */
export function toHex(bytes) {
  let s = '0x'; for (const b of bytes) s += b.toString(16).padStart(2, '0'); return s;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function word(n) {
  const out = new Uint8Array(32); let v = BigInt(n);
  for (let i = 31; i >= 0 && v > 0n; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}

function padRight(bytes) {
  const out = new Uint8Array(Math.ceil(bytes.length / 32) * 32); out.set(bytes); return out;
}

/** An integer value as BigInt (BigInt, safe integer, decimal or 0x string). */
export function toBigInt(v, what = 'value') {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) return BigInt(v);
  throw new AbiError(`${what}: expected an integer, got ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`);
}

// ---------------------------------------------------------------- encoding

function encodeValue(t, v, what) {
  switch (t.kind) {
    case 'uint': {
      const n = toBigInt(v, what);
      if (n < 0n || n >= 1n << BigInt(t.bits)) throw new AbiError(`${what}: ${n} does not fit uint${t.bits}`);
      return word(n);
    }
    case 'address':
      if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v)) throw new AbiError(`${what}: expected a 20-byte 0x address, got ${JSON.stringify(v)}`);
      return word(BigInt(v));
    case 'bool':
      if (typeof v !== 'boolean') throw new AbiError(`${what}: expected true or false, got ${JSON.stringify(v)}`);
      return word(v ? 1 : 0);
    case 'fixed': {
      const b = fromHex(v, what);
      if (b.length !== t.size) throw new AbiError(`${what}: expected ${t.size} bytes, got ${b.length}`);
      return padRight(b);
    }
    case 'bytes': case 'string': {
      const b = t.kind === 'string' ? (typeof v === 'string' ? new TextEncoder().encode(v) : (() => { throw new AbiError(`${what}: expected a string`); })()) : fromHex(v, what);
      return concat([word(b.length), padRight(b)]);
    }
    case 'array':
      if (!Array.isArray(v)) throw new AbiError(`${what}: expected an array`);
      return concat([word(v.length), encodeTuple(v.map(() => t.of), v, what)]);
    case 'tuple':
      if (!Array.isArray(v) || v.length !== t.items.length) throw new AbiError(`${what}: expected a tuple of ${t.items.length} values`);
      return encodeTuple(t.items, v, what);
    default: throw new AbiError(`${what}: unknown type`);
  }
}

function encodeTuple(items, values, what) {
  const heads = [], tails = [];
  let offset = items.reduce((n, t) => n + headSize(t), 0);
  items.forEach((t, i) => {
    const enc = encodeValue(t, values[i], `${what}[${i}]`);
    if (isDynamic(t)) { heads.push(word(offset)); tails.push(enc); offset += enc.length; } else heads.push(enc);
  });
  return concat([...heads, ...tails]);
}

/** ABI-encodes `values` as the tuple type `types` (e.g. `(uint64,address)`), 0x hex. */
export function encode(types, values) {
  const t = parseType(types);
  if (t.kind !== 'tuple') throw new AbiError(`encode takes a tuple type, got ${types}`);
  return toHex(encodeValue(t, values, 'argument'));
}

/** Calldata for `f` (an entry of FUNCTIONS) with `args` in order. */
export function encodeCall(f, args) {
  const { name, inputs } = parseSignature(f.signature);
  if (!Array.isArray(args) || args.length !== inputs.items.length) throw new AbiError(`${name} takes ${inputs.items.length} arguments`);
  return f.selector + toHex(encodeValue(inputs, args, name)).slice(2);
}

// ---------------------------------------------------------------- decoding

function readWord(data, at, what) {
  if (at + 32 > data.length) throw new AbiError(`${what}: data ends at ${data.length} bytes, word at ${at} needed`);
  let v = 0n; for (let i = 0; i < 32; i++) v = (v << 8n) | BigInt(data[at + i]);
  return v;
}

function readOffset(data, at, what) {
  const v = readWord(data, at, what);
  if (v > BigInt(data.length)) throw new AbiError(`${what}: offset or length ${v} past the end of ${data.length} bytes`);
  return Number(v);
}

function decodeValue(t, data, at, what) {
  switch (t.kind) {
    case 'uint': {
      const v = readWord(data, at, what);
      if (v >= 1n << BigInt(t.bits)) throw new AbiError(`${what}: ${v} does not fit uint${t.bits}`);
      return v;
    }
    case 'address': {
      const v = readWord(data, at, what);
      if (v >> 160n) throw new AbiError(`${what}: dirty address padding`);
      return `0x${v.toString(16).padStart(40, '0')}`;
    }
    case 'bool': {
      const v = readWord(data, at, what);
      if (v > 1n) throw new AbiError(`${what}: ${v} is no bool`);
      return v === 1n;
    }
    case 'fixed': {
      readWord(data, at, what);
      if (data.subarray(at + t.size, at + 32).some((b) => b)) throw new AbiError(`${what}: dirty bytes${t.size} padding`);
      return toHex(data.subarray(at, at + t.size));
    }
    case 'bytes': case 'string': {
      const len = readOffset(data, at, what);
      if (at + 32 + len > data.length) throw new AbiError(`${what}: ${len} bytes past the end of the data`);
      const b = data.slice(at + 32, at + 32 + len);
      return t.kind === 'string' ? new TextDecoder('utf-8', { fatal: true }).decode(b) : toHex(b);
    }
    case 'array': {
      const len = readOffset(data, at, what);
      if (at + 32 + len * headSize(t.of) > data.length) throw new AbiError(`${what}: ${len} elements past the end of the data`);
      return decodeTuple(Array.from({ length: len }, () => t.of), data, at + 32, what);
    }
    case 'tuple': return decodeTuple(t.items, data, at, what);
    default: throw new AbiError(`${what}: unknown type`);
  }
}

function decodeTuple(items, data, base, what) {
  let pos = base;
  return items.map((t, i) => {
    const name = `${what}[${i}]`;
    let v;
    if (isDynamic(t)) v = decodeValue(t, data, base + readOffset(data, pos, name), name);
    else v = decodeValue(t, data, pos, name);
    pos += headSize(t);
    return v;
  });
}

/** Decodes 0x hex `data` as the tuple type `types`; returns the values as an array. */
export function decode(types, data) {
  const t = parseType(types);
  if (t.kind !== 'tuple') throw new AbiError(`decode takes a tuple type, got ${types}`);
  return decodeTuple(t.items, fromHex(data, 'return data'), 0, 'result');
}

/** The return values of `f` from `eth_call` data. */
export function decodeResult(f, data) { return decode(f.returns, data); }

/** A revert's data as `{ name, args, text }` (`text` for people), or null when unknown or empty. */
export function decodeRevert(data) {
  if (typeof data !== 'string' || data.length < 10) return null;
  const signature = ERRORS[data.slice(0, 10).toLowerCase()];
  if (!signature) return null;
  const { name, inputs } = parseSignature(signature);
  let args;
  try { args = decodeTuple(inputs.items, fromHex(`0x${data.slice(10)}`, 'revert data'), 0, name); } catch { return { name, args: [], text: `${name} (malformed arguments)` }; }
  const shown = args.map((a) => (Array.isArray(a) ? `[${a.join(', ')}]` : String(a)));
  return { name, args, text: name === 'Error' ? String(args[0]) : `${name}(${shown.join(', ')})` };
}

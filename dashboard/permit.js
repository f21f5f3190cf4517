// EIP-2612 permits for ERC-20 purchases: instead of an `approve` transaction before the
// purchase, the owner signs a permit (typed data, in their wallet) and the market applies it
// in `purchaseWithPermit`, so paying in a token takes one signature and one transaction.
//
// The page asks the wallet to sign only typed data whose domain it has checked against the
// token itself: the domain comes from the token's EIP-5267 `eip712Domain()` (or, without it,
// its `name()` and version "1"), and the separator the page computes from it must equal the
// token's `DOMAIN_SEPARATOR()`. A token without permits, or whose domain the page cannot
// reproduce, is no error: the purchase falls back to `approve` (`NoPermit` says why).
// `indexer/tests/dashboard_abi.rs` checks these hashes against alloy's EIP-712.
import { FUNCTIONS as F, encode, toBigInt } from './abi.js';
import { keccakHex, keccakText } from './keccak.js';

const lower = (a) => String(a ?? '').toLowerCase();
const DOMAIN_TYPE = 'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)';
const PERMIT_TYPE = 'Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)';
/** The secp256k1 order's half: a permit signature with a larger s is malleable and refused. */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** The token offers no permit the page can sign safely; the message says why. */
export class NoPermit extends Error {
  constructor(message) { super(message); this.name = 'NoPermit'; }
}

/** The EIP-712 domain separator of `{ name, version, chainId, verifyingContract }`. */
export function domainSeparator(d) {
  return keccakHex(encode('(bytes32,bytes32,bytes32,uint256,address)',
    [keccakText(DOMAIN_TYPE), keccakText(d.name), keccakText(d.version), toBigInt(d.chainId), d.verifyingContract]));
}

/** The digest a permit's signer signs: `keccak256(0x1901 ‖ separator ‖ hashStruct(permit))`. */
export function permitDigest(separator, p) {
  const struct = keccakHex(encode('(bytes32,address,address,uint256,uint256,uint256)',
    [keccakText(PERMIT_TYPE), p.owner, p.spender, toBigInt(p.value), toBigInt(p.nonce), toBigInt(p.deadline)]));
  return keccakHex(`0x1901${separator.slice(2)}${struct.slice(2)}`);
}

/** The typed data (`eth_signTypedData_v4`) of a permit under `domain`; integers as decimal strings. */
export function permitTypedData(domain, p) {
  return {
    types: {
      EIP712Domain: [{ name: 'name', type: 'string' }, { name: 'version', type: 'string' }, { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }],
      Permit: [{ name: 'owner', type: 'address' }, { name: 'spender', type: 'address' }, { name: 'value', type: 'uint256' }, { name: 'nonce', type: 'uint256' }, { name: 'deadline', type: 'uint256' }],
    },
    primaryType: 'Permit',
    domain: { name: domain.name, version: domain.version, chainId: String(toBigInt(domain.chainId)), verifyingContract: lower(domain.verifyingContract) },
    message: { owner: lower(p.owner), spender: lower(p.spender), value: String(p.value), nonce: String(p.nonce), deadline: String(p.deadline) },
  };
}

/**
 * A 65-byte signature as the market's `Permit` fields `{ v, r, s }` (v 27 or 28); anything
 * else, or a high-s (malleable) signature, is refused by name.
 */
export function splitSignature(signature) {
  if (typeof signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(signature)) throw new Error('the wallet\'s permit signature is not 65 bytes of 0x hex');
  const r = `0x${signature.slice(2, 66)}`; const s = `0x${signature.slice(66, 130)}`;
  let v = parseInt(signature.slice(130), 16);
  if (v === 0 || v === 1) v += 27;
  if (v !== 27 && v !== 28) throw new Error(`the wallet's permit signature has v = ${v}`);
  if (BigInt(s) > HALF_N) throw new Error('the wallet\'s permit signature has s in the upper half of the curve order (malleable)');
  return { v, r, s };
}

/**
 * The token's EIP-712 domain, checked against its `DOMAIN_SEPARATOR()` on the wallet's chain.
 * Throws `NoPermit` when the token has no permit or the page cannot reproduce its domain.
 */
export async function tokenDomain(wallet, token, chainId) {
  let separator;
  try { [separator] = await wallet.call(token, F.DOMAIN_SEPARATOR); } catch { throw new NoPermit(`token ${token} has no DOMAIN_SEPARATOR(), so no EIP-2612 permit`); }
  try { await wallet.call(token, F.nonces, [wallet.account]); } catch { throw new NoPermit(`token ${token} has no nonces(address), so no EIP-2612 permit`); }
  const candidates = [];
  try {
    const [fields, name, version, domainChain, verifyingContract, , extensions] = await wallet.call(token, F.eip712Domain);
    // EIP-5267: 0x0f = name, version, chainId and verifyingContract, no salt, no extensions.
    if (fields === '0x0f' && extensions.length === 0) candidates.push({ name, version, chainId: domainChain, verifyingContract });
  } catch { /* no EIP-5267: try name() and version "1" */ }
  if (!candidates.length) {
    try {
      const [name] = await wallet.call(token, F.name);
      candidates.push({ name, version: '1', chainId, verifyingContract: token });
    } catch { /* no name() either */ }
  }
  for (const d of candidates) {
    if (toBigInt(d.chainId) === toBigInt(chainId) && lower(d.verifyingContract) === lower(token) && lower(domainSeparator(d)) === lower(separator)) return d;
  }
  throw new NoPermit(`token ${token}'s EIP-712 domain could not be reproduced (its DOMAIN_SEPARATOR is ${separator})`);
}

/**
 * Has the wallet sign a permit letting `spender` take `value` of `token` until `deadline`
 * (unix seconds). The signature must recover to the connected account over the digest the
 * page computed (anvil and some wallets sign typed data for any domain: checked, not
 * trusted). Returns the market's `Permit` tuple `[value, deadline, v, r, s]`.
 */
export async function signPermit(wallet, token, spender, value, deadline) {
  await wallet.checkChain();
  // A contract account (a Safe, say) signs by ERC-1271, which EIP-2612 tokens do not check; an
  // EIP-7702 account (code 0xef0100 ‖ delegate) still signs with its key.
  const code = lower(await wallet.request('eth_getCode', [wallet.account, 'latest']));
  if (code && code !== '0x' && !code.startsWith('0xef0100')) throw new NoPermit(`account ${wallet.account} is a contract: tokens check permits by ecrecover, not ERC-1271`);
  const domain = await tokenDomain(wallet, token, wallet.chainId);
  const [nonce] = await wallet.call(token, F.nonces, [wallet.account]);
  const permit = { owner: wallet.account, spender, value, nonce, deadline };
  // The digest first: its encoding refuses a field out of range (a deadline past uint256 from
  // an odd block) before the wallet is asked to sign anything.
  const digest = permitDigest(domainSeparator(domain), permit);
  const typed = permitTypedData(domain, permit);
  let signature;
  try {
    signature = await wallet.request('eth_signTypedData_v4', [wallet.account, JSON.stringify(typed)]);
  } catch (e) {
    // EIP-1193: 4200 unsupported method; JSON-RPC -32601 method not found. A refusal by the
    // person (4001) stays a failure: they did not want to pay this way now.
    if (e?.code === 4200 || e?.code === -32601) throw new NoPermit('the wallet cannot sign typed data (eth_signTypedData_v4)');
    throw e;
  }
  const { v, r, s } = splitSignature(signature);
  const who = await wallet.recover(digest, signature);
  if (lower(who) !== lower(wallet.account)) throw new Error(`the wallet's permit signature recovers to ${who ?? 'nothing'}, not ${wallet.account}`);
  const signed = [toBigInt(value), toBigInt(deadline), v, r, s];
  // The token itself must take it: one with EIP-2612's getters but another `permit` (DAI's)
  // refuses it, and then the purchase approves instead of failing on a useless signature.
  try {
    await wallet.call(token, F.permit, [wallet.account, spender, ...signed]);
  } catch (e) {
    throw new NoPermit(`token ${token} refused the signed permit (${e?.message ?? e}), so it has no EIP-2612 permit the page can use`);
  }
  return signed;
}

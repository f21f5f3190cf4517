// What a threshold of the manufacturer's signers approves, done from the page: publish a
// release, revoke one, raise a model's version floor, rotate the signer set. Each is EIP-712
// typed data every signer signs in their own wallet; the signatures travel in a link; anyone
// submits the transaction, simulated first.
//
// Where encryption runs: in the CLI (`otaledger release create`), on the manufacturer's
// machine, never in the page. The bundle is CP-ABE-encrypted firmware whose plaintext and
// master key must not enter a browser tab (extensions, page script, a compromised dashboard
// host could read them), and a WebAssembly build would ship a second copy of the sealing
// code to keep in step with the device's. What the page handles is the result: the
// `manifest.json` the CLI writes (docs/bundle-format.md), which holds no secret.
//
// The flow: load manifest.json; the page checks it names this chain and registry, that the
// registry hashes it to the release id it names, and which manufacturer's model it is; each
// signer of that manufacturer's current set (the indexer's set, counted only when it hashes
// to the registry's signersHash) signs it as EIP-712 typed data in their own wallet
// (eth_signTypedData_v4: the wallet shows every field and hashes it itself); the signatures
// travel in a link (`#publish=…`, in the URL fragment, which is never sent to a server) or
// as pasted text; anyone then publishes: `publishRelease(manifest, approval)` is simulated
// first, so a signature from outside the set or too few signatures are shown by the
// contract's own error and nothing is sent.
import { FUNCTIONS as F, encode, toBigInt } from './abi.js';
import { exactKeys, lowerHex, readJson, requireCanonical, safeUint, visibleText } from './checks.js';
import { keccakHex, keccakText } from './keccak.js';
import { domainSeparator as eip712Separator } from './permit.js';
import { parsePolicy, policyAttributes, policyId } from './policy.js';
import { WalletError, formatUnits, reason } from './wallet.js';

const $ = (id) => document.getElementById(id);
const lower = (a) => String(a ?? '').toLowerCase();

/** The manifest's fields in the contract's order with their Solidity types. */
export const MANIFEST_FIELDS = [
  ['modelId', 'uint32'], ['version', 'uint64'], ['bundleSha256', 'bytes32'], ['bundleSize', 'uint64'],
  ['bundleCid', 'bytes'], ['imageSha256', 'bytes32'], ['price', 'uint128'], ['paymentToken', 'address'],
  ['policyId', 'bytes32'], ['expiry', 'uint64'], ['metadataHash', 'bytes32'],
];
/** Largest manifest.json or shared link the page reads. */
export const MAX_SHARED = 64 * 1024;
/** An expiry for people: a date while one exists, else the unix time. */
export function expiryText(expiry) {
  if (!expiry) return 'none';
  const ms = Number(expiry) * 1000;
  return ms <= 8.64e15 ? new Date(ms).toISOString() : `unix time ${expiry}`;
}
const SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/**
 * Parses `manifest.json` (`otaledger-manifest/1`) strictly: exactly its keys, each field in its
 * canonical form (lowercase 0x hex, integers as JSON numbers a browser reads exactly, the price
 * as a decimal string below 2^128). Returns `{ chainId, registry, releaseId, policy, manifest,
 * tuple }` or throws an Error naming the field.
 */
export function parseManifestFile(text) {
  const v = readJson(text, 'manifest.json', MAX_SHARED);
  exactKeys(v, ['format', 'chainId', 'registry', 'policy', 'releaseId', 'digest', 'manifest'], 'manifest.json');
  const ordered = { format: v.format, chainId: v.chainId, registry: v.registry, policy: v.policy, releaseId: v.releaseId, digest: v.digest, manifest: {} };
  for (const [k] of MANIFEST_FIELDS) ordered.manifest[k] = v.manifest?.[k];
  requireCanonical(text, ordered, 'manifest.json', 'otaledger release create');
  if (v.format !== 'otaledger-manifest/1') throw new Error(`format: ${JSON.stringify(v.format)} is not "otaledger-manifest/1"`);
  safeUint(v.chainId, 64, 'chainId');
  lowerHex(v.registry, 20, 'registry'); lowerHex(v.releaseId, 32, 'releaseId'); lowerHex(v.digest, 32, 'digest');
  checkPolicyText(v.policy);
  const m = v.manifest;
  exactKeys(m, MANIFEST_FIELDS.map(([k]) => k), 'manifest');
  const tuple = MANIFEST_FIELDS.map(([k, type]) => {
    const what = `manifest.${k}`;
    if (type === 'uint128') {
      if (typeof m[k] !== 'string' || !/^(0|[1-9][0-9]*)$/.test(m[k])) throw new Error(`${what}: expected a decimal string`);
      const p = BigInt(m[k]); if (p >> 128n) throw new Error(`${what}: above uint128`);
      return p;
    }
    if (type.startsWith('uint')) return BigInt(safeUint(m[k], Number(type.slice(4)), what));
    if (type === 'bytes32') return lowerHex(m[k], 32, what);
    if (type === 'address') return lowerHex(m[k], 20, what);
    return lowerHex(m[k], null, what);
  });
  if ((m.bundleCid.length - 2) / 2 > 256) throw new Error('manifest.bundleCid: longer than a CID');
  // What a signer is shown must be what they sign: the policy text's id is the signed policyId.
  const id = policyId(v.policy);
  if (id !== m.policyId) throw new Error(`policy: the text hashes to policy id ${id}, the manifest signs ${m.policyId}`);
  return { chainId: v.chainId, registry: v.registry, releaseId: v.releaseId, digest: v.digest, policy: v.policy, manifest: m, tuple };
}

/** Longest policy text the page reads (the cpabe crate allows 64 KiB; real policies are short). */
export const MAX_POLICY_TEXT = 4096;

/**
 * A policy text the page shows: printable ASCII (so a file cannot put controls, bidirectional
 * overrides or invisible characters where the page shows the policy) that parses as the cpabe
 * crate parses policies (`policy.js`); `parseManifestFile` then checks it hashes to the signed
 * `policyId`.
 */
export function checkPolicyText(text) {
  if (typeof text !== 'string' || !text || text.length > MAX_POLICY_TEXT) throw new Error(`policy: expected a policy text of at most ${MAX_POLICY_TEXT} characters`);
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error('policy: only printable ASCII (no control, bidirectional or invisible characters)');
  parsePolicy(text);
  return text;
}

/** The registry's EIP-712 domain separator on `chainId` at `registry`. */
export function domainSeparator(chainId, registry) {
  return eip712Separator({ name: 'OTA Ledger UpdateRegistry', version: '1', chainId: BigInt(chainId), verifyingContract: registry });
}

/** The EIP-712 struct hash of `kind`'s `message` (for publish: the release id). */
export function structHash(kind, message) {
  const a = ACTIONS[kind];
  if (!a) throw new Error(`unknown action ${kind}`);
  const typeHash = keccakText(`${a.primaryType}(${a.fields.map(([n, t]) => `${t} ${n}`).join(',')})`);
  const types = ['bytes32']; const values = [typeHash];
  for (const [k, t] of a.fields) {
    const v = message[k];
    if (t === 'bytes') { types.push('bytes32'); values.push(keccakHex(v)); } else if (t === 'string') { types.push('bytes32'); values.push(keccakText(v)); } else if (t === 'address[]') {
      types.push('bytes32'); values.push(keccakHex(`0x${v.map((x) => x.slice(2).toLowerCase().padStart(64, '0')).join('')}`));
    } else { types.push(t); values.push(t.startsWith('uint') ? BigInt(v) : v); }
  }
  return keccakHex(encode(`(${types.join(',')})`, values));
}

/** The EIP-712 digest a signer of `kind`'s `message` signs. */
export function actionDigest(kind, chainId, registry, message) {
  return keccakHex(`0x1901${domainSeparator(chainId, registry).slice(2)}${structHash(kind, message).slice(2)}`);
}

/** The EIP-712 typed data a signer signs for `file` (a parsed manifest.json). */
export function typedData(file) {
  return actionTypedData('publish', file.chainId, file.registry, file.manifest);
}

/**
 * A 65-byte signature (`r ‖ s ‖ v`, v in {0, 1, 27, 28}) as the 64-byte EIP-2098 compact form
 * the registry takes; a high-s signature is refused (the registry refuses it too).
 */
export function compact(signature) {
  if (typeof signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(signature)) throw new Error('a signature is 65 bytes of 0x hex');
  const r = signature.slice(2, 66); const s = BigInt(`0x${signature.slice(66, 130)}`); const v = parseInt(signature.slice(130), 16);
  const parity = v === 27 || v === 28 ? v - 27 : v;
  if (parity !== 0 && parity !== 1) throw new Error(`signature v is ${v}`);
  if (s > SECP256K1_HALF_N) throw new Error('signature s is in the upper half of the curve order (malleable)');
  return `0x${r}${(s | (BigInt(parity) << 255n)).toString(16).padStart(64, '0')}`;
}

/** The typed-data fields of each action (the registry's type strings, in order). */
export const ACTIONS = {
  publish: { primaryType: 'Manifest', fields: MANIFEST_FIELDS },
  revoke: { primaryType: 'RevokeRelease', fields: [['releaseId', 'bytes32'], ['reason', 'string']] },
  floor: { primaryType: 'RaiseFloor', fields: [['modelId', 'uint32'], ['minVersion', 'uint64']] },
  rotate: { primaryType: 'RotateSigners', fields: [['manufacturerId', 'uint32'], ['nonce', 'uint64'], ['signers', 'address[]'], ['threshold', 'uint8']] },
  operator: { primaryType: 'UpdateManufacturer', fields: [['manufacturerId', 'uint32'], ['nonce', 'uint64'], ['operator', 'address'], ['payee', 'address']] },
};
/** Most signers a set may hold (the registry's MAX_SIGNERS). */
export const MAX_SIGNERS = 32;
/** Longest revocation reason the page writes. */
export const MAX_REASON = 1024;

/** The EIP-712 typed data of `kind` with `message` under the registry's domain. */
export function actionTypedData(kind, chainId, registry, message) {
  const a = ACTIONS[kind];
  if (!a) throw new Error(`unknown action ${kind}`);
  const m = {};
  for (const [k, type] of a.fields) m[k] = type.startsWith('uint') ? String(message[k]) : message[k];
  return {
    types: {
      EIP712Domain: [{ name: 'name', type: 'string' }, { name: 'version', type: 'string' }, { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' }],
      [a.primaryType]: a.fields.map(([name, type]) => ({ name, type })),
    },
    primaryType: a.primaryType,
    domain: { name: 'OTA Ledger UpdateRegistry', version: '1', chainId, verifyingContract: registry },
    message: m,
  };
}

/**
 * A revocation reason the page accepts: 1 to MAX_REASON characters, none of them a control,
 * line separator, or format character (bidirectional controls, zero-width characters): a
 * signer must read what they sign (as the CLI's check).
 */
export function checkReason(reason) {
  return visibleText(reason, 'reason', MAX_REASON, 'say why (it is public, on chain)');
}

/** A new signer set from text (addresses separated by spaces, commas or lines): ascending, unique, non-zero. */
export function parseSignerSet(text, threshold) {
  const list = String(text).split(/[\s,]+/).filter(Boolean);
  if (!list.length || list.length > MAX_SIGNERS) throw new Error(`signers: 1 to ${MAX_SIGNERS} addresses`);
  for (const a of list) if (!/^0x[0-9a-fA-F]{40}$/.test(a)) throw new Error(`signers: ${a.slice(0, 50)} is not an address`);
  const sorted = [...new Set(list.map(lower))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  if (sorted.length !== list.length) throw new Error('signers: an address is listed twice');
  if (BigInt(sorted[0]) === 0n) throw new Error('signers: the zero address cannot sign');
  const t = Number(threshold);
  if (!Number.isInteger(t) || t < 1 || t > sorted.length) throw new Error(`threshold: 1 to ${sorted.length}`);
  return { signers: sorted, threshold: t };
}

/** What a shared link or pasted text carries: `{ kind, payload, signatures: [{signer, signature}] }`. */
export function parseShared(text) {
  if (typeof text !== 'string' || text.length > 2 * MAX_SHARED) throw new Error('shared approval: too long');
  let raw = text.trim();
  const at = raw.indexOf('#publish=');
  if (at >= 0) raw = raw.slice(at + '#publish='.length);
  let json = raw;
  if (!raw.startsWith('{')) {
    try { json = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(atob(raw.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))); } catch { throw new Error('shared approval: neither a link, base64url nor JSON'); }
  }
  let v; try { v = JSON.parse(json); } catch (e) { throw new Error(`shared approval: ${e.message}`); }
  if (!v || typeof v !== 'object' || !Object.hasOwn(ACTIONS, v.kind) || !Array.isArray(v.signatures) || v.signatures.length > MAX_SIGNERS) {
    throw new Error('shared approval: expected {kind, payload, signatures}');
  }
  if (v.kind === 'publish' ? typeof v.payload !== 'string' : (!v.payload || typeof v.payload !== 'object' || Array.isArray(v.payload))) throw new Error('shared approval: payload');
  for (const s of v.signatures) {
    if (!s || typeof s.signer !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(s.signer)) throw new Error('shared approval: a signer is not an address');
    compact(s.signature);
  }
  return { kind: v.kind, payload: v.payload, signatures: v.signatures.map((s) => ({ signer: lower(s.signer), signature: s.signature })) };
}

/** `state` as a link to this page (base64url JSON in the fragment). */
export function shareLink(state) {
  const bytes = new TextEncoder().encode(JSON.stringify(state));
  let bin = ''; for (const b of bytes) bin += String.fromCharCode(b);
  return `${location.origin}${location.pathname}#publish=${btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`;
}

export function initPublish({ el, short, getJson }) {
  let wallet = null; let deployment = null;
  // A shared link opens the panel with its action and signatures (checked once a wallet is connected).
  const pending = location.hash.startsWith('#publish=') ? location.hash : null;
  let opened = false;
  let action = null; // { kind, payload, message, call(approval), label, manufacturerId }
  let target = null; // { manufacturerId, name, signers, threshold }
  const signatures = new Map(); // signer (lowercase) → 65-byte signature
  let run = 0;
  let maker = false; // the account is an operator or signer (read from chain by the dApp)

  const status = (msg, alert = false) => { const p = $('publish-status'); p.textContent = msg; p.setAttribute('role', alert ? 'alert' : 'status'); };
  const section = $('publish');
  const kindSelect = $('approve-kind');

  function showInputs() {
    for (const k of Object.keys(ACTIONS)) $(`approve-${k}`).hidden = k !== kindSelect.value;
  }
  kindSelect.addEventListener('change', showInputs);
  showInputs();

  function render() {
    const connected = Boolean(wallet?.account) && !wallet.wrongChain;
    section.hidden = !connected || !(maker || pending || action);
    $('publish-sign').disabled = !(action && target && target.signers.includes(lower(wallet?.account)));
    $('publish-sign').textContent = wallet?.account ? `Sign as ${short(lower(wallet.account))}` : 'Sign';
    const have = target ? target.signers.filter((s) => signatures.has(s)).length : signatures.size;
    $('publish-send').disabled = !(action && target && signatures.size > 0);
    $('publish-send').textContent = action ? action.label : 'Submit';
    const list = $('publish-signatures');
    list.replaceChildren(...[...signatures.keys()].sort().map((s) => el('li', { 'data-signer': s },
      `${short(s)}${target && !target.signers.includes(s) ? ' (not in the current signer set)' : ''}`)));
    $('publish-count').textContent = target ? `${have} of ${target.threshold} signatures from the current set of ${target.signers.length}` : '';
    $('publish-link').value = action ? shareLink({ kind: action.kind, payload: action.payload, signatures: [...signatures].map(([signer, signature]) => ({ signer, signature })) }) : '';
  }

  /** The manufacturer's current signer set: the indexer's newest, counted only if it hashes to the registry's. */
  async function signerSet(manufacturerId) {
    const record = (await wallet.call(deployment.registry, F.manufacturer, [manufacturerId]))[0];
    if (/^0x0{64}$/.test(record[0])) throw new Error(`manufacturer #${manufacturerId} is not registered on chain`);
    const sets = (await getJson(`/v1/manufacturers/${manufacturerId}/signers`)).signer_sets;
    const last = sets[sets.length - 1];
    if (!last) throw new Error(`the indexer has no signer set of manufacturer #${manufacturerId} yet`);
    const [hash] = await wallet.call(deployment.registry, F.signersHash, [last.signers, last.threshold]);
    if (lower(hash) !== lower(record[0])) throw new Error(`the indexer's signer set of manufacturer #${manufacturerId} is not the registry's (its hash differs): wait for it to sync`);
    const known = (await getJson('/v1/manufacturers?limit=500')).items?.find((x) => Number(x.manufacturer_id) === manufacturerId)?.name;
    // Names are not unique (anyone may register "Acme"): the id always goes with it.
    const name = known ? `${known} (#${manufacturerId})` : `#${manufacturerId}`;
    return { manufacturerId, name, signers: last.signers.map(lower), threshold: Number(last.threshold), nonce: BigInt(record[2]) };
  }

  /** The model's manufacturer and record `[manufacturerId, latestVersion, minVersion]`. */
  async function model(modelId) {
    const [m] = await wallet.call(deployment.registry, F.model, [modelId]);
    if (!Number(m[0])) throw new Error(`model ${modelId} is not defined on chain`);
    return m;
  }

  const wholeNumber = (v, bits, what) => {
    const t = String(v).trim();
    if (!/^(0|[1-9][0-9]*)$/.test(t)) throw new Error(`${what}: a whole number`);
    const n = BigInt(t); if (n >> BigInt(bits)) throw new Error(`${what}: above uint${bits}`);
    return n;
  };

  /** Checks `kind` with `payload` on chain: the action, its signer set, and what to show. */
  async function prepare(kind, payload) {
    const summary = [];
    if (kind === 'publish') {
      const f = parseManifestFile(payload);
      if (BigInt(f.chainId) !== BigInt(deployment.chain_id)) throw new Error(`the manifest is for chain ${f.chainId}, this fleet is on chain ${deployment.chain_id}`);
      if (lower(f.registry) !== lower(deployment.registry)) throw new Error(`the manifest is for registry ${f.registry}, not this fleet's ${deployment.registry}`);
      const [id] = await wallet.call(deployment.registry, F.releaseId, [f.tuple]);
      if (lower(id) !== lower(f.releaseId)) throw new Error(`the registry hashes this manifest to ${id}, the file says ${f.releaseId}`);
      const digest = actionDigest('publish', f.chainId, f.registry, f.manifest);
      if (digest !== lower(f.digest)) throw new Error(`the manifest's digest is ${digest}, the file says ${f.digest}`);
      const m = await model(f.tuple[0]);
      const set = await signerSet(Number(m[0]));
      const token = /^0x0{40}$/.test(f.manifest.paymentToken) ? 'ETH' : `tokens of ${f.manifest.paymentToken}`;
      const version = BigInt(f.manifest.version);
      summary.push(
        `${set.name}, model ${f.manifest.modelId}, version ${version}${version <= BigInt(m[1]) ? ` (not above the latest published, ${BigInt(m[1])}: the registry will refuse it)` : ''}`,
        `price ${token === 'ETH' ? `${formatUnits(toBigInt(f.manifest.price), 18)} ETH` : `${f.manifest.price} ${token}`} · expiry ${expiryText(f.manifest.expiry)} · ${f.manifest.bundleSize} bytes`,
        `policy ${f.policy}: attributes ${policyAttributes(parsePolicy(f.policy)).map((a) => JSON.stringify(a)).join(', ')} `
          + `(its hash, checked here, is the signed policyId ${f.manifest.policyId}; `
          + 'that the bundle is encrypted under it the page cannot check: `otaledger release sign --bundle` does)',
        `release id ${f.releaseId} (the registry's hash of these fields)`);
      return { set, summary, message: f.manifest, digest, label: 'Publish', done: `release ${f.releaseId} is published`,
        call: (approval) => [F.publishRelease, [f.tuple, approval]], what: `publish v${version}` };
    }
    if (kind === 'revoke') {
      const releaseId = String(payload.releaseId ?? '').trim().toLowerCase();
      if (!/^0x[0-9a-f]{64}$/.test(releaseId)) throw new Error('release id: 0x and 64 hex digits');
      const reason = checkReason(payload.reason);
      const [r] = await wallet.call(deployment.registry, F.release, [releaseId]);
      if (!BigInt(r[0])) throw new Error(`release ${releaseId} is not published on this chain`);
      if (BigInt(r[3])) throw new Error(`release ${releaseId} is already revoked`);
      const m = await model(r[1]);
      const set = await signerSet(Number(m[0]));
      summary.push(`${set.name}: revoke model ${r[1]} version ${BigInt(r[0])} (release ${releaseId})`, `reason (public, on chain): ${reason}`,
        'Devices that have not installed it refuse it; buyers can claim refunds inside the refund window.');
      const message = { releaseId, reason };
      return { set, summary, message, digest: actionDigest('revoke', deployment.chain_id, deployment.registry, message), label: 'Revoke', done: `release ${releaseId} is revoked`,
        call: (approval) => [F.revokeRelease, [releaseId, reason, approval]], what: `revoke v${BigInt(r[0])}` };
    }
    if (kind === 'floor') {
      const modelId = wholeNumber(payload.modelId, 32, 'model'); const minVersion = wholeNumber(payload.minVersion, 64, 'minimum version');
      const m = await model(modelId);
      if (minVersion <= BigInt(m[2])) throw new Error(`the floor of model ${modelId} is already ${BigInt(m[2])}: a new floor must be above it`);
      // A floor never comes down: above every published version it stops the model's updates
      // until a release at or above it is published. Not offered here; the CLI can do it.
      if (minVersion > BigInt(m[1])) throw new Error(`${minVersion} is above the latest published version of model ${modelId} (${BigInt(m[1])}): devices would refuse every release, and a floor can never be lowered`);
      const set = await signerSet(Number(m[0]));
      summary.push(`${set.name}: model ${modelId} refuses versions below ${minVersion} (floor now ${BigInt(m[2])}, latest published ${BigInt(m[1])})`);
      const message = { modelId: String(modelId), minVersion: String(minVersion) };
      return { set, summary, message, digest: actionDigest('floor', deployment.chain_id, deployment.registry, message), label: 'Raise the floor', done: `model ${modelId}'s floor is ${minVersion}`,
        call: (approval) => [F.raiseFloor, [modelId, minVersion, approval]], what: `floor ${minVersion}` };
    }
    const manufacturerId = Number(wholeNumber(payload.manufacturerId, 32, 'manufacturer'));
    if (kind === 'operator') {
      const address = (v, what) => {
        const t = String(v ?? '').trim();
        if (!/^0x[0-9a-fA-F]{40}$/.test(t) || BigInt(t) === 0n) throw new Error(`${what}: a non-zero address`);
        return t.toLowerCase();
      };
      const operator = address(payload.operator, 'operator');
      const payee = payload.payee && String(payload.payee).trim() ? address(payload.payee, 'payee') : operator;
      const set = await signerSet(manufacturerId);
      const [record] = await wallet.call(deployment.registry, F.manufacturer, [manufacturerId]);
      summary.push(`${set.name}: the operator becomes ${operator} (now ${lower(record[1])}), paid as ${payee} (now ${lower(record[3])})`,
        `The operator defines models, provisions devices and can revoke in an emergency; this approval is bound to the manufacturer's nonce ${set.nonce}, so it is used once.`);
      const message = { manufacturerId: String(manufacturerId), nonce: String(set.nonce), operator, payee };
      return { set, summary, message, digest: actionDigest('operator', deployment.chain_id, deployment.registry, message),
        label: 'Change the operator', done: `manufacturer ${set.name} has its new operator`, payload: { manufacturerId: String(manufacturerId), operator, payee },
        call: (approval) => [F.updateManufacturer, [manufacturerId, operator, payee, approval]], what: 'change operator' };
    }
    const next = parseSignerSet(Array.isArray(payload.signers) ? payload.signers.join(' ') : payload.signers, payload.threshold);
    const set = await signerSet(manufacturerId);
    summary.push(`${set.name}: the signer set becomes ${next.threshold} of ${next.signers.length}: ${next.signers.join(', ')}`,
      `(now ${set.threshold} of ${set.signers.length}; this approval is bound to the manufacturer's nonce ${set.nonce}, so it is used once)`);
    const message = { manufacturerId: String(manufacturerId), nonce: String(set.nonce), signers: next.signers, threshold: String(next.threshold) };
    return { set, summary, message, digest: actionDigest('rotate', deployment.chain_id, deployment.registry, message),
      label: 'Rotate the signers', done: `manufacturer ${set.name} has its new signer set`, payload: { manufacturerId: String(manufacturerId), signers: next.signers, threshold: next.threshold },
      call: (approval) => [F.rotateSigners, [manufacturerId, next.signers, next.threshold, approval]], what: 'rotate signers' };
  }

  /** The signer of `signature` over `digest`, recovered by the chain's ecrecover precompile. */
  async function recoverSigner(digest, signature) {
    compact(signature); // the shape, and low s
    return wallet.recover(digest, signature);
  }

  /**
   * Adds signatures: only from members of the current set, only when the signature recovers to
   * the signer it claims over this action's digest, never replacing one already held. Returns
   * what was dropped and why.
   */
  async function accept(list) {
    const dropped = [];
    for (const { signer, signature } of list) {
      if (!target.signers.includes(signer)) { dropped.push(`${short(signer)}: not in the current signer set`); continue; }
      if (signatures.has(signer)) continue;
      let who = null;
      try { who = await recoverSigner(action.digest, signature); } catch { /* refused below */ }
      if (who !== signer) { dropped.push(`${short(signer)}: the signature is not theirs for this approval`); continue; }
      signatures.set(signer, signature);
    }
    return dropped;
  }

  /** Loads `kind` with `payload` (and signatures already gathered), checking it on chain. */
  async function load(kind, payload, shared = []) {
    const mine = ++run;
    action = null; target = null; signatures.clear();
    $('publish-summary').replaceChildren();
    try {
      deployment ??= await getJson('/v1/deployment');
      if (!wallet?.account) throw new Error('connect a wallet to check it on chain');
      const p = await prepare(kind, payload);
      if (mine !== run) return;
      action = { kind, payload: p.payload ?? payload, ...p };
      target = p.set;
      kindSelect.value = kind; showInputs();
      $('publish-summary').replaceChildren(...p.summary.map((t) => el('p', {}, t)));
      const dropped = await accept(shared);
      if (mine !== run) return;
      status(`checked on chain; ${target.threshold} of ${target.signers.length} signers of ${target.name} must sign`
        + `${dropped.length ? `; not counted: ${dropped.join('; ')}` : ''}`);
    } catch (e) {
      if (mine === run) status(`${kind === 'publish' ? 'manifest' : 'request'} refused: ${e instanceof WalletError ? e.message : reason(e)}`, true);
    }
    render();
  }

  $('publish-load').addEventListener('click', async () => {
    const kind = kindSelect.value;
    if (kind === 'publish') {
      const input = $('publish-file');
      const t = input.files?.[0] ? (input.files[0].size > MAX_SHARED ? '' : await input.files[0].text()) : $('publish-manifest').value;
      if (!t) { status(`choose a manifest.json (at most ${MAX_SHARED} bytes) or paste it`, true); return; }
      await load('publish', t);
    } else if (kind === 'revoke') await load('revoke', { releaseId: $('revoke-release').value, reason: $('revoke-reason').value });
    else if (kind === 'floor') await load('floor', { modelId: $('floor-model').value, minVersion: $('floor-version').value });
    else if (kind === 'operator') await load('operator', { manufacturerId: $('operator-manufacturer').value, operator: $('operator-address').value, payee: $('operator-payee').value });
    else await load('rotate', { manufacturerId: $('rotate-manufacturer').value, signers: $('rotate-signers').value, threshold: $('rotate-threshold').value });
  });

  $('publish-add').addEventListener('click', async () => {
    try {
      const shared = parseShared($('publish-paste').value);
      if (action && (shared.kind !== action.kind || JSON.stringify(shared.payload) !== JSON.stringify(action.payload))) throw new Error('those signatures approve something else than what is loaded');
      if (!action) { await load(shared.kind, shared.payload, shared.signatures); return; }
      const before = signatures.size;
      const dropped = await accept(shared.signatures);
      status(`${signatures.size - before} signature(s) added${dropped.length ? `; not counted: ${dropped.join('; ')}` : ''}`);
    } catch (e) { status(`not added: ${e.message}`, true); }
    render();
  });

  $('publish-sign').addEventListener('click', async () => {
    $('publish-sign').disabled = true;
    try {
      await wallet.checkChain();
      const account = lower(wallet.account);
      if (!target.signers.includes(account)) throw new WalletError(`${account} is not in manufacturer ${target.name}'s current signer set`);
      status('sign in your wallet…');
      const signing = action;
      const typed = actionTypedData(signing.kind, Number(deployment.chain_id), lower(deployment.registry), signing.message);
      const sig = await wallet.request('eth_signTypedData_v4', [account, JSON.stringify(typed)]);
      // Another action may have been loaded while the wallet was open: the signature is for
      // the one that was shown, so it is not filed under another.
      if (action !== signing) throw new WalletError('what is loaded changed while the wallet was open: that signature was not kept');
      const who = await recoverSigner(signing.digest, sig);
      if (who !== account) throw new WalletError(`the wallet's signature recovers to ${who ?? 'nothing'}, not ${account}`);
      signatures.set(account, sig);
      status(`signed as ${short(account)}; share the link with the other signers, or submit once ${target.threshold} have signed`);
    } catch (e) { status(`not signed: ${e instanceof WalletError ? e.message : reason(e)}`, true); }
    render();
  });

  $('publish-send').addEventListener('click', async () => {
    $('publish-send').disabled = true;
    const log = $('publish-log');
    const li = el('li', { 'data-state': 'pending' }, `${action.what}: simulating…`); log.prepend(li);
    const set = (state, t) => { li.dataset.state = state; li.textContent = `${action.what}: ${t}`; };
    try {
      // Signatures ordered by ascending signer, as the registry requires.
      const ordered = [...signatures].sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : 1));
      const approval = [target.signers, target.threshold, `0x${ordered.map(([, s]) => compact(s).slice(2)).join('')}`];
      const [f, args] = action.call(approval);
      const hash = await wallet.send(deployment.registry, f, args);
      set('pending', `pending ${hash}`);
      const receipt = await wallet.wait(hash);
      set('mined', `mined in block ${BigInt(receipt.blockNumber)} (${short(hash)}, gas ${BigInt(receipt.gasUsed)})`);
      status(action.done);
    } catch (e) {
      set('failed', `failed: ${e instanceof WalletError ? e.message : reason(e)}`);
    }
    render();
  });

  return {
    /** What the account is, from chain state: `{ maker }` (operator or signer of a manufacturer). */
    rolesChanged(r) { maker = Boolean(r?.maker); render(); },
    /** The dApp's wallet changed. */
    async walletChanged(w, d) {
      wallet = w; deployment = d ?? deployment;
      render();
      if (pending && !opened && wallet?.account && !wallet.wrongChain) {
        opened = true;
        try { const shared = parseShared(pending); await load(shared.kind, shared.payload, shared.signatures); } catch (e) { status(`shared link refused: ${e.message}`, true); }
      }
    },
  };
}

// Claiming a device from the page: the device signs its consent to one owner (EIP-712
// `Claim(owner, deviceIndex)` with its identity key, written as `claim.json` by
// `otaledger device claim-request`, as a device would show it when its owner pairs with it);
// the owner loads the file here and submits `claimDevice` from their wallet. The page checks
// the file names this chain and registry and the connected account as the owner, and that the
// device is still unclaimed; the registry checks the Merkle proof and the device's signature
// (the transaction is simulated first, so a bad one is named and nothing is sent).
import { FUNCTIONS as F } from './abi.js';
import { exactKeys, lowerHex, readJson, requireCanonical, safeUint } from './checks.js';
import { WalletError, reason } from './wallet.js';

const $ = (id) => document.getElementById(id);
const lower = (a) => String(a ?? '').toLowerCase();
/** Largest claim.json read. */
export const MAX_CLAIM_FILE = 16 * 1024;
/** Longest Merkle proof (a batch holds at most 2^32 devices). */
export const MAX_PROOF = 32;

/**
 * Parses `claim.json` (`otaledger-claim/1`) strictly: the canonical form the CLI writes (its key
 * order too), every field typed and bounded. Returns `{ chainId, registry, batchId, deviceIndex, device, modelId,
 * owner, proof, signature }` (integers as BigInt) or throws an Error naming the field.
 */
export function parseClaimFile(text) {
  const v = readJson(text, 'claim.json', MAX_CLAIM_FILE);
  const keys = ['format', 'chainId', 'registry', 'batchId', 'deviceIndex', 'device', 'modelId', 'owner', 'proof', 'signature'];
  exactKeys(v, keys, 'claim.json');
  requireCanonical(text, Object.fromEntries(keys.map((k) => [k, v[k]])), 'claim.json', 'otaledger device claim-request');
  if (v.format !== 'otaledger-claim/1') throw new Error(`format: ${JSON.stringify(v.format)} is not "otaledger-claim/1"`);
  const int = (x, bits, what) => BigInt(safeUint(x, bits, what));
  if (!Array.isArray(v.proof) || v.proof.length > MAX_PROOF) throw new Error(`proof: at most ${MAX_PROOF} hashes`);
  const owner = lowerHex(v.owner, 20, 'owner');
  if (/^0x0{40}$/.test(owner)) throw new Error('owner: the zero address');
  return {
    chainId: int(v.chainId, 64, 'chainId'),
    registry: lowerHex(v.registry, 20, 'registry'),
    batchId: int(v.batchId, 64, 'batchId'),
    deviceIndex: int(v.deviceIndex, 64, 'deviceIndex'),
    device: lowerHex(v.device, 20, 'device'),
    modelId: int(v.modelId, 32, 'modelId'),
    owner,
    proof: v.proof.map((p, i) => lowerHex(p, 32, `proof[${i}]`)),
    signature: lowerHex(v.signature, 64, 'signature'),
  };
}

export function initClaim({ el, short, getJson, onClaimed }) {
  let wallet = null; let deployment = null;
  let claim = null;
  const status = (msg, alert = false) => { const p = $('claim-status'); p.textContent = msg; p.setAttribute('role', alert ? 'alert' : 'status'); };

  function render() {
    const connected = Boolean(wallet?.account) && !wallet.wrongChain;
    $('claim').hidden = !connected;
    $('claim-send').disabled = !claim;
  }

  $('claim-load').addEventListener('click', async () => {
    claim = null; render();
    try {
      const input = $('claim-file');
      const text = input.files?.[0] ? (input.files[0].size > MAX_CLAIM_FILE ? '' : await input.files[0].text()) : $('claim-text').value;
      if (!text) throw new Error(`choose a claim.json (at most ${MAX_CLAIM_FILE} bytes) or paste it`);
      const c = parseClaimFile(text);
      deployment ??= await getJson('/v1/deployment');
      if (c.chainId !== BigInt(deployment.chain_id)) throw new Error(`the claim is for chain ${c.chainId}, this fleet is on chain ${deployment.chain_id}`);
      if (lower(c.registry) !== lower(deployment.registry)) throw new Error(`the claim is for registry ${c.registry}, not this fleet's`);
      if (c.owner !== lower(wallet.account)) throw new Error(`the device consents to be claimed by ${c.owner}, not by ${lower(wallet.account)}: connect that wallet`);
      const [d] = await wallet.call(deployment.registry, F.device, [c.deviceIndex]);
      if (Number(d[2]) !== 0) throw new Error(`device ${c.deviceIndex} is already claimed (owner ${lower(d[0])})`);
      claim = c;
      status(`device ${c.deviceIndex} (model ${c.modelId}, batch ${c.batchId}, ${short(c.device)}) consents to be claimed by you`);
    } catch (e) { status(`claim refused: ${e instanceof WalletError ? e.message : reason(e)}`, true); }
    render();
  });

  $('claim-send').addEventListener('click', async () => {
    const c = claim; if (!c) return;
    $('claim-send').disabled = true;
    const li = el('li', { 'data-state': 'pending' }, `claim of device ${c.deviceIndex}: simulating…`); $('claim-log').prepend(li);
    const set = (state, t) => { li.dataset.state = state; li.textContent = `claim of device ${c.deviceIndex}: ${t}`; };
    try {
      const hash = await wallet.send(deployment.registry, F.claimDevice,
        [c.batchId, c.deviceIndex, c.device, c.modelId, c.owner, c.proof, c.signature]);
      set('pending', `pending ${hash}`);
      const receipt = await wallet.wait(hash);
      set('mined', `mined in block ${BigInt(receipt.blockNumber)} (${short(hash)}, gas ${BigInt(receipt.gasUsed)})`);
      claim = null;
      status(`device ${c.deviceIndex} is yours`);
      onClaimed?.(c.deviceIndex);
    } catch (e) { set('failed', `failed: ${e instanceof WalletError ? e.message : reason(e)}`); }
    render();
  });

  return {
    /** The dApp's wallet changed. */
    walletChanged(w, d) { wallet = w; deployment = d ?? deployment; claim = null; render(); },
  };
}

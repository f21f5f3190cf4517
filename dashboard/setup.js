// A manufacturer's setup from the page, each one transaction from the connected wallet:
// register a manufacturer (anyone may: the sender becomes its operator, paid as its payee;
// the signer set and threshold are checked as the registry checks them) and, as an operator,
// define a model. Both are simulated first (a revert is named and nothing is sent). The CP-ABE
// authority's parameters stay with the CLI (`otaledger authority init` prints the CID the
// registration may name).
import { FUNCTIONS as F } from './abi.js';
import { visibleText } from './checks.js';
import { parseSignerSet } from './publish.js';
import { WalletError, reason } from './wallet.js';

const $ = (id) => document.getElementById(id);

/** Longest manufacturer or model name the page writes (the registry stores none: events only). */
export const MAX_NAME = 64;

/**
 * A name the page writes on chain: 1 to MAX_NAME characters, no control, line separator or
 * format character (bidirectional, zero-width): names are shown to everyone who audits.
 */
export function checkName(name, what) {
  return visibleText(name, what, MAX_NAME, 'a name');
}

/** A CID of the authority's parameters as the CLI prints it (empty: none yet). */
export function checkParamsCid(cid) {
  const t = String(cid ?? '').trim();
  if (t && !/^[a-z2-7]{8,100}$|^Qm[1-9A-HJ-NP-Za-km-z]{44}$/.test(t)) throw new Error('parameters CID: a CIDv1 (base32) or v0 as `otaledger authority init` prints it');
  return t;
}

export function initSetup({ el, short, getJson, onChanged }) {
  let wallet = null; let deployment = null; let operatorOf = [];
  const status = (id, msg, alert = false) => { const p = $(id); p.textContent = msg; p.setAttribute('role', alert ? 'alert' : 'status'); };

  function render() {
    const connected = Boolean(wallet?.account) && !wallet.wrongChain;
    $('setup').hidden = !connected;
    $('model-box').hidden = !operatorOf.length;
    const sel = $('model-manufacturer'); const keep = sel.value;
    sel.replaceChildren(...operatorOf.map((m) => el('option', { value: String(m.id) }, `${m.name} (#${m.id})`)));
    if (operatorOf.some((m) => String(m.id) === keep)) sel.value = keep;
  }

  /** Sends `f(args)` to the registry, followed in `log`; resolves with the receipt or null. */
  async function transact(what, f, args, log) {
    const li = el('li', { 'data-state': 'pending' }, `${what}: simulating…`); $(log).prepend(li);
    const set = (state, t) => { li.dataset.state = state; li.textContent = `${what}: ${t}`; };
    try {
      deployment ??= await getJson('/v1/deployment');
      const hash = await wallet.send(deployment.registry, f, args);
      set('pending', `pending ${hash}`);
      const receipt = await wallet.wait(hash);
      set('mined', `mined in block ${BigInt(receipt.blockNumber)} (${short(hash)}, gas ${BigInt(receipt.gasUsed)})`);
      return receipt;
    } catch (e) { set('failed', `failed: ${e instanceof WalletError ? e.message : reason(e)}`); return null; }
  }

  $('register-send').addEventListener('click', async () => {
    let args;
    try {
      const name = checkName($('register-name').value, 'name');
      const set = parseSignerSet($('register-signers').value, $('register-threshold').value);
      const cid = checkParamsCid($('register-cid').value);
      // The sender operates it and is paid (zero: the registry's defaults).
      args = [name, `0x${'0'.repeat(40)}`, `0x${'0'.repeat(40)}`, set.signers, set.threshold, cid];
      status('register-status', `registering ${name}: ${set.threshold} of ${set.signers.length} signers, operated by ${short(wallet.account)}`);
    } catch (e) { status('register-status', `not registered: ${e.message}`, true); return; }
    $('register-send').disabled = true;
    if (await transact(`register ${args[0]}`, F.registerManufacturer, args, 'setup-log')) {
      status('register-status', `${args[0]} is registered: the roles update once the indexer has it`);
      // Roles are read again (from chain) once, when the indexer lists the new manufacturer.
      const operator = wallet.account.toLowerCase();
      for (let i = 0; i < 30; i++) {
        const items = (await getJson('/v1/manufacturers?limit=500').catch(() => ({}))).items ?? [];
        if (items.some((m) => m.name === args[0] && String(m.operator).toLowerCase() === operator)) { onChanged?.(); break; }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    $('register-send').disabled = false;
  });

  $('model-send').addEventListener('click', async () => {
    let args;
    try {
      const id = Number($('model-manufacturer').value);
      if (!operatorOf.some((m) => m.id === id)) throw new Error('choose a manufacturer you operate');
      const name = checkName($('model-name').value, 'model name');
      const floor = String($('model-floor').value || '0').trim();
      if (!/^(0|[1-9][0-9]*)$/.test(floor) || BigInt(floor) >> 64n) throw new Error('lowest version: a whole number below 2^64');
      args = [id, name, BigInt(floor)];
    } catch (e) { status('model-status', `not defined: ${e.message}`, true); return; }
    $('model-send').disabled = true;
    if (await transact(`define model ${args[1]}`, F.defineModel, args, 'setup-log')) status('model-status', `model ${args[1]} is defined`);
    $('model-send').disabled = false;
  });

  return {
    /** The dApp's wallet changed. */
    walletChanged(w, d) { wallet = w; deployment = d ?? deployment; render(); },
    /** The manufacturers the account operates (read from chain by the dApp). */
    rolesChanged(r) { operatorOf = r?.operatorOf ?? []; render(); },
  };
}

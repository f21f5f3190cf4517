// The dashboard's wallet flows: connect an EIP-1193 wallet, check its chain against the
// indexer's deployment, show the account's roles read from chain state, and the owner's
// flows (select devices on the map, pay for the latest release, transfer, claim refunds).
// The indexer only suggests (which devices an account owns, the manifests); every amount
// and ownership the page acts on is read from the chain through the wallet first.
import { FUNCTIONS as F } from './abi.js';
import { NoPermit, signPermit } from './permit.js';
import { Wallet, WalletError, formatUnits, reason } from './wallet.js';

const $ = (id) => document.getElementById(id);
const lower = (a) => String(a ?? '').toLowerCase();

export function initDapp({ byIndex, map, fleetEvents, el, getJson, allPages, short, onWallet, onRoles }) {
  let wallet = null;
  let deployment = null;
  const owned = new Set(); // device indexes the chain says the account owns (active)
  const selected = new Set();
  const releases = new Map(); // release id → verified release (per account session)
  let roleRun = 0; let priceRun = 0;
  let makerRoles = []; // operator/signer roles of the last reading

  /** The roles line: auditor, owner of the devices verified on chain, the maker roles. */
  function showRoles() {
    const owner = owned.size ? [`owner of ${owned.size} device${owned.size === 1 ? '' : 's'}`] : [];
    $('roles').textContent = `roles: ${['auditor', ...owner, ...makerRoles].join(' · ')}`;
  }

  const provider = () => window.ethereum || null;
  if (!provider()) { $('connect').textContent = 'No wallet: read-only'; $('connect').disabled = true; }

  // ------------------------------------------------------------ transactions log
  function logTx(what, log = 'tx-log') {
    const li = el('li', { 'data-state': 'pending' }, `${what}: simulating…`);
    $(log).prepend(li);
    const set = (state, text) => { li.dataset.state = state; li.textContent = `${what}: ${text}`; };
    return set;
  }

  /** Sends `f(args)`, following it in the log; resolves with the receipt or null when it failed. */
  async function transact(what, to, f, args, value = 0n, log = 'tx-log') {
    const set = logTx(what, log);
    try {
      const hash = await wallet.send(to, f, args, value);
      set('pending', `pending ${hash}`);
      const receipt = await wallet.wait(hash);
      set('mined', `mined in block ${BigInt(receipt.blockNumber)} (${short(hash)}, gas ${BigInt(receipt.gasUsed)})`);
      return receipt;
    } catch (e) {
      set('failed', `failed: ${e instanceof WalletError ? e.message : reason(e)}`);
      return null;
    }
  }

  // ------------------------------------------------------------ connection and chain
  $('connect').addEventListener('click', async () => {
    const p = provider();
    if (!p) { $('connect').textContent = 'No wallet: read-only'; $('connect').disabled = true; return; }
    try {
      deployment ??= await getJson('/v1/deployment');
      if (!wallet) { wallet = new Wallet(p, deployment); wallet.addEventListener('change', refresh); }
      await wallet.connect();
    } catch (e) { $('account').textContent = `not connected: ${reason(e)}`; }
  });
  $('switch-chain').addEventListener('click', async () => {
    try { await wallet.switchChain(); } catch (e) { $('chain-warning-text').textContent = `${$('chain-warning-text').textContent} (switch refused: ${reason(e)})`; }
  });

  function refresh() {
    const connected = Boolean(wallet?.account);
    $('connect').hidden = connected;
    $('account').textContent = connected ? `${short(wallet.account)} on chain ${wallet.chainId}` : '';
    $('account').title = wallet?.account ?? '';
    const wrong = connected && wallet.wrongChain;
    $('chain-warning').hidden = !wrong;
    if (wrong) {
      $('chain-warning-text').textContent = `Your wallet is on chain ${wallet.chainId}, but this fleet's contracts are on chain ${wallet.expected}. `
        + 'Nothing will be signed or sent until the wallet is on the right chain.';
      $('switch-chain').textContent = `Switch wallet to chain ${wallet.expected}`;
    }
    onWallet?.(wallet, deployment);
    onRoles?.({ maker: false });
    owned.clear(); selected.clear(); releases.clear(); map.setSelected(selected);
    $('maker').hidden = true;
    updateSelection();
    if (connected && !wrong) readRoles(); else { $('roles').textContent = ''; showOwner(false); }
  }

  function showOwner(on) {
    $('owner').hidden = !on; $('map-layout').classList.toggle('with-owner', on);
    if (!on) setSelectMode(false);
    map.schedule();
  }

  // ------------------------------------------------------------ roles (chain state)
  /** Verifies which of `indexes` the account owns and are active, by reading the registry. */
  // One `checkDevices(account, model, true, chunk)` call per model and 500 devices proves a
  // whole chunk at once (it reverts unless every device is the account's, active and of the
  // model); only a chunk it refuses is read device by device, to find which are not.
  async function verifyOwned(indexes) {
    const account = wallet.account;
    const byModel = new Map();
    for (const x of indexes) {
      const model = byIndex.get(x)?.model;
      if (!byModel.has(model)) byModel.set(model, []);
      byModel.get(model).push(x);
    }
    for (const [model, list] of byModel) {
      list.sort((a, b) => a - b);
      for (let i = 0; i < list.length; i += 500) {
        const chunk = list.slice(i, i + 500);
        if (model !== undefined) {
          try {
            await wallet.call(deployment.registry, F.checkDevices, [account, model, true, chunk]);
            for (const x of chunk) owned.add(x);
            continue;
          } catch { /* some device is not the account's: read each */ }
        }
        for (let k = 0; k < chunk.length; k += 25) {
          const part = chunk.slice(k, k + 25);
          const records = await Promise.all(part.map((x) => wallet.device(x)));
          part.forEach((x, j) => { if (lower(records[j].owner) === account && records[j].status === 1) owned.add(x); else owned.delete(x); });
        }
      }
    }
  }

  async function readRoles() {
    const run = ++roleRun; const account = wallet.account;
    $('roles').textContent = 'roles: reading chain…';
    try {
      await verifyOwned([...byIndex.values()].filter((d) => lower(d.owner) === account).map((d) => d.index));
      const roles = []; const operatorOf = []; let signer = false;
      for (const m of await allPages('/v1/manufacturers')) {
        const record = await wallet.manufacturer(m.manufacturer_id);
        if (lower(record.operator) === account) { roles.push(`operator of ${m.name} (#${m.manufacturer_id})`); operatorOf.push(m); }
        const sets = (await getJson(`/v1/manufacturers/${m.manufacturer_id}/signers`)).signer_sets;
        const last = sets[sets.length - 1];
        if (last && last.signers.map(lower).includes(account)) {
          // The indexer's newest set counts only if it hashes to the registry's signersHash.
          const [hash] = await wallet.call(deployment.registry, F.signersHash, [last.signers, last.threshold]);
          if (lower(hash) === lower(record.signersHash)) { roles.push(`signer of ${m.name} (#${m.manufacturer_id})`); signer = true; }
        }
      }
      if (run !== roleRun) return;
      makerRoles = roles; showRoles();
      onRoles?.({ maker: signer || operatorOf.length > 0, operatorOf: operatorOf.map((m) => ({ id: Number(m.manufacturer_id), name: m.name })) });
      showOwner(owned.size > 0);
      if (owned.size) { setSelectMode(true); fillModels(); }
      await showMaker(operatorOf, run);
    } catch (e) {
      if (run === roleRun) $('roles').textContent = `roles unavailable: ${reason(e)}`;
    }
  }

  // Devices that change owner on the stream are re-read from the chain.
  fleetEvents.addEventListener('devices', async (ev) => {
    if (!wallet?.account || wallet.wrongChain) return;
    const changed = ev.detail.filter((d) => (lower(d.owner) === wallet.account) !== owned.has(d.index)).map((d) => d.index);
    for (const d of ev.detail) if (d.status !== 'red') selected.delete(d.index);
    if (changed.length) { try { await verifyOwned(changed); } catch { /* shown on the next action */ } showOwner(owned.size > 0); fillModels(); showRoles(); }
    map.setSelected(selected); updateSelection();
  });

  // ------------------------------------------------------------ selection
  const eligible = (d) => d && owned.has(d.index) && d.status === 'red' && d.chain_status === 1 && Boolean(d.latest_release);

  function setSelectMode(on) {
    map.selectMode = on; $('select-mode').setAttribute('aria-pressed', String(on));
  }
  $('select-mode').addEventListener('click', () => setSelectMode(!map.selectMode));
  map.box = $('box');
  map.onToggle = (d) => {
    if (selected.has(d.index)) selected.delete(d.index);
    else if (eligible(d)) selected.add(d.index);
    else { $('selection').textContent = `Device ${d.index} cannot be bought here: ${owned.has(d.index) ? `it is ${d.status}` : 'you do not own it'}.`; return; }
    map.setSelected(selected); updateSelection();
  };
  map.onBox = (devices) => { for (const d of devices) if (eligible(d)) selected.add(d.index); map.setSelected(selected); updateSelection(); };

  function fillModels() {
    const models = [...new Set([...byIndex.values()].filter((d) => owned.has(d.index)).map((d) => d.model))].sort((a, b) => a - b);
    const sel = $('select-model'); const keep = sel.value;
    sel.replaceChildren(...models.map((m) => el('option', { value: String(m) }, `model ${m}`)));
    if (models.map(String).includes(keep)) sel.value = keep;
  }
  $('select-model-all').addEventListener('click', () => {
    const model = Number($('select-model').value);
    for (const d of byIndex.values()) if (d.model === model && eligible(d)) selected.add(d.index);
    map.setSelected(selected); updateSelection();
  });
  $('select-clear').addEventListener('click', () => { selected.clear(); map.setSelected(selected); updateSelection(); });

  /** The selection grouped by the release each device lacks: release id → ascending indexes. */
  function groups() {
    const by = new Map();
    for (const i of [...selected].sort((a, b) => a - b)) {
      const d = byIndex.get(i); if (!eligible(d)) continue;
      if (!by.has(d.latest_release)) by.set(d.latest_release, []);
      by.get(d.latest_release).push(i);
    }
    return by;
  }

  async function release(id) {
    if (!releases.has(id)) releases.set(id, wallet.verifiedRelease(id, await getJson(`/v1/releases/${id}`)));
    try { return await releases.get(id); } catch (e) { releases.delete(id); throw e; }
  }

  const amount = (r, n) => `${formatUnits(r.price * BigInt(n), r.decimals)} ${r.symbol}`;

  async function updateSelection() {
    const run = ++priceRun; const by = groups();
    const count = [...by.values()].reduce((n, l) => n + l.length, 0);
    map.canvas.dataset.selected = [...selected].sort((a, b) => a - b).join(',');
    $('buy').disabled = true;
    if (!count) { $('selection').textContent = 'Nothing selected. Click red devices you own, or drag a box around them.'; $('price').textContent = ''; return; }
    const list = [...by.values()].flat();
    $('selection').textContent = `${count} device${count === 1 ? '' : 's'} selected: ${list.map((i) => `#${i}`).join(', ')}`;
    $('price').textContent = 'price: reading the chain…';
    try {
      const parts = [];
      for (const [id, devices] of by) {
        const r = await release(id);
        if (r.revoked) throw new WalletError(`release ${short(id)} was revoked`);
        parts.push(`${devices.length} × ${formatUnits(r.price, r.decimals)} = ${amount(r, devices.length)} (v${BigInt(r.manifest[1])})`);
      }
      if (run !== priceRun) return;
      $('price').textContent = `total: ${parts.join(' + ')} · price verified on chain`;
      $('buy').disabled = wallet.wrongChain;
    } catch (e) {
      if (run === priceRun) $('price').textContent = `cannot price the selection: ${reason(e)}`;
    }
  }

  // ------------------------------------------------------------ purchase
  /** A permit's deadline: twenty minutes of chain time from the latest block. */
  async function permitDeadline() {
    const block = await wallet.request('eth_getBlockByNumber', ['latest', false]);
    return BigInt(block.timestamp) + 1200n;
  }

  $('buy').addEventListener('click', async () => {
    $('buy').disabled = true;
    for (const [id, devices] of groups()) {
      let r;
      try { r = await release(id); } catch (e) { logTx(`purchase of ${devices.length} devices`)('failed', `failed: ${reason(e)}`); continue; }
      const total = r.price * BigInt(devices.length);
      let permit = null;
      if (!r.eth) {
        // ERC-20: the market takes the price with transferFrom, so it needs an allowance:
        // an EIP-2612 permit signed here (no transaction), or else an `approve` first.
        let allowance = 0n;
        try { [allowance] = await wallet.call(r.token, F.allowance, [wallet.account, deployment.market]); } catch { /* permit or approve below */ }
        if (allowance < total) {
          const set = logTx(`permit for ${amount(r, devices.length)}`);
          try {
            set('pending', 'sign the permit in your wallet (a signature, not a transaction)…');
            permit = await signPermit(wallet, r.token, deployment.market, total, await permitDeadline());
            set('signed', `signed: the market may take up to ${amount(r, devices.length)}, in this purchase`);
          } catch (e) {
            if (!(e instanceof NoPermit)) { set('failed', `failed: ${reason(e)}`); continue; }
            set('skipped', `not offered: ${e.message}; approving first`);
            if (!(await transact(`approve ${amount(r, devices.length)} for the market`, r.token, F.approve, [deployment.market, total]))) continue;
          }
        }
      }
      const what = `purchase of ${devices.map((i) => `#${i}`).join(', ')} for ${amount(r, devices.length)}${permit ? ' with the permit' : ''}`;
      const receipt = permit
        ? await transact(what, deployment.market, F.purchaseWithPermit, [r.manifest, devices, permit])
        : await transact(what, deployment.market, F.purchase, [r.manifest, devices], r.eth ? total : 0n);
      if (receipt) {
        for (const p of wallet.purchases(receipt)) logTx('bought')('mined', `${p.devices.map((i) => `#${i}`).join(', ')} for ${formatUnits(p.amount, r.decimals)} ${r.symbol}; they turn amber, then green as each installs`);
        for (const i of devices) selected.delete(i);
      }
    }
    map.setSelected(selected); updateSelection();
  });

  // ------------------------------------------------------------ transfer
  $('transfer').addEventListener('submit', async (e) => {
    e.preventDefault();
    const index = $('transfer-index').value.trim(); const to = $('transfer-to').value.trim();
    if (!/^[0-9]+$/.test(index)) { logTx('transfer')('failed', `failed: device index must be a number, got ${JSON.stringify(index)}`); return; }
    if (!/^0x[0-9a-fA-F]{40}$/.test(to)) { logTx('transfer')('failed', `failed: the new owner must be a 0x address of 40 hex digits, got ${JSON.stringify(to)}`); return; }
    const receipt = await transact(`transfer of #${index} to ${short(to)}`, deployment.registry, F.transferDevice, [BigInt(index), to]);
    if (receipt) { await verifyOwned([Number(index)]); showOwner(owned.size > 0); fillModels(); updateSelection(); }
  });

  // ------------------------------------------------------------ manufacturer: emergency revoke
  /** Live releases of the operator's models, each with a reason field and a revoke button. */
  async function showMaker(manufacturers, run) {
    const rows = [];
    for (const m of manufacturers) {
      for (const model of await allPages(`/v1/models?manufacturer=${m.manufacturer_id}`)) {
        for (const r of await allPages(`/v1/releases?model=${model.model_id}`)) {
          if ((await wallet.releaseStatus(r.release_id)).revokedAt) continue;
          const what = `${model.name} (model ${model.model_id}) v${BigInt(r.version)}`;
          const input = el('input', { 'aria-label': `Reason to revoke ${what}`, placeholder: 'reason (public, on chain)' });
          const button = el('button', { type: 'button', 'aria-label': `Emergency revoke ${what}` }, 'Emergency revoke');
          button.addEventListener('click', async () => {
            const why = input.value.trim();
            // As the CLI: a reason is shown to people, so no control or bidirectional formatting characters.
            if (!why || /[\p{Cc}\p{Cf}]/u.test(why)) { logTx(`emergency revoke of ${what}`, 'maker-log')('failed', 'failed: give a reason without control or formatting characters'); return; }
            button.disabled = true;
            if (await transact(`emergency revoke of ${what}`, deployment.registry, F.emergencyRevoke, [r.release_id, why], 0n, 'maker-log')) { releases.clear(); await showMaker(manufacturers, run); } else button.disabled = false;
          });
          rows.push(el('div', { class: 'release' }, `${what} ${short(r.release_id)}`, input, button));
        }
      }
    }
    if (run !== roleRun) return;
    $('maker-releases').replaceChildren(...(rows.length ? rows : [el('p', {}, 'No live release to revoke.')]));
    $('maker').hidden = manufacturers.length === 0;
  }

  // ------------------------------------------------------------ refunds
  $('refunds-find').addEventListener('click', async () => {
    const out = $('refunds'); out.replaceChildren(el('p', {}, 'reading the chain…'));
    try {
      const models = new Set([...byIndex.values()].filter((d) => owned.has(d.index)).map((d) => d.model));
      const rows = [];
      for (const model of models) {
        for (const row of await allPages(`/v1/releases?model=${model}`)) {
          const status = await wallet.releaseStatus(row.release_id);
          if (!status.revokedAt) continue;
          const mine = [...owned].filter((i) => byIndex.get(i)?.model === model).sort((a, b) => a - b);
          const entitled = [];
          for (const i of mine) if ((await wallet.call(deployment.market, F.isEntitled, [row.release_id, i]))[0]) entitled.push(i);
          if (!entitled.length) continue;
          const r = await wallet.verifiedRelease(row.release_id, row);
          const button = el('button', { type: 'button', 'aria-label': `Claim refund for ${entitled.length} devices of model ${model} version ${BigInt(row.version)}` },
            `Claim ${amount(r, entitled.length)} for ${entitled.map((i) => `#${i}`).join(', ')}`);
          button.addEventListener('click', async () => {
            button.disabled = true;
            if (!(await transact(`refund of ${entitled.length} devices`, deployment.market, F.claimRefund, [r.manifest, entitled]))) button.disabled = false;
          });
          rows.push(el('p', {}, `model ${model} v${BigInt(row.version)} (revoked) `, button));
        }
      }
      out.replaceChildren(...(rows.length ? rows : [el('p', {}, 'No refunds due: none of your devices holds a revoked release.')]));
    } catch (e) { out.replaceChildren(el('p', { role: 'alert' }, reason(e))); }
  });

  return {
    /** Reads the account's roles from chain again (after a registration the indexer has seen). */
    refreshRoles() { if (wallet?.account && !wallet.wrongChain) readRoles(); },
  };
}

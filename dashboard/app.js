// The dashboard: plain ES modules served by the indexer (no build step).
import { FleetMap } from './map.js';
import { initDapp } from './dapp.js';
import { initSession } from './session.js';
import { initPublish } from './publish.js';
import { initClaim } from './claim.js';
import { initSetup } from './setup.js';

const $ = (id) => document.getElementById(id);
// Exported for the browser test (it reads node colours from the canvas).
export const byIndex = new Map();
let cursor = '';
const ver = (v) => (v ? String(BigInt(v)) : '—');
const short = (h) => (h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-4)}` : h ?? '');

export async function getJson(url) {
  const r = await fetch(url, { headers: { accept: 'application/json' } });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

function table(headers, rows) {
  const t = el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))));
  const body = el('tbody'); for (const r of rows) body.append(el('tr', {}, ...r.map((c) => el('td', {}, c)))); t.append(body);
  return el('div', { class: 'table-wrap' }, t);
}

// ---- tabs
export const fleetEvents = new EventTarget();
const tabs = ['map', 'releases', 'manufacturers', 'device', 'alerts'];
function show(name) {
  for (const t of tabs) { $(`tab-${t}`).setAttribute('aria-selected', String(t === name)); $(`view-${t}`).hidden = t !== name; }
  if (name === 'map') map.schedule();
  if (name === 'releases') loadReleases();
  if (name === 'manufacturers') loadManufacturers();
}
for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => show(t));

// ---- map
const tip = $('tip');
export const map = new FleetMap($('map'), (d) => openDevice(d.index), (d, e) => {
  if (!d) { tip.hidden = true; return; }
  tip.textContent = `${d.label ? `“${d.label}”\n` : ''}device ${d.index} · model ${d.model}\n${d.status}${d.refusal ? ` (refused: ${d.refusal})` : ''}\ninstalled ${ver(d.installed)} · latest ${ver(d.latest)}\nowner ${short(d.owner)}`;
  tip.hidden = false; tip.style.left = `${e.offsetX + 12}px`; tip.style.top = `${e.offsetY + 12}px`;
});

function fillSelect(sel, values) {
  const keep = sel.value; const have = new Set([...sel.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!have.has(String(v))) sel.append(el('option', { value: String(v) }, short(String(v))));
  sel.value = keep;
}

function render() {
  const model = $('f-model').value, owner = $('f-owner').value, status = $('f-status').value;
  const all = [...byIndex.values()];
  const visible = all.filter((d) => (!model || String(d.model) === model) && (!owner || d.owner === owner) && (!status || d.status === status));
  const counts = {}; for (const d of all) counts[d.status] = (counts[d.status] || 0) + 1;
  $('summary').textContent = `${all.length} devices, ${visible.length} shown · ` + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(' · ');
  const canvas = $('map'); canvas.dataset.count = String(all.length);
  map.setDevices(all, visible);
}
for (const id of ['f-model', 'f-owner', 'f-status']) $(id).addEventListener('change', render);

function apply(devices) {
  for (const d of devices) byIndex.set(d.index, d);
  fillSelect($('f-model'), new Set(devices.map((d) => d.model)));
  fillSelect($('f-owner'), new Set(devices.map((d) => d.owner)));
  render();
  fleetEvents.dispatchEvent(new CustomEvent('devices', { detail: devices }));
}

// Labels and places are not chain events: after a write the page reads the fleet again.
async function refetchFleet() { const f = await getJson('/v1/fleet'); apply(f.devices); }

async function loadFleet() {
  const f = await getJson('/v1/fleet');
  map.projection = f.projection; cursor = f.cursor; apply(f.devices);
  const es = new EventSource(`/v1/fleet/stream?cursor=${encodeURIComponent(cursor)}`);
  es.addEventListener('devices', (ev) => { const m = JSON.parse(ev.data); cursor = m.cursor; apply(m.devices); });
}

// ---- releases
export async function allPages(url) {
  const items = []; let next = null;
  do { const p = await getJson(`${url}${url.includes('?') ? '&' : '?'}limit=500${next ? `&after=${next}` : ''}`); items.push(...p.items); next = p.next; } while (next);
  return items;
}
async function loadReleases() {
  const view = $('view-releases'); view.replaceChildren(el('p', {}, 'loading…'));
  const releases = await allPages('/v1/releases');
  const rows = [];
  for (const r of releases.slice(-200).reverse()) {
    const d = await getJson(`/v1/releases/${r.release_id}`);
    const installs = [...byIndex.values()].filter((x) => x.model === r.model_id && x.installed === r.version).length;
    const bought = d.purchases.length;
    const revoked = d.revocations.length ? `${d.revocations[0].emergency ? 'emergency: ' : ''}${d.revocations[0].reason}` : 'no';
    rows.push([`model ${r.model_id} v${ver(r.version)}`, (d.approval?.signers || []).map(short).join(', '), r.signer_mask,
      r.pin_status ?? short(r.bundle_cid), bought, installs, revoked, short(r.tx_hash)]);
  }
  view.replaceChildren(el('h2', {}, 'Releases'), table(['release', 'signers', 'mask', 'CID / pin', 'purchases', 'installs', 'revoked', 'tx'], rows));
}

// ---- manufacturers
async function loadManufacturers() {
  const view = $('view-manufacturers'); view.replaceChildren(el('p', {}, 'loading…'));
  const out = [el('h2', {}, 'Manufacturers')];
  for (const m of await allPages('/v1/manufacturers')) {
    const h = await getJson(`/v1/manufacturers/${m.manufacturer_id}/signers`);
    out.push(el('h3', {}, `${m.name} (#${m.manufacturer_id}) · operator ${short(m.operator)}`),
      table(['block', 'threshold', 'signers', 'tx'], h.signer_sets.map((s) => [s.block_number, `${s.threshold} of ${s.signers.length}`, s.signers.map(short).join(', '), short(s.tx_hash)])));
  }
  view.replaceChildren(...out);
}

// ---- device audit trail
async function openDevice(index) {
  show('device'); $('device-index').value = String(index);
  const trail = $('trail'); trail.replaceChildren(el('p', {}, 'loading…'));
  try {
    const t = await getJson(`/v1/fleet/devices/${index}`);
    const rows = t.events.map((e) => {
      const what = { ...e }; for (const k of ['kind', 'block_number', 'log_index', 'tx_hash']) delete what[k];
      return [e.kind, e.block_number, Object.entries(what).map(([k, v]) => `${k}=${k === 'version' ? ver(v) : short(String(v))}`).join(' '), e.tx_hash ? short(e.tx_hash) : 'off-chain report'];
    });
    trail.replaceChildren(el('h2', { id: 'trail-title' }, `Device ${index}`), table(['event', 'block', 'details', 'tx'], rows));
  } catch (err) { trail.replaceChildren(el('p', { role: 'alert' }, String(err.message))); }
}
$('device-form').addEventListener('submit', (e) => { e.preventDefault(); openDevice(Number($('device-index').value)); });

// ---- alerts (only when the indexer serves them)
async function loadAlerts() {
  try {
    const a = await getJson('/v1/alerts');
    const items = Array.isArray(a) ? a : a.items || [];
    $('tab-alerts').hidden = false;
    $('view-alerts').replaceChildren(el('h2', {}, 'Alerts'), table(['alert'], items.map((i) => [JSON.stringify(i)])));
  } catch { $('tab-alerts').hidden = true; }
}

const session = initSession({ el, short, map, byIndex, onLabelled: () => refetchFleet() });
const publish = initPublish({ el, short, getJson });
const claim = initClaim({ el, short, getJson });
// After a registration the indexer has seen, the roles are read again.
let dapp = null;
const setup = initSetup({ el, short, getJson, onChanged: () => dapp?.refreshRoles() });
dapp = initDapp({
  byIndex, map, fleetEvents, el, getJson, allPages, short,
  onWallet: (w, d) => { session.walletChanged(w); publish.walletChanged(w, d); claim.walletChanged(w, d); setup.walletChanged(w, d); },
  onRoles: (r) => { publish.rolesChanged(r); setup.rolesChanged(r); },
});
loadFleet().catch((e) => { $('summary').textContent = `fleet unavailable: ${e.message}`; });
loadAlerts();

// Sign-In with Ethereum (EIP-4361) for what is not on chain: an owner's labels and map
// positions, a manufacturer's install statistics and alerts. The indexer writes the message
// (GET /v1/auth/nonce?address=…: the page has no keccak-256 for the EIP-55 address), the
// wallet shows and signs it (personal_sign), the indexer checks it and sets an HttpOnly
// session cookie this script never sees. Writes echo the session's CSRF token, kept here
// in memory only. Roles come from the indexer's reading of chain state at request time
// (GET /v1/auth/session); the server refuses every write that the role does not allow, so
// nothing here is a security check, only what to offer.
const $ = (id) => document.getElementById(id);
const lower = (a) => String(a ?? '').toLowerCase();

/** UTF-8 text as 0x-hex (what personal_sign takes). */
export function utf8Hex(text) {
  return `0x${[...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Refuses a sign-in message the page must not have the wallet sign: it must be an EIP-4361
 * message for this page (its first line names `host`, or `origin` with its scheme), for
 * `account`, whose URI is on `origin`, for `chainId`, version 1, and carry no resources (the
 * page asks for none). The indexer writes the message; this keeps a wrong or compromised one
 * from turning the page into a relay for another site's login. Returns the text.
 */
export function checkSignInMessage(text, { host, origin, account, chainId }) {
  if (typeof text !== 'string' || text.length > 4096) throw new Error('the sign-in message is missing or too long');
  const lines = text.split('\n');
  const preamble = ' wants you to sign in with your Ethereum account:';
  if (lines[0] !== `${host}${preamble}` && lines[0] !== `${origin}${preamble}`) throw new Error(`the sign-in message is for ${JSON.stringify(lines[0].split(' ')[0])}, not this page (${host})`);
  if (lower(lines[1]) !== lower(account)) throw new Error('the sign-in message names another account');
  const field = (name) => {
    const found = lines.filter((l) => l.startsWith(`${name}: `));
    if (found.length !== 1) throw new Error(`the sign-in message has ${found.length} "${name}" lines`);
    return found[0].slice(name.length + 2);
  };
  let uri;
  try { uri = new URL(field('URI')); } catch (e) { throw new Error(`the sign-in message's URI: ${e.message}`); }
  if (uri.origin !== origin) throw new Error(`the sign-in message is for ${uri.origin}, not this page (${origin})`);
  if (field('Version') !== '1') throw new Error('the sign-in message is not EIP-4361 version 1');
  if (!/^[0-9]+$/.test(field('Chain ID')) || BigInt(field('Chain ID')) !== BigInt(chainId)) throw new Error(`the sign-in message is for chain ${field('Chain ID')}, not ${chainId}`);
  if (lines.some((l) => l.startsWith('Resources:'))) throw new Error('the sign-in message asks for resources the page did not request');
  return text;
}

/** Why a sign-in request failed, from the indexer's `{error}` body or the status. */
async function failure(r) {
  let text = `${r.status}`;
  try { const b = await r.json(); if (b && b.error) text = `${b.error} (${r.status})`; } catch { /* no JSON body */ }
  if (r.status === 429) text += `; retry after ${r.headers.get('retry-after') ?? '?'} s`;
  return new Error(text);
}

async function call(method, url, csrf, body) {
  const headers = { accept: 'application/json' };
  if (csrf) headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (!r.ok) throw await failure(r);
  return r.json();
}

/** Parses a number field; empty is `null`, anything else must be finite. */
function num(v, what) {
  const t = String(v).trim();
  if (!t) return null;
  const n = Number(t);
  if (!Number.isFinite(n)) throw new Error(`${what}: not a number`);
  return n;
}

export function initSession({ el, short, map, byIndex, onLabelled }) {
  let wallet = null; // the dApp's Wallet once connected
  let session = null; // GET /v1/auth/session's answer
  const box = $('session');

  const status = (text, alert = false) => {
    const s = $('session-status'); s.textContent = text; s.setAttribute('role', alert ? 'alert' : 'status');
  };

  function render() {
    const connected = Boolean(wallet?.account) && !wallet.wrongChain;
    box.hidden = !available || (!connected && !session);
    const signedIn = Boolean(session);
    $('sign-in').hidden = signedIn || !connected;
    $('sign-out').hidden = !signedIn;
    const who = $('session-who');
    if (signedIn) {
      const other = wallet?.account && lower(wallet.account) !== lower(session.address);
      who.textContent = `signed in as ${short(lower(session.address))}${other ? ` (the wallet is ${short(wallet.account)}: sign out to sign in as it)` : ''}`;
      who.title = `until ${new Date(session.expires_at).toLocaleString()}`;
    } else who.textContent = '';
    // Labels: offered to a signed-in owner of at least one device.
    const owner = signedIn && session.devices.length > 0;
    $('label-box').hidden = !owner;
    if (owner) $('label-devices').textContent = `You own ${session.devices.length}${session.devices_truncated ? '+' : ''} devices (checked on chain).`;
    renderStats();
  }

  let available = true; // false when this indexer serves no sign-in (404)

  async function readSession() {
    try { session = await call('GET', '/v1/auth/session'); } catch (e) {
      session = null;
      if (/\(404\)$|^404$/.test(e.message)) available = false;
    }
    render();
  }

  $('sign-in').addEventListener('click', async () => {
    if (!wallet?.account) return;
    $('sign-in').disabled = true;
    try {
      await wallet.checkChain();
      const account = wallet.account;
      status('asking the indexer for a message…');
      const n = await call('GET', `/v1/auth/nonce?address=${encodeURIComponent(account)}`);
      // Sign only a login to this page, for this account and chain.
      if (BigInt(n.chain_id) !== wallet.expected) throw new Error(`the indexer's sign-in is for chain ${n.chain_id}, not ${wallet.expected}`);
      checkSignInMessage(n.message, { host: location.host, origin: location.origin, account, chainId: wallet.expected });
      status('sign the message in your wallet…');
      const signature = await wallet.request('personal_sign', [utf8Hex(n.message), account]);
      await call('POST', '/v1/auth/login', null, { message: n.message, signature });
      status('signed in');
      await readSession();
    } catch (e) {
      status(`sign-in failed: ${e?.message || e}`, true);
    } finally { $('sign-in').disabled = false; }
  });

  $('sign-out').addEventListener('click', async () => {
    try {
      await call('POST', '/v1/auth/logout', session?.csrf_token);
      status('signed out');
    } catch (e) { status(`sign-out failed: ${e.message}`, true); }
    session = null; render();
  });

  // ---- labels and places (PUT /v1/devices/{index}/label)
  $('label-pick').addEventListener('click', () => {
    const pressed = $('label-pick').getAttribute('aria-pressed') === 'true';
    $('label-pick').setAttribute('aria-pressed', String(!pressed));
    map.onPoint = pressed ? null : (position) => {
      $('label-a').value = position[0].toFixed(5); $('label-b').value = position[1].toFixed(5);
      $('label-pick').setAttribute('aria-pressed', 'false'); map.onPoint = null;
    };
  });
  $('label-index').addEventListener('change', () => {
    const d = byIndex.get(Number($('label-index').value));
    if (d) { $('label-text').value = d.label ?? ''; }
  });
  $('label-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('label-result');
    try {
      const index = Number($('label-index').value);
      if (!Number.isSafeInteger(index) || index < 0) throw new Error('device: a device index');
      const a = num($('label-a').value, 'position'), b = num($('label-b').value, 'position');
      if ((a === null) !== (b === null)) throw new Error('position: both numbers or neither');
      const saved = await call('PUT', `/v1/devices/${index}/label`, session?.csrf_token,
        { label: $('label-text').value, position: a === null ? null : [a, b] });
      out.textContent = saved.label ? `device ${index}: saved “${saved.label}”` : `device ${index}: label removed`;
      out.dataset.state = 'saved';
      onLabelled?.();
    } catch (err) { out.textContent = `not saved: ${err.message}`; out.dataset.state = 'failed'; }
  });

  // ---- manufacturer statistics (GET /v1/manufacturers/{id}/stats)
  let statsRun = 0;
  let statsFor; // the session whose statistics are shown (each read spends its request budget)
  async function renderStats() {
    if (statsFor === session) return;
    statsFor = session;
    const run = ++statsRun; const section = $('maker-stats');
    const mine = session?.manufacturers ?? [];
    section.hidden = !mine.length;
    if (!mine.length) return;
    const out = [el('h2', { id: 'maker-stats-title' }, 'Your models: installs and alerts')];
    for (const m of mine) {
      try {
        const s = await call('GET', `/v1/manufacturers/${m.id}/stats`);
        out.push(el('h3', {}, `Manufacturer #${m.id} (${[m.operator && 'operator', m.signer && 'signer'].filter(Boolean).join(', ')})`));
        const rows = [];
        for (const model of s.models) {
          for (const r of model.releases) {
            const c = r.reports || {};
            rows.push([`${model.name} (#${model.model_id})`, model.devices, `v${BigInt(r.version)}`, r.purchased_devices,
              c.installed ?? 0, c.refused ?? 0, r.refunded_devices, r.revoked ? 'revoked' : 'live']);
          }
          if (!model.releases.length) rows.push([`${model.name} (#${model.model_id})`, model.devices, '—', 0, 0, 0, 0, '']);
        }
        const t = el('table', { 'aria-label': `Install statistics of manufacturer ${m.id}` },
          el('thead', {}, el('tr', {}, ...['model', 'devices', 'release', 'bought', 'installed', 'refused', 'refunded', 'state'].map((h) => el('th', { scope: 'col' }, h)))));
        const body = el('tbody'); for (const r of rows) body.append(el('tr', {}, ...r.map((c) => el('td', {}, c)))); t.append(body);
        out.push(el('div', { class: 'table-wrap' }, t));
        out.push(el('p', { class: 'alerts' }, s.alerts.length ? `${s.alerts.length} alert(s): ${s.alerts.slice(0, 20).map((a) => a.rule ?? a.kind ?? JSON.stringify(a)).join(', ')}` : 'No alerts.'));
      } catch (e) { out.push(el('p', { role: 'alert' }, `manufacturer #${m.id}: ${e.message}`)); }
    }
    if (run === statsRun) section.replaceChildren(...out);
  }

  readSession();
  return {
    /** The dApp's wallet changed (connected, account, chain). */
    walletChanged(w) { wallet = w; render(); },
    /** The session now (null when signed out). */
    get session() { return session; },
  };
}

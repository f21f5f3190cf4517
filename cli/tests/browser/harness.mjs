// What the browser tests of the dashboard share (demo.mjs, dapp.mjs): Debian's Chromium
// launched through playwright-core with the project's flags, page errors collected, and
// the fleet read back from the page: each device's status in the page's model and the
// canvas pixel at its centre.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

export const COLOURS = { red: [0xd6, 0x28, 0x28], amber: [0xf4, 0xa1, 0x00], green: [0x2a, 0x9d, 0x3f] };

/** Chromium headless (CHROMIUM or /usr/bin/chromium). */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}

/** Lines on stdin, one at a time. */
export function stdinLines() {
  const lines = createInterface({ input: process.stdin });
  return { next: () => new Promise((resolve) => lines.once('line', resolve)), close: () => lines.close() };
}

/**
 * Collects page errors, console errors and failed responses into the returned array; every
 * request must answer, except /v1/alerts where the indexer has no alerts endpoint (the tab
 * stays hidden), GET /v1/auth/session's 401 (the page asks whether it is signed in) and
 * what `expected(response)` accepts (a test's deliberate refusals).
 */
export function collectErrors(page, expected = () => false) {
  const errors = [];
  const fine = (r) => r.url().endsWith('/v1/alerts')
    || (r.status() === 401 && r.url().endsWith('/v1/auth/session') && r.request().method() === 'GET')
    || expected(r);
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400 && !fine(r)) errors.push(`${r.url()}: ${r.status()}`); });
  return errors;
}

/** Every device: `{ index, status, pixel, x, y }` (x, y: page coordinates of its centre). */
export function nodes(page) {
  return page.evaluate(async () => {
    const { byIndex } = await import('/assets/app.js');
    const canvas = document.getElementById('map'); const ctx = canvas.getContext('2d');
    const dpr = window.devicePixelRatio || 1; const r = canvas.getBoundingClientRect();
    return [...byIndex.values()].map((d) => ({
      index: d.index, status: d.status, x: r.left + d.sx, y: r.top + d.sy,
      pixel: d.sx === undefined ? null : [...ctx.getImageData(Math.round(d.sx * dpr), Math.round(d.sy * dpr), 1, 1).data.slice(0, 3)],
    }));
  });
}

const is = (px, name) => px && px.every((v, i) => Math.abs(v - COLOURS[name][i]) <= 2);
/** The device is `name` in the page's model and drawn in that colour. */
export const shows = (n, name) => n.status === name && is(n.pixel, name);

/** Polls `nodes` until `ok(nodes)` (at most 60 s); the last state in the error. */
export async function waitForNodes(page, what, ok) {
  let last;
  for (let i = 0; i < 600; i++) { last = await nodes(page); if (ok(last)) return last; await page.waitForTimeout(100); }
  throw new Error(`never ${what}: ${JSON.stringify(last)}`);
}

/** Loads `url` and waits until the map drew `count` devices and the summary counts them. */
export async function openFleet(page, url, count) {
  await page.goto(url);
  await page.waitForFunction((n) => document.getElementById('map').dataset.drawn === String(n), count, { timeout: 30000 });
  const summary = await page.textContent('#summary');
  if (!summary.startsWith(`${count} devices`)) throw new Error(`node count: ${summary}`);
}

/** A JSON-RPC caller of `rpc` (the demo's anvil), run in Node. */
export function rpcCaller(rpc) {
  return async (method, params) => {
    const r = await fetch(rpc, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    return r.json();
  };
}

/**
 * The test's EIP-1193 provider as `window.ethereum`: every request goes to anvil through
 * `anvil` (exposed to the page, so the page's CSP, connect-src 'self', is not bypassed by
 * the page itself), which holds the dev accounts' keys (eth_sendTransaction,
 * eth_signTypedData_v4, personal_sign, eth_call...). eth_requestAccounts/eth_accounts
 * answer `account` (`window.__testWallet.setAccount` changes it), `setChain` pretends to be
 * on another chain, wallet_switchEthereumChain is faked.
 */
export async function installTestWallet(page, anvil, account) {
  await page.exposeFunction('__anvil', anvil);
  await page.addInitScript(({ owner }) => {
    const listeners = {};
    let pretend = null; let account = owner;
    const emit = (event, arg) => (listeners[event] || []).forEach((f) => f(arg));
    window.__testWallet = {
      setChain(id) { pretend = id; emit('chainChanged', id); },
      setAccount(a) { account = a; emit('accountsChanged', [a]); },
    };
    window.ethereum = {
      on(event, f) { (listeners[event] ||= []).push(f); },
      removeListener(event, f) { listeners[event] = (listeners[event] || []).filter((g) => g !== f); },
      async request({ method, params = [] }) {
        if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [account];
        if (method === 'eth_chainId' && pretend) return pretend;
        if (method === 'wallet_switchEthereumChain') {
          const real = (await window.__anvil('eth_chainId', [])).result;
          if (BigInt(params[0].chainId) !== BigInt(real)) throw Object.assign(new Error('Unrecognized chain ID'), { code: 4902 });
          pretend = null; emit('chainChanged', real); return null;
        }
        const r = await window.__anvil(method, params);
        if (r.error) throw Object.assign(new Error(r.error.message), { code: r.error.code, data: r.error.data });
        return r.result;
      },
    };
  }, { owner: account });
}

/**
 * The page on a phone (390 × 844): fails naming the elements that stick out when anything is
 * wider than the screen; saves a full-page screenshot as `path`.
 */
export async function checkPhone(page, path) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const { overflow, wide } = await page.evaluate(() => {
    const w = window.innerWidth;
    const name = (e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}`;
    // Boxes past the right edge, and boxes whose content (long unbroken text) overflows them.
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getClientRects().length)
      .filter((e) => e.getBoundingClientRect().right > w + 1 || (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible'))
      .map((e) => `${name(e)} (right ${Math.round(e.getBoundingClientRect().right)}, content ${e.scrollWidth} in ${e.clientWidth})`)
      .slice(0, 8);
    return { overflow: document.documentElement.scrollWidth - w, wide };
  });
  if (overflow > 1) throw new Error(`the phone layout is ${overflow}px wider than the screen: ${wide.join(', ')}`);
  await page.screenshot({ path, fullPage: true });
}

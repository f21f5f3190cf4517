// Sign-In with Ethereum in the dashboard, for cli/tests/signin_browser.rs:
//   node signin.mjs URL RPC OWNER DEVICE_COUNT SCREENSHOT_DIR
// URL: the dashboard of a paused `otaledger demo --pause-before-purchase --no-purchase`;
// RPC: the demo's anvil; OWNER: the fleet's owner (an anvil dev account).
//
// With the test wallet (harness.mjs: personal_sign by anvil's dev keys):
// 1. the owner connects and signs in with the button: the message the wallet was asked to
//    sign names this page's domain, URI, chain and account; the page shows who is signed in;
//    the session cookie is invisible to script (HttpOnly);
// 2. labels and places a device: picks a point on the map, saves, and the fleet (re-read)
//    shows the label and the picked position; a label with a right-to-left override is
//    refused with the server's reason and nothing changes;
// 3. an expired message and a replayed one are refused (401, their reasons), posted from
//    the page with real signatures; a replay after the page's own login too;
// 4. signs out with the button: the session ends (401) and the label form is gone;
// 5. another account (owns nothing) signs in: no label form, and a label write for the
//    owner's device is refused with 403 by the server;
// 6. the manufacturer's operator signs in and sees the install statistics of its model;
// screenshots; no page error; prints "DONE".
import { launch, collectErrors, openFleet, rpcCaller, installTestWallet, nodes, checkPhone } from './harness.mjs';

const [url, rpc, owner, countArg, shots] = process.argv.slice(2);
const count = Number(countArg);
const anvil = rpcCaller(rpc);
const lower = (a) => String(a).toLowerCase();
const fail = (what) => { throw new Error(what); };

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // The refusals this test provokes on purpose are expected; anything else fails it.
  const deliberate = new Set();
  const errors = collectErrors(page, (r) => deliberate.has(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`));
  const signed = [];
  await page.exposeFunction('__signed', (m) => signed.push(m));
  await installTestWallet(page, anvil, owner);
  // Record what the wallet is asked to sign (the page passes 0x-hex UTF-8).
  await page.addInitScript(() => {
    const wrap = () => {
      const inner = window.ethereum.request.bind(window.ethereum);
      window.ethereum.request = async (a) => {
        if (a.method === 'personal_sign') {
          const hex = a.params[0].slice(2);
          window.__signed(new TextDecoder().decode(new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)))));
        }
        return inner(a);
      };
    };
    wrap();
  });
  await openFleet(page, url, count);
  const waitText = (sel, re, what) => page.waitForFunction(([s, r]) => new RegExp(r).test(document.querySelector(s)?.textContent ?? ''), [sel, re.source], { timeout: 20000 })
    .catch(async () => fail(`${what}: ${sel} says ${JSON.stringify(await page.textContent(sel))}`));

  // 1. Connect, sign in.
  if (!(await page.isHidden('#session'))) fail('sign-in offered before a wallet is connected');
  await page.click('#connect');
  await waitText('#roles', new RegExp(`owner of ${count} devices`), 'owner roles');
  await page.click('#sign-in');
  await waitText('#session-who', /signed in as 0x/, 'sign-in');
  const shortOwner = `${lower(owner).slice(0, 8)}…${lower(owner).slice(-4)}`;
  if (!(await page.textContent('#session-who')).includes(shortOwner)) fail(`signed in as ${await page.textContent('#session-who')}`);
  if (signed.length !== 1) fail(`${signed.length} signature requests`);
  const message = signed[0];
  const { host } = new URL(url);
  const chainId = BigInt((await anvil('eth_chainId', [])).result);
  for (const want of [`${host} wants you to sign in with your Ethereum account:`, `URI: ${url.endsWith('/') ? url : `${url}/`}`, `Chain ID: ${chainId}`, 'Version: 1']) {
    if (!message.includes(want)) fail(`the signed message lacks ${JSON.stringify(want)}:\n${message}`);
  }
  if (lower(message.split('\n')[1]) !== lower(owner)) fail(`the message names ${message.split('\n')[1]}`);
  if (await page.evaluate(() => document.cookie.includes('otaledger_session'))) fail('the session cookie is readable by script');
  if (!(await page.isVisible('#sign-out'))) fail('no sign-out button');
  await page.screenshot({ path: `${shots}/signin-signed-in.png` });

  // 2. Label and place a device.
  const target = (await nodes(page))[1].index;
  await page.click('details#label-box > summary');
  await page.fill('#label-index', String(target));
  await page.fill('#label-text', 'pump house 3');
  await page.click('#label-pick');
  const canvas = await page.locator('#map').boundingBox();
  await page.mouse.click(canvas.x + canvas.width * 0.3, canvas.y + canvas.height * 0.4);
  const picked = [Number(await page.inputValue('#label-a')), Number(await page.inputValue('#label-b'))];
  if (!picked.every(Number.isFinite) || (await page.inputValue('#label-a')) === '') fail(`picked ${picked}`);
  if ((await page.getAttribute('#label-pick', 'aria-pressed')) !== 'false') fail('pick mode stayed on');
  await page.click('#label-form button[type=submit]');
  await waitText('#label-result', /saved “pump house 3”/, 'label saved');
  // Polled from here: an async predicate's promise would count as an answer at once.
  let shown = null;
  for (let i = 0; i < 200 && !shown; i++) {
    shown = await page.evaluate(async (x) => {
      const { byIndex } = await import('/assets/app.js'); const d = byIndex.get(x);
      return d && d.label === 'pump house 3' ? d.position : null;
    }, target);
    if (!shown) await page.waitForTimeout(100);
  }
  if (!shown) fail('the fleet does not show the label');
  if (shown.some((v, k) => Math.abs(v - picked[k]) > 1e-4)) fail(`position ${shown}, picked ${picked}`);
  deliberate.add(`PUT /v1/devices/${target}/label 400`);
  await page.fill('#label-text', 'evil\u202Eexe.txt');
  await page.click('#label-form button[type=submit]');
  await waitText('#label-result', /not saved: .*(bidirectional|U\+202E).*\(400\)/, 'a bidi label refused');
  const still = await page.evaluate(async (i) => (await (await fetch('/v1/fleet')).json()).devices.find((d) => d.index === i).label, target);
  if (still !== 'pump house 3') fail(`label after a refused write: ${still}`);

  // 3. Expired and replayed messages, with real signatures, from the page.
  deliberate.add('POST /v1/auth/login 401');
  const attempt = await page.evaluate(async (account) => {
    const hex = (t) => `0x${[...new TextEncoder().encode(t)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    const fresh = async () => (await (await fetch(`/v1/auth/nonce?address=${account}`)).json()).message;
    const sign = (m) => window.ethereum.request({ method: 'personal_sign', params: [hex(m), account] });
    const login = async (m, signature) => {
      const r = await fetch('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: m, signature }) });
      return [r.status, (await r.json()).error ?? 'ok'];
    };
    const expired = (await fresh()).replace(/Expiration Time: .*/, 'Expiration Time: 2020-01-01T00:00:00Z');
    const replay = await fresh(); const sig = await sign(replay);
    return { expired: await login(expired, await sign(expired)), first: await login(replay, sig), again: await login(replay, sig) };
  }, owner);
  if (attempt.expired[0] !== 401 || !/expired/.test(attempt.expired[1])) fail(`expired: ${attempt.expired}`);
  if (attempt.first[0] !== 200) fail(`first use: ${attempt.first}`);
  if (attempt.again[0] !== 401 || !/already used/.test(attempt.again[1])) fail(`replay: ${attempt.again}`);
  // The page's own signed message, replayed.
  const own = await page.evaluate(async ([m, account]) => {
    const hex = `0x${[...new TextEncoder().encode(m)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    const signature = await window.ethereum.request({ method: 'personal_sign', params: [hex, account] });
    const r = await fetch('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: m, signature }) });
    return [r.status, (await r.json()).error];
  }, [message, owner]);
  if (own[0] !== 401 || !/already used/.test(own[1])) fail(`the page's message replayed: ${own}`);

  // 4. Sign out (the page reloads first: the replay test's login replaced its session).
  await page.reload();
  await openFleet(page, url, count);
  await page.click('#connect');
  await waitText('#session-who', /signed in as 0x/, 'the session after a reload');
  await page.click('#sign-out');
  await waitText('#session-status', /signed out/, 'sign-out');
  if (!(await page.isVisible('#sign-in'))) fail('no sign-in button after signing out');
  if (!(await page.isHidden('#label-box'))) fail('label form after signing out');
  const after = await page.evaluate(async () => (await fetch('/v1/auth/session')).status);
  if (after !== 401) fail(`session after sign-out: ${after}`);

  // 5. Another account, owning nothing: no label form; the server refuses its write (403).
  const accounts = (await anvil('eth_accounts', [])).result;
  const stranger = accounts[9];
  await page.evaluate((a) => window.__testWallet.setAccount(a), stranger);
  await waitText('#roles', /roles: auditor$/, 'the stranger\'s roles');
  await page.click('#sign-in');
  await waitText('#session-who', new RegExp(`signed in as ${lower(stranger).slice(0, 8)}`), 'the stranger signs in');
  if (!(await page.isHidden('#label-box'))) fail('label form for an account that owns nothing');
  deliberate.add(`PUT /v1/devices/${target}/label 403`);
  const refused = await page.evaluate(async (i) => {
    const s = await (await fetch('/v1/auth/session')).json();
    const r = await fetch(`/v1/devices/${i}/label`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token }, body: JSON.stringify({ label: 'mine now', position: null }) });
    return [r.status, (await r.json()).error];
  }, target);
  if (refused[0] !== 403) fail(`another owner's label: ${refused}`);
  await page.click('#sign-out');
  await waitText('#session-status', /signed out/, 'the stranger signs out');

  // 6. The manufacturer's operator: install statistics of its model.
  await page.evaluate((a) => window.__testWallet.setAccount(a), accounts[0]);
  await waitText('#roles', /operator of .+ \(#\d+\)/, 'operator roles');
  await page.click('#sign-in');
  await waitText('#maker-stats', /Your models: installs and alerts[\s\S]*operator[\s\S]*v\d+/, 'statistics');
  const rows = await page.$$eval('#maker-stats tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  // model, devices, release, bought, installed, refused, refunded, state: nothing bought yet.
  if (!rows.some((r) => r[1] === String(count) && /^v\d+$/.test(r[2]) && r[3] === '0' && r[4] === '0' && r[7] === 'live')) fail(`statistics: ${JSON.stringify(rows)}`);
  await page.locator('#maker-stats').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/signin-statistics.png`, fullPage: true });

  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, select, input')]
    .filter((e) => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()))
    .map((e) => e.outerHTML.slice(0, 80)));
  if (unnamed.length) fail(`controls without a name: ${unnamed.join(' | ')}`);
  await checkPhone(page, `${shots}/signin-phone.png`);
  if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
}

// The owner's purchase in the dashboard with a wallet, for cli/tests/dapp_browser.rs:
//   node dapp.mjs URL RPC OWNER DEVICE_COUNT SCREENSHOT_DIR
// URL: the dashboard of a paused `otaledger demo --pause-before-purchase --no-purchase`;
// RPC: the demo's anvil; OWNER: the fleet's owner (an anvil dev account).
//
// The test's EIP-1193 provider (page.addInitScript) forwards every request to anvil, which
// holds the dev accounts' keys (eth_sendTransaction, eth_signTypedData_v4, personal_sign,
// eth_call...), answers eth_requestAccounts/eth_accounts with OWNER, can pretend to be on
// another chain (window.__testWallet.setChain), and fakes wallet_switchEthereumChain.
//
// Steps: all nodes red; connect while the wallet reports chain 1: the wrong-chain warning,
// no roles, no owner panel (screenshot); switch: roles read from chain (owner of every
// device, auditor); a manifest with a changed price (the indexer lying, page.route) is
// refused; "all of model" selects every device and prices it; clear; one device by
// click and two by dragging a box: exactly those three selected, total price 3 × the price;
// a transfer to the zero address is refused with the contract's error before anything is
// sent; buy: the transaction is followed to "mined" and exactly the three turn amber;
// prints "BOUGHT <json list>"; waits for "GO" (the demo runs its fleet round), then exactly
// those three turn green and the rest stay red, without a reload; prints "GREEN <json
// list>"; waits for "REVOKE": as the manufacturer's operator (the wallet switches account)
// revokes the release in an emergency, then as the owner finds and claims the refund for
// exactly those three; prints "REFUNDED <json list>"; checks accessible names; desktop and
// phone screenshots; prints "DONE".
import { launch, stdinLines, collectErrors, openFleet, shows, waitForNodes, rpcCaller, installTestWallet, checkPhone } from './harness.mjs';

const [url, rpc, owner, countArg, shots] = process.argv.slice(2);
const count = Number(countArg);
const lines = stdinLines();

const anvil = rpcCaller(rpc);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = collectErrors(page);
  await installTestWallet(page, anvil, owner);

  await openFleet(page, url, count);
  await waitForNodes(page, 'all red', (ns) => ns.length === count && ns.every((n) => shows(n, 'red')));
  await page.evaluate(() => { window.notReloaded = true; });

  // Wrong chain: a warning, nothing read or offered until the wallet switches.
  await page.evaluate(() => window.__testWallet.setChain('0x1'));
  await page.click('#connect');
  await page.waitForSelector('#chain-warning:not([hidden])', { timeout: 10000 });
  const warning = await page.textContent('#chain-warning');
  if (!/chain 1\b/.test(warning) || !/contracts are on chain \d+/.test(warning)) throw new Error(`warning: ${warning}`);
  if (!(await page.isHidden('#owner'))) throw new Error('owner flows offered on the wrong chain');
  await page.screenshot({ path: `${shots}/dapp-wrong-chain.png` });
  await page.click('#switch-chain');
  await page.waitForSelector('#chain-warning', { state: 'hidden', timeout: 10000 });
  await page.waitForFunction((n) => document.getElementById('roles').textContent.includes(`owner of ${n} devices`), count, { timeout: 20000 })
    .catch(async () => { throw new Error(`roles: ${await page.textContent('#roles')}`); });
  if (!(await page.textContent('#roles')).includes('auditor')) throw new Error('no auditor role');
  if (await page.isHidden('#owner')) throw new Error('no owner panel');

  const selectedList = () => page.evaluate(() => document.getElementById('map').dataset.selected);
  const priced = async (text) => {
    await page.waitForFunction((t) => document.getElementById('price').textContent.includes(t), text, { timeout: 20000 })
      .catch(async () => { throw new Error(`price: ${await page.textContent('#price')} (wanted ${text})`); });
  };
  // A lying indexer: the release's manifest with a tenth of the price is refused, because the
  // registry's releaseId(manifest) no longer equals the release id.
  const tamper = async (route) => {
    const body = await (await route.fetch()).json();
    body.price = String(BigInt(body.price) / 10n);
    await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
  };
  await page.route(/\/v1\/releases\/0x[0-9a-f]{64}$/, tamper);
  await page.click('#select-model-all');
  await page.waitForFunction(() => /cannot price the selection: the indexer's manifest hashes to 0x[0-9a-f]{64}, not release/.test(document.getElementById('price').textContent), null, { timeout: 20000 })
    .catch(async () => { throw new Error(`tampered manifest: ${await page.textContent('#price')}`); });
  if (!(await page.isDisabled('#buy'))) throw new Error('buy offered on a tampered manifest');
  await page.unroute(/\/v1\/releases\/0x[0-9a-f]{64}$/, tamper);
  await page.click('#select-clear');
  // "All of model X" on the indexer's true manifest, then clear.
  await page.click('#select-model-all');
  await priced(`${count} × 0.01 = ${count / 100} ETH`);
  await page.click('#select-clear');
  if ((await selectedList()) !== '') throw new Error('selection not cleared');

  // One by click, two by a box around exactly them.
  // The owner panel narrowed the map: wait for the redraw, then read every centre.
  await page.waitForTimeout(300);
  const ns = await waitForNodes(page, 'redrawn red', (x) => x.length === count && x.every((n) => shows(n, 'red')));
  const [first, ...rest] = ns;
  const inside = (n, b) => n.x >= b.x1 && n.x <= b.x2 && n.y >= b.y1 && n.y <= b.y2;
  let box = null;
  for (let i = 0; i < rest.length && !box; i++) {
    for (let j = i + 1; j < rest.length && !box; j++) {
      const [a, b] = [rest[i], rest[j]];
      const cand = { x1: Math.min(a.x, b.x) - 3, x2: Math.max(a.x, b.x) + 3, y1: Math.min(a.y, b.y) - 3, y2: Math.max(a.y, b.y) + 3, pair: [a.index, b.index] };
      if (ns.filter((n) => inside(n, cand)).length === 2) box = cand;
    }
  }
  if (!box) throw new Error('no two devices alone in a box');
  await page.mouse.click(first.x, first.y);
  await page.mouse.move(box.x1, box.y1); await page.mouse.down();
  await page.mouse.move(box.x2, box.y2, { steps: 8 }); await page.mouse.up();
  const want = [first.index, ...box.pair].sort((a, b) => a - b);
  const got = await selectedList();
  if (got !== want.join(',')) throw new Error(`selected ${got}, wanted ${want}`);
  await priced('3 × 0.01 = 0.03 ETH');
  if (!(await page.textContent('#price')).includes('verified on chain')) throw new Error('price not verified');

  // A refused transaction is explained by the contract's error and never sent.
  const other = ns.find((n) => !want.includes(n.index));
  await page.click('details:has(#transfer) > summary');
  await page.fill('#transfer-index', String(other.index));
  await page.fill('#transfer-to', `0x${'0'.repeat(40)}`);
  await page.click('#transfer button[type=submit]');
  await page.waitForSelector('#tx-log li[data-state=failed]', { timeout: 20000 });
  const refused = await page.textContent('#tx-log li[data-state=failed]');
  if (!refused.includes('UpdateRegistryZeroAddress()')) throw new Error(`transfer refusal: ${refused}`);

  // Buy: followed to mined; exactly the three turn amber.
  await page.click('#buy');
  await page.waitForFunction(() => [...document.querySelectorAll('#tx-log li')].some((li) => li.dataset.state === 'mined' && li.textContent.startsWith('purchase of')), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`purchase: ${await page.textContent('#tx-log')}`); });
  const amber = await waitForNodes(page, 'the three amber and the rest red', (x) => x.length === count
    && x.filter((n) => shows(n, 'amber')).length === 3 && x.every((n) => shows(n, 'amber') || shows(n, 'red')));
  const bought = amber.filter((n) => n.status === 'amber').map((n) => n.index).sort((a, b) => a - b);
  if (bought.join(',') !== want.join(',')) throw new Error(`amber ${bought}, selected ${want}`);
  console.log(`BOUGHT ${JSON.stringify(bought)}`);

  if ((await lines.next()) !== 'GO') throw new Error('expected GO');
  const after = await waitForNodes(page, 'the three green and the rest red', (x) => x.length === count
    && x.filter((n) => shows(n, 'green')).length === 3 && x.every((n) => shows(n, 'green') || shows(n, 'red')));
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded');
  const green = after.filter((n) => n.status === 'green').map((n) => n.index).sort((a, b) => a - b);
  console.log(`GREEN ${JSON.stringify(green)}`);
  await page.screenshot({ path: `${shots}/dapp-desktop.png` });

  // The manufacturer's operator (anvil's first dev account) revokes the release in an
  // emergency; the owner then claims the refund for exactly the three devices.
  if ((await lines.next()) !== 'REVOKE') throw new Error('expected REVOKE');
  const operator = (await anvil('eth_accounts', [])).result[0];
  await page.evaluate((a) => window.__testWallet.setAccount(a), operator);
  await page.waitForSelector('#maker:not([hidden])', { timeout: 20000 })
    .catch(async () => { throw new Error(`no manufacturer panel; roles: ${await page.textContent('#roles')}`); });
  if (!/operator of .+ \(#\d+\)/.test(await page.textContent('#roles'))) throw new Error(`roles: ${await page.textContent('#roles')}`);
  if (!(await page.isHidden('#owner'))) throw new Error('owner flows offered to an account that owns nothing');
  const reasonBox = page.locator('#maker-releases input').first();
  await reasonBox.fill('signing key leak drill');
  await page.locator('#maker-releases button').first().click();
  await page.waitForFunction(() => [...document.querySelectorAll('#maker-log li')].some((li) => li.dataset.state === 'mined'), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`revoke: ${await page.textContent('#maker-log')}`); });
  await page.waitForFunction(() => document.getElementById('maker-releases').textContent.includes('No live release'), null, { timeout: 20000 });
  await page.screenshot({ path: `${shots}/dapp-revoke.png` });

  await page.evaluate((a) => window.__testWallet.setAccount(a), owner);
  await page.waitForFunction((n) => document.getElementById('roles').textContent.includes(`owner of ${n} devices`), count, { timeout: 20000 });
  await page.click('details#refunds-box > summary');
  await page.click('#refunds-find');
  const claim = page.locator('#refunds button');
  await claim.waitFor({ timeout: 30000 }).catch(async () => { throw new Error(`refunds: ${await page.textContent('#refunds')}`); });
  const offer = await claim.textContent();
  const offered = [...offer.matchAll(/#(\d+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  if (offered.join(',') !== green.join(',') || !offer.includes('0.03 ETH')) throw new Error(`refund offer: ${offer}`);
  await claim.click();
  await page.waitForFunction(() => [...document.querySelectorAll('#tx-log li')].some((li) => li.dataset.state === 'mined' && li.textContent.startsWith('refund of 3 devices')), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`refund: ${await page.textContent('#tx-log')}`); });
  await page.click('#refunds-find');
  await page.waitForFunction(() => document.getElementById('refunds').textContent.includes('No refunds due'), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`after the refund: ${await page.textContent('#refunds')}`); });
  console.log(`REFUNDED ${JSON.stringify(offered)}`);

  // Every control has an accessible name (its label, aria-label or text).
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, select, input')]
    .filter((e) => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()))
    .map((e) => e.outerHTML.slice(0, 80)));
  if (unnamed.length) throw new Error(`controls without a name: ${unnamed.join(' | ')}`);

  await checkPhone(page, `${shots}/dapp-phone.png`);
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
  lines.close();
}

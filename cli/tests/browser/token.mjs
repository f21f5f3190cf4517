// The owner pays in the release's ERC-20 with an EIP-2612 permit, for cli/tests/dapp_browser.rs:
//   node token.mjs URL RPC OWNER DEVICE_COUNT SCREENSHOT_DIR
// URL: the dashboard of a paused `otaledger demo --token --pause-before-purchase --no-purchase`
// (its release priced at 10 dUSD a device in the demo's DemoToken); RPC: the demo's anvil;
// OWNER: the fleet's owner, who holds the token. The test's EIP-1193 provider forwards to
// anvil as in dapp.mjs.
//
// Steps: connect; "all of model" prices every device in dUSD from the verified manifest; buy:
// the page has the wallet sign a permit (eth_signTypedData_v4 over the token's own domain, no
// transaction), then sends one purchaseWithPermit: the owner's nonce grows by exactly one and
// no approve is logged; every device turns amber; prints "BOUGHT <json list>"; waits for "GO"
// (the demo runs its fleet round), then every device turns green without a reload; prints
// "GREEN <json list>"; a screenshot of the log; prints "DONE".
import { launch, stdinLines, collectErrors, openFleet, shows, waitForNodes, rpcCaller, installTestWallet } from './harness.mjs';

const [url, rpc, owner, countArg, shots] = process.argv.slice(2);
const count = Number(countArg);
const lines = stdinLines();
const anvil = rpcCaller(rpc);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = collectErrors(page);
  await installTestWallet(page, anvil, owner);
  // Which wallet methods the page used, in order.
  const asked = [];
  await page.exposeFunction('__asked', (m) => asked.push(m));
  await page.addInitScript(() => {
    const wrap = () => {
      const inner = window.ethereum.request.bind(window.ethereum);
      window.ethereum.request = (args) => { window.__asked(args.method); return inner(args); };
    };
    wrap();
  });

  await openFleet(page, url, count);
  await waitForNodes(page, 'all red', (ns) => ns.length === count && ns.every((n) => shows(n, 'red')));
  await page.evaluate(() => { window.notReloaded = true; });
  await page.click('#connect');
  await page.waitForFunction((n) => document.getElementById('roles').textContent.includes(`owner of ${n} devices`), count, { timeout: 20000 })
    .catch(async () => { throw new Error(`roles: ${await page.textContent('#roles')}`); });

  await page.click('#select-model-all');
  const want = `${count} × 10 = ${count * 10} dUSD`;
  await page.waitForFunction((t) => document.getElementById('price').textContent.includes(t), want, { timeout: 20000 })
    .catch(async () => { throw new Error(`price: ${await page.textContent('#price')} (wanted ${want})`); });

  const nonce = async () => BigInt((await anvil('eth_getTransactionCount', [owner, 'latest'])).result);
  const before = await nonce();
  asked.length = 0;
  await page.click('#buy');
  await page.waitForFunction(() => [...document.querySelectorAll('#tx-log li')].some((li) => li.dataset.state === 'mined' && li.textContent.startsWith('purchase of')), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`purchase: ${await page.textContent('#tx-log')}`); });
  const log = await page.evaluate(() => [...document.querySelectorAll('#tx-log li')].map((li) => `${li.dataset.state}: ${li.textContent}`));
  if (!log.some((l) => l.startsWith(`signed: permit for ${count * 10} dUSD`))) throw new Error(`no signed permit in the log: ${log.join(' | ')}`);
  if (!log.some((l) => l.startsWith('mined: purchase of') && l.includes('with the permit'))) throw new Error(`purchase not with the permit: ${log.join(' | ')}`);
  if (log.some((l) => l.includes('approve'))) throw new Error(`approved although the token has permits: ${log.join(' | ')}`);
  const sent = asked.filter((m) => m === 'eth_sendTransaction').length;
  const signed = asked.filter((m) => m === 'eth_signTypedData_v4').length;
  if (sent !== 1 || signed !== 1) throw new Error(`wanted one signature and one transaction, the page asked: ${asked.join(', ')}`);
  if ((await nonce()) !== before + 1n) throw new Error(`the owner sent ${(await nonce()) - before} transactions`);
  await page.screenshot({ path: `${shots}/token-permit.png` });

  const amber = await waitForNodes(page, 'every device amber', (x) => x.length === count && x.every((n) => shows(n, 'amber')));
  console.log(`BOUGHT ${JSON.stringify(amber.map((n) => n.index).sort((a, b) => a - b))}`);

  if ((await lines.next()) !== 'GO') throw new Error('expected GO');
  const after = await waitForNodes(page, 'every device green', (x) => x.length === count && x.every((n) => shows(n, 'green')));
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded');
  console.log(`GREEN ${JSON.stringify(after.map((n) => n.index).sort((a, b) => a - b))}`);
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
  lines.close();
}

// A release published from the dashboard with signatures gathered from two wallets, for
// cli/tests/publish_browser.rs:
//   node publish.mjs URL RPC SIGNERS_JSON MANIFEST_PATH SCREENSHOT_DIR
// URL: the dashboard of a paused `otaledger demo` (its manufacturer's signers are anvil dev
// accounts, SIGNERS_JSON lists them); MANIFEST_PATH: a manifest.json written by
// `otaledger release create` for the next version.
//
// 1. The first signer's wallet: the panel appears for a signer; the manifest file loads and
//    is checked on chain; a copy with a changed price is refused (the registry hashes it to
//    another release id); the first signer signs (eth_signTypedData_v4 in the wallet).
// 2. A stranger's wallet opens the shared link: it cannot sign (not in the set); publishing
//    with one signature fails with the contract's UpdateRegistryNotEnoughSignatures before
//    anything is sent; a stranger's signature passed off as the second signer's is not
//    counted (its signer is recovered first), nothing sent.
// 3. The third signer's wallet opens the link, signs, and publishes: mined. Prints
//    "PUBLISHED <release id>".
// 4. The other threshold actions, each signed by two wallets through the link: the floor of
//    model 1 raised to 2; the signer set rotated (the second signer replaced by a new one);
//    then the new set (the new signer and the first) revokes version 2, while the replaced
//    signer's signature no longer counts; then it hands the operator role to another account.
//    Prints "FLOOR 2", "ROTATED <new signer>", "REVOKED <release id>", "OPERATOR <address>",
//    screenshots, "DONE".
import { readFileSync } from 'node:fs';
import { launch, collectErrors, openFleet, rpcCaller, installTestWallet, checkPhone } from './harness.mjs';

const [url, rpc, signersArg, manifestPath, shots] = process.argv.slice(2);
const signers = JSON.parse(signersArg).map((s) => s.toLowerCase());
const anvil = rpcCaller(rpc);
const fail = (what) => { throw new Error(what); };
const manifestText = readFileSync(manifestPath, 'utf8');
const releaseId = JSON.parse(manifestText).releaseId;

const browser = await launch();
try {
  const errors = []; // one list per page
  /** A page whose wallet is `account`, on `at`, connected; waits for its roles. */
  async function walletPage(account, at, rolesRe) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    errors.push(collectErrors(page));
    await installTestWallet(page, anvil, account);
    await page.goto(at);
    await page.waitForFunction(() => document.getElementById('map').dataset.drawn !== undefined, null, { timeout: 30000 });
    await page.click('#connect');
    await page.waitForFunction((r) => new RegExp(r).test(document.getElementById('roles').textContent), rolesRe.source, { timeout: 30000 })
      .catch(async () => fail(`roles of ${account}: ${await page.textContent('#roles')}`));
    return page;
  }
  const waitText = (page, sel, re, what) => page.waitForFunction(([s, r]) => new RegExp(r).test(document.querySelector(s)?.textContent ?? ''), [sel, re.source], { timeout: 30000 })
    .catch(async () => fail(`${what}: ${sel} says ${JSON.stringify(await page.textContent(sel))}`));

  // 1. The first signer.
  const a = await walletPage(signers[0], url, /signer of Acme Thermostats/);
  await a.waitForSelector('#publish:not([hidden])', { timeout: 10000 });
  const tampered = JSON.parse(manifestText); tampered.manifest.price = '1';
  await a.fill('#publish-manifest', `${JSON.stringify(tampered, null, 2)}\n`);
  await a.click('#publish-load');
  await waitText(a, '#publish-status', /manifest refused: the registry hashes this manifest to 0x[0-9a-f]{64}, the file says/, 'a tampered manifest');
  if (!(await a.isDisabled('#publish-sign'))) fail('sign offered on a refused manifest');
  await a.fill('#publish-manifest', '');
  await a.setInputFiles('#publish-file', manifestPath);
  await a.click('#publish-load');
  await waitText(a, '#publish-status', /checked on chain; 2 of 3 signers of Acme Thermostats \(#1\) must sign/, 'the manifest');
  await waitText(a, '#publish-summary', new RegExp(`version 2[\\s\\S]*${releaseId}`), 'the summary');
  await a.click('#publish-sign');
  await waitText(a, '#publish-count', /^1 of 2 signatures/, 'the first signature');
  const link = await a.inputValue('#publish-link');
  if (!link.includes('#publish=')) fail(`link: ${link}`);
  await a.screenshot({ path: `${shots}/publish-first-signer.png`, fullPage: true });

  // 2. A stranger with the link: cannot sign; too few signatures and a forged one are refused
  // by the contract's simulation, nothing sent.
  const accounts = (await anvil('eth_accounts', [])).result.map((x) => x.toLowerCase());
  const stranger = accounts[9];
  if (signers.includes(stranger)) fail('the stranger is a signer');
  const b = await walletPage(stranger, link, /roles: auditor/);
  await waitText(b, '#publish-count', /^1 of 2 signatures/, 'the link opened by the stranger');
  if (!(await b.isDisabled('#publish-sign'))) fail('a stranger may sign');
  const blockBefore = (await anvil('eth_blockNumber', [])).result;
  await b.click('#publish-send');
  await waitText(b, '#publish-log', /failed: .*UpdateRegistryNotEnoughSignatures/, 'one signature');
  const forged = await b.evaluate(async ([who, stranger]) => {
    const { parseManifestFile, parseShared, typedData } = await import('/assets/publish.js');
    const state = parseShared(document.getElementById('publish-link').value);
    const sig = await window.ethereum.request({ method: 'eth_signTypedData_v4', params: [stranger, JSON.stringify(typedData(parseManifestFile(state.payload)))] });
    return JSON.stringify({ ...state, signatures: [{ signer: who, signature: sig }] });
  }, [signers[1], stranger]);
  await b.fill('#publish-paste', forged);
  await b.click('#publish-add');
  // The page recovers each signature's signer (the chain's ecrecover) before it counts.
  await waitText(b, '#publish-status', /not counted: .*the signature is not theirs for this approval/, 'the forged signature');
  await waitText(b, '#publish-count', /^1 of 2 signatures/, 'the count after the forged signature');
  if ((await anvil('eth_blockNumber', [])).result !== blockBefore) fail('a refused publish reached the chain');
  await b.close();

  // 3. The third signer signs from the link and publishes.
  const c = await walletPage(signers[2], link, /signer of Acme Thermostats/);
  await waitText(c, '#publish-count', /^1 of 2 signatures/, 'the link opened by the third signer');
  await c.click('#publish-sign');
  await waitText(c, '#publish-count', /^2 of 2 signatures/, 'the second signature');
  await c.click('#publish-send');
  await waitText(c, '#publish-log', /publish v2: mined in block \d+/, 'the publish');
  await waitText(c, '#publish-status', new RegExp(`release ${releaseId} is published`), 'the status');
  await c.screenshot({ path: `${shots}/publish-published.png`, fullPage: true });
  console.log(`PUBLISHED ${releaseId}`);
  await c.close(); await a.close();

  /**
   * One threshold action through two wallets: `first` fills it in (`fill(page)`), checks it and
   * signs; `second` opens the link, signs and submits; resolves when the status says `doneRe`.
   */
  async function approve(kind, fill, first, second, rolesRe, doneRe) {
    const p = await walletPage(first, url, rolesRe);
    await p.waitForSelector('#publish:not([hidden])', { timeout: 10000 });
    await p.selectOption('#approve-kind', kind);
    // Only the chosen action's fields are shown.
    for (const k of ['publish', 'revoke', 'floor', 'rotate']) {
      if ((await p.isVisible(`#approve-${k}`)) !== (k === kind)) fail(`${kind}: the ${k} fields are ${k === kind ? 'hidden' : 'shown'}`);
    }
    await fill(p);
    // The indexer may still be syncing the signer set of a rotation: check until it agrees.
    for (let i = 0; ; i++) {
      await p.click('#publish-load');
      await p.waitForFunction(() => /checked on chain|refused/.test(document.getElementById('publish-status').textContent), null, { timeout: 30000 });
      const st = await p.textContent('#publish-status');
      if (st.startsWith('checked on chain')) break;
      if (!/wait for it to sync/.test(st) || i > 50) fail(`${kind}: ${st}`);
      await p.waitForTimeout(200);
    }
    await p.click('#publish-sign');
    await waitText(p, '#publish-count', /^1 of 2 signatures/, `${kind}: the first signature`);
    const shared = await p.inputValue('#publish-link');
    await p.close();
    const q = await walletPage(second, shared, /signer of Acme Thermostats/);
    await waitText(q, '#publish-count', /^1 of 2 signatures/, `${kind}: the link`);
    await q.click('#publish-sign');
    await waitText(q, '#publish-count', /^2 of 2 signatures/, `${kind}: the second signature`);
    await q.click('#publish-send');
    await waitText(q, '#publish-log', /mined in block \d+/, `${kind}: the transaction`);
    await waitText(q, '#publish-status', doneRe, `${kind}: the status`);
    return q;
  }
  const signerRe = /signer of Acme Thermostats/;

  // 4a. Raise model 1's floor to 2.
  (await approve('floor', async (p) => { await p.fill('#floor-model', '1'); await p.fill('#floor-version', '2'); },
    signers[2], signers[0], signerRe, /model 1's floor is 2/)).close();
  console.log('FLOOR 2');

  // 4b. Rotate: the second signer out, a new one (anvil's account 8) in, 2 of 3.
  const newcomer = accounts[8];
  const next = [signers[0], signers[2], newcomer];
  const rotated = await approve('rotate', async (p) => {
    await p.fill('#rotate-manufacturer', '1'); await p.fill('#rotate-signers', next.join('\n')); await p.fill('#rotate-threshold', '2');
  }, signers[0], signers[2], signerRe, /has its new signer set/);
  await rotated.close();
  console.log(`ROTATED ${newcomer}`);

  // 4c. The new set revokes version 2: the newcomer and the first signer. The replaced
  // signer is no longer offered to sign.
  const gone = await walletPage(signers[1], url, /roles: auditor$/);
  await gone.close();
  const revoked = await approve('revoke', async (p) => { await p.fill('#revoke-release', releaseId); await p.fill('#revoke-reason', 'drill: key ceremony'); },
    newcomer, signers[0], signerRe, new RegExp(`release ${releaseId} is revoked`));
  await revoked.screenshot({ path: `${shots}/publish-revoked.png`, fullPage: true });
  // The panel on a phone: nothing wider than the screen.
  await checkPhone(revoked, `${shots}/publish-phone.png`);
  await revoked.close();
  console.log(`REVOKED ${releaseId}`);

  // 4d. The new set hands the operator role to anvil's account 4 (paid as itself); its wallet
  // then reads as the manufacturer's operator from chain.
  const heir = accounts[4];
  (await approve('operator', async (p) => { await p.fill('#operator-manufacturer', '1'); await p.fill('#operator-address', heir); },
    newcomer, signers[0], signerRe, /has its new operator/)).close();
  const h = await walletPage(heir, url, /operator of Acme Thermostats \(#1\)/);
  await h.close();
  console.log(`OPERATOR ${heir}`);
  if (errors.flat().length) fail(`page errors: ${errors.flat().join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
}

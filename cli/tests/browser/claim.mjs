// Claiming a device in the dashboard with its signed consent, for cli/tests/claim_browser.rs:
//   node claim.mjs URL RPC OWNER DEVICE_COUNT CLAIM_FILES_JSON SCREENSHOT_DIR
// URL: the dashboard of a paused `otaledger demo` with unclaimed devices whose consent files
// (`claim.json`, written by `device claim-request` for OWNER) are CLAIM_FILES_JSON.
//
// As the owner: the first file checks ("consents to be claimed by you"); a copy naming the
// second device's index (the consent and proof are the first's) passes the page's checks but
// the registry's simulation refuses it and the chain does not move; the real file is claimed:
// mined, the map shows one more device and the roles one more owned; checking it again says
// it is already claimed. As a stranger: the second file is refused (it names another owner).
// Prints "CLAIMED <index>", screenshot, "DONE".
import { readFileSync } from 'node:fs';
import { launch, collectErrors, openFleet, rpcCaller, installTestWallet } from './harness.mjs';

const [url, rpc, owner, countArg, filesArg, shots] = process.argv.slice(2);
const count = Number(countArg);
const files = JSON.parse(filesArg);
const anvil = rpcCaller(rpc);
const fail = (what) => { throw new Error(what); };

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = collectErrors(page);
  await installTestWallet(page, anvil, owner);
  await openFleet(page, url, count);
  const waitText = (p, sel, re, what) => p.waitForFunction(([s, r]) => new RegExp(r).test(document.querySelector(s)?.textContent ?? ''), [sel, re.source], { timeout: 30000 })
    .catch(async () => fail(`${what}: ${sel} says ${JSON.stringify(await p.textContent(sel))}`));
  await page.click('#connect');
  await waitText(page, '#roles', new RegExp(`owner of ${count} devices`), 'the owner\'s roles');
  if (await page.isHidden('#claim')) fail('no claim panel for a connected wallet');

  const first = JSON.parse(readFileSync(files[0], 'utf8'));
  const second = JSON.parse(readFileSync(files[1], 'utf8'));
  await page.setInputFiles('#claim-file', files[0]);
  await page.click('#claim-load');
  await waitText(page, '#claim-status', new RegExp(`device ${first.deviceIndex} .*consents to be claimed by you`), 'the claim file');

  // Another device's index with this device's consent: the registry refuses it.
  await page.setInputFiles('#claim-file', []);
  await page.fill('#claim-text', `${JSON.stringify({ ...first, deviceIndex: second.deviceIndex }, null, 2)}\n`);
  await page.click('#claim-load');
  await waitText(page, '#claim-status', /consents to be claimed by you/, 'the retargeted claim passes the page');
  const before = (await anvil('eth_blockNumber', [])).result;
  await page.click('#claim-send');
  await waitText(page, '#claim-log', /failed: .*UpdateRegistry(InvalidProof|InvalidDeviceSignature|DeviceNotInBatch)/, 'the retargeted claim');
  if ((await anvil('eth_blockNumber', [])).result !== before) fail('a refused claim reached the chain');

  // The real one.
  await page.fill('#claim-text', '');
  await page.setInputFiles('#claim-file', files[0]);
  await page.click('#claim-load');
  await waitText(page, '#claim-status', /consents to be claimed by you/, 'the claim file again');
  await page.click('#claim-send');
  await waitText(page, '#claim-log', /claim of device \d+: mined in block \d+/, 'the claim');
  await page.waitForFunction((n) => document.getElementById('map').dataset.drawn === String(n), count + 1, { timeout: 30000 })
    .catch(async () => fail(`the map: ${await page.textContent('#summary')}`));
  await waitText(page, '#roles', new RegExp(`owner of ${count + 1} devices`), 'the roles after the claim');
  await page.click('#claim-load');
  await waitText(page, '#claim-status', new RegExp(`device ${first.deviceIndex} is already claimed`), 'a second claim');
  await page.screenshot({ path: `${shots}/claim-claimed.png`, fullPage: true });

  // A stranger with the owner's consent file.
  const stranger = (await anvil('eth_accounts', [])).result[9];
  await page.evaluate((a) => window.__testWallet.setAccount(a), stranger);
  await waitText(page, '#roles', /roles: auditor$/, 'the stranger\'s roles');
  await page.setInputFiles('#claim-file', files[1]);
  await page.click('#claim-load');
  await waitText(page, '#claim-status', /claim refused: the device consents to be claimed by 0x[0-9a-f]{40}, not by/, 'another owner\'s claim file');
  if (!(await page.isDisabled('#claim-send'))) fail('claim offered to a stranger');
  console.log(`CLAIMED ${first.deviceIndex}`);
  if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
}

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
// Prints "CLAIMED <index>". Then the stranger sets up a manufacturer in the page: a name with
// U+202E is refused before anything is sent; "Beta Devices" (1 of 2 signers) is registered and
// the roles show its operator once the indexer has it; as its operator, model "beta-one" is
// defined. Prints "REGISTERED <name>", screenshot, "DONE".
import { readFileSync } from 'node:fs';
import { launch, collectErrors, openFleet, rpcCaller, installTestWallet, checkPhone } from './harness.mjs';

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

  // The stranger registers a manufacturer and defines a model.
  const accounts = (await anvil('eth_accounts', [])).result;
  if (await page.isHidden('#setup')) fail('no setup panel for a connected wallet');
  if (!(await page.isHidden('#model-box'))) fail('model definition offered to an account that operates nothing');
  await page.click('details#register-box > summary');
  await page.fill('#register-name', 'Beta\u202eseciveD');
  await page.fill('#register-signers', `${stranger}\n${accounts[8]}`);
  await page.fill('#register-threshold', '1');
  const quiet = (await anvil('eth_blockNumber', [])).result;
  await page.click('#register-send');
  await waitText(page, '#register-status', /not registered: name holds U\+202E/, 'a bidi name');
  if ((await anvil('eth_blockNumber', [])).result !== quiet) fail('a refused registration reached the chain');
  await page.fill('#register-name', 'Beta Devices');
  await page.click('#register-send');
  await waitText(page, '#setup-log', /register Beta Devices: mined in block \d+/, 'the registration');
  await waitText(page, '#roles', /operator of Beta Devices \(#2\)/, 'the new operator\'s roles');
  await page.waitForSelector('#model-box:not([hidden])', { timeout: 10000 });
  await page.click('details#model-box > summary');
  await page.selectOption('#model-manufacturer', '2');
  await page.fill('#model-name', 'beta-one');
  await page.click('#model-send');
  await waitText(page, '#setup-log', /define model beta-one: mined in block \d+/, 'the model');
  await page.locator('#setup').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/setup-registered.png`, fullPage: true });
  await checkPhone(page, `${shots}/setup-phone.png`);
  console.log('REGISTERED Beta Devices');
  if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
}

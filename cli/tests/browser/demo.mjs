// Drives the dashboard of a paused `otaledger demo --pause-before-purchase` in Debian's
// Chromium through playwright-core, for cli/tests/demo_browser.rs:
//   node demo.mjs URL DEVICE_COUNT BUYERS SCREENSHOT_DIR
// Protocol on stdout/stdin: prints "READY" once the map shows DEVICE_COUNT nodes, the
// summary counts them and every one is red (data model and canvas pixel); waits for "GO"
// (the test let the demo buy and run its fleet round), then, without a reload, waits until
// exactly BUYERS nodes are green and the rest still red, prints "GREEN <json list of
// indices>", opens a green device's audit trail (purchase and install report), saves
// desktop (1280x800) and phone (390x844) screenshots and prints "DONE".
// Any failure exits non-zero with the reason.
import { launch, stdinLines, collectErrors, openFleet, shows, waitForNodes } from './harness.mjs';

const [url, countArg, buyersArg, shots] = process.argv.slice(2);
const count = Number(countArg), buyers = Number(buyersArg);
const lines = stdinLines();
const nextLine = lines.next;

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = collectErrors(page);
  await openFleet(page, url, count);
  const waitFor = (what, ok) => waitForNodes(page, what, ok);
  await waitFor('all red', (ns) => ns.length === count && ns.every((n) => shows(n, 'red')));
  await page.evaluate(() => { window.notReloaded = true; });
  console.log('READY');
  if ((await nextLine()) !== 'GO') throw new Error('expected GO');
  const after = await waitFor(`${buyers} green and the rest red`, (ns) => ns.length === count
    && ns.filter((n) => shows(n, 'green')).length === buyers
    && ns.every((n) => shows(n, 'green') || shows(n, 'red')));
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded');
  const green = after.filter((n) => n.status === 'green').map((n) => n.index).sort((a, b) => a - b);
  console.log(`GREEN ${JSON.stringify(green)}`);
  await page.screenshot({ path: `${shots}/demo-desktop.png` });
  // A bought device's audit trail, opened by clicking its node.
  const watch = green[0];
  const at = after.find((n) => n.index === watch);
  await page.mouse.click(at.x, at.y);
  await page.waitForSelector('#trail-title', { timeout: 10000 });
  if (!(await page.textContent('#trail-title')).includes(`Device ${watch}`)) throw new Error('wrong device opened');
  await page.waitForFunction(() => document.getElementById('trail').textContent.includes('installed'), null, { timeout: 10000 })
    .catch(async () => { throw new Error(`trail lacks the install: ${await page.textContent('#trail')}`); });
  const trail = await page.textContent('#trail');
  for (const kind of ['provisioned', 'claimed', 'purchased', 'report', 'installed']) if (!trail.includes(kind)) throw new Error(`trail lacks ${kind}: ${trail}`);
  await page.screenshot({ path: `${shots}/demo-trail.png` });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#tab-map');
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/demo-phone.png` });
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
  lines.close();
}

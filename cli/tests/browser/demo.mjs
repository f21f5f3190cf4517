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
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const [url, countArg, buyersArg, shots] = process.argv.slice(2);
const count = Number(countArg), buyers = Number(buyersArg);
const COLOURS = { red: [0xd6, 0x28, 0x28], green: [0x2a, 0x9d, 0x3f] };
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
  // Every request answers, except /v1/alerts where the indexer has no alerts endpoint (the tab stays hidden).
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/v1/alerts')) errors.push(`${r.url()}: ${r.status()}`); });
  await page.goto(url);
  await page.waitForFunction((n) => document.getElementById('map').dataset.drawn === String(n), count, { timeout: 30000 });
  const summary = await page.textContent('#summary');
  if (!summary.startsWith(`${count} devices`)) throw new Error(`node count: ${summary}`);
  // Every device: its status in the page's model and the canvas pixel at its centre.
  const nodes = () => page.evaluate(async () => {
    const { byIndex } = await import('/assets/app.js');
    const ctx = document.getElementById('map').getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    return [...byIndex.values()].map((d) => ({
      index: d.index, status: d.status,
      pixel: d.sx === undefined ? null : [...ctx.getImageData(Math.round(d.sx * dpr), Math.round(d.sy * dpr), 1, 1).data.slice(0, 3)],
    }));
  });
  const is = (px, name) => px && px.every((v, i) => Math.abs(v - COLOURS[name][i]) <= 2);
  const shows = (n, name) => n.status === name && is(n.pixel, name);
  const waitFor = async (what, ok) => {
    let last;
    for (let i = 0; i < 600; i++) { last = await nodes(); if (ok(last)) return last; await page.waitForTimeout(100); }
    throw new Error(`never ${what}: ${JSON.stringify(last)}`);
  };
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
  const at = await page.evaluate(async (index) => {
    const { byIndex } = await import('/assets/app.js');
    const d = byIndex.get(index); const r = document.getElementById('map').getBoundingClientRect();
    return [r.left + d.sx, r.top + d.sy];
  }, watch);
  await page.mouse.click(at[0], at[1]);
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

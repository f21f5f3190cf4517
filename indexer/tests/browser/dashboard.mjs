// Drives the dashboard in Debian's Chromium through playwright-core, for
// indexer/tests/dashboard.rs: node dashboard.mjs URL DEVICE_COUNT WATCH_INDEX SCREENSHOT_DIR
// Protocol on stdout/stdin: prints "READY" once the map shows every device
// and WATCH_INDEX is red, waits for "GO" (the test bought it on chain), then
// waits for it to turn amber without a reload, opens its audit trail, checks
// the releases and manufacturers views, saves screenshots and prints "DONE". Any failure exits non-zero with the reason.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const [url, count, watch, shots] = process.argv.slice(2);
const COLOURS = { red: [0xd6, 0x28, 0x28], amber: [0xf4, 0xa1, 0x00] };
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
  // Every request answers, except /v1/alerts where the indexer has no alerts endpoint (the tab
  // stays hidden) and /v1/auth/session, which this dashboard, served without sign-in, lacks
  // (the sign-in controls stay hidden).
  const expected = (r) => r.url().endsWith('/v1/alerts') || (r.url().endsWith('/v1/auth/session') && r.status() === 404);
  page.on('response', (r) => { if (r.status() >= 400 && !expected(r)) errors.push(`${r.url()}: ${r.status()}`); });
  await page.goto(url);
  await page.waitForFunction((n) => document.getElementById('map').dataset.drawn === n, count, { timeout: 20000 });
  const pixel = () => page.evaluate(async (index) => {
    const { byIndex } = await import('/assets/app.js');
    const d = byIndex.get(index); const c = document.getElementById('map');
    if (d?.sx === undefined) return null;
    const dpr = window.devicePixelRatio || 1;
    return [...c.getContext('2d').getImageData(Math.round(d.sx * dpr), Math.round(d.sy * dpr), 1, 1).data.slice(0, 3)];
  }, Number(watch));
  const is = (px, name) => px && px.every((v, i) => Math.abs(v - COLOURS[name][i]) <= 2);
  const waitColour = async (name) => {
    for (let i = 0; i < 200; i++) { if (is(await pixel(), name)) return; await page.waitForTimeout(100); }
    throw new Error(`device ${watch} never turned ${name}: pixel ${await pixel()}`);
  };
  await waitColour('red');
  await page.evaluate(() => { window.notReloaded = true; });
  console.log('READY');
  if ((await nextLine()) !== 'GO') throw new Error('expected GO');
  await waitColour('amber');
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded');
  // Open the device's audit trail by clicking its node.
  const at = await page.evaluate(async (index) => {
    const { byIndex } = await import('/assets/app.js');
    const d = byIndex.get(index); const r = document.getElementById('map').getBoundingClientRect();
    return [r.left + d.sx, r.top + d.sy];
  }, Number(watch));
  await page.screenshot({ path: `${shots}/dashboard-desktop.png` });
  await page.mouse.click(at[0], at[1]);
  await page.waitForSelector('#trail-title', { timeout: 10000 });
  const trail = await page.textContent('#trail');
  for (const kind of ['provisioned', 'claimed', 'purchased']) if (!trail.includes(kind)) throw new Error(`trail lacks ${kind}: ${trail}`);
  if (!(await page.textContent('#trail-title')).includes(`Device ${watch}`)) throw new Error('wrong device opened');
  await page.screenshot({ path: `${shots}/dashboard-trail.png` });
  // Releases (three, one bought twice over, two revoked) and the manufacturer's signer history.
  await page.click('#tab-releases');
  await page.waitForFunction(() => document.querySelectorAll('#view-releases tbody tr').length === 3, null, { timeout: 10000 });
  const releases = await page.textContent('#view-releases');
  if (!releases.includes('emergency: emergency') || !releases.includes('bad build 1')) throw new Error(`revocations missing: ${releases}`);
  await page.click('#tab-manufacturers');
  await page.waitForFunction(() => document.querySelectorAll('#view-manufacturers tbody tr').length === 2, null, { timeout: 10000 });
  if (!(await page.textContent('#view-manufacturers')).includes('Acme')) throw new Error('manufacturer missing');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#tab-map');
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/dashboard-phone.png` });
  // Every control has an accessible name.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, select, input')]
    .filter((e) => !e.hidden && !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels?.length)).map((e) => e.outerHTML));
  if (unnamed.length) throw new Error(`controls without names: ${unnamed}`);
  if (!(await page.isHidden('#session'))) throw new Error('sign-in offered by a dashboard served without it');
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  console.log('DONE');
} finally {
  await browser.close();
  lines.close();
}

import { execa } from 'execa';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/**
 * Generates the HTML report of a run folder with the real CLI, then opens it in headless Debian
 * Chromium: prints generation time, file size, console errors, network requests and drawn charts,
 * and saves screenshots: the top of the page, and the last workload section (its charts).
 * Usage: node dist/bench/report-check.js RUN_DIR [SCREENSHOT.png [SECTION.png]]
 */
const [dir, shot, sectionShot] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node dist/bench/report-check.js RUN_DIR [SCREENSHOT.png]\n');
  process.exit(2);
}
const report = join(resolve(dir), 'report.html');
const t0 = performance.now();
await execa(process.execPath, [join(import.meta.dirname ?? '.', '..', '..', 'bin', 'fwbench.js'), 'report', dir, '--out', report], { stdio: 'inherit' });
const generationMs = performance.now() - t0;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const url = pathToFileURL(report).href;
const requests: string[] = [];
const errors: string[] = [];
page.on('request', (r) => void (r.url() !== url && requests.push(r.url())));
page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
page.on('pageerror', (e) => void errors.push(e.message));
await page.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));
const t1 = performance.now();
await page.goto(url, { waitUntil: 'load' });
const loadMs = performance.now() - t1;
const boxes = await Promise.all((await page.$$('figure.chart svg')).map((svg) => svg.boundingBox()));
if (shot) await page.screenshot({ path: shot, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 3200 } });
if (sectionShot) await page.locator('section[id^="workload-"]').last().screenshot({ path: sectionShot });
await browser.close();
const summary = {
  report,
  bytes: statSync(report).size,
  generationMs: Math.round(generationMs),
  chromiumLoadMs: Math.round(loadMs),
  consoleErrors: errors,
  networkRequests: requests,
  charts: boxes.length,
  chartsWithZeroSize: boxes.filter((b) => !b || b.width === 0 || b.height === 0).length,
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exitCode = errors.length || requests.length || summary.chartsWithZeroSize ? 1 : 0;

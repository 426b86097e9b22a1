import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../harness/stats/bootstrap.js';
import { tukeyBox, type DistributionSummary } from '../harness/report/distribution.js';
import { loadRun } from '../harness/results/read.js';
import type { Run } from '../harness/results/schema.js';
import { flagOutliers } from '../harness/stats/summary.js';
import { fwbench } from './helpers.js';
import { launchChromium, withSamples, writeRunDir } from './report-helpers.js';

const SAMPLES = 120_000;

/**
 * A run as long as the default run's longest cells: the stored v1 fixture's cell, and the same
 * cell relabelled as a second engine, each with 120,000 samples (the fixture's samples repeated
 * with seeded 5 % jitter), 2,000 warm-up iterations and their outliers flagged.
 */
function longRun(): Run {
  const fixture = loadRun('tests/fixtures/runs/v0.1.0-34a4747');
  const cell = fixture.cells[0]!;
  const rng = createRng(14);
  const long = withSamples(
    { ...fixture, cells: [cell, { ...cell, id: cell.id.replace('onnxruntime/all', 'tfjs-wasm/eager'), engine: 'tfjs-wasm', mode: 'eager' }] },
    (s) => Array.from({ length: SAMPLES }, (_, i) => s[i % s.length]! * (1 + 0.05 * rng())),
  );
  return { ...long, cells: long.cells.map((c) => ({ ...c, warmupMs: c.samplesMs!.slice(0, 2_000), outliers: flagOutliers(c.samplesMs!) })) };
}

describe('the HTML report carries summaries, not raw samples', () => {
  let browser: Browser;
  let run: Run;
  let lean: { path: string; html: string };
  let full: { path: string; html: string };

  beforeAll(async () => {
    browser = await launchChromium();
    run = longRun();
    const dir = writeRunDir(run);
    const report = async (name: string, extra: string[]): Promise<{ path: string; html: string }> => {
      const path = join(dir, name);
      const r = await fwbench(['report', dir, '--out', path, ...extra]);
      expect(r.exitCode, r.stderr).toBe(0);
      return { path, html: readFileSync(path, 'utf8') };
    };
    lean = await report('report.html', []);
    full = await report('report-full.html', ['--embed-samples']);
  });
  afterAll(async () => {
    await browser?.close();
  });

  const open = async (path: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(pathToFileURL(path).href, { waitUntil: 'load' });
    return page;
  };
  const embedded = async (page: Page): Promise<Run> => JSON.parse((await page.locator('#fwbench-run').textContent())!) as Run;

  it('stays under 1.5 MB with 120,000 samples per cell, a small fraction of the page with --embed-samples', () => {
    const sizes = { lean: statSync(lean.path).size, full: statSync(full.path).size, runJson: statSync(join(lean.path, '..', 'run.json')).size };
    expect(sizes.lean).toBeLessThanOrEqual(1.5 * 2 ** 20);
    expect(sizes.full).toBeGreaterThan(sizes.runJson);
    expect(sizes.lean * 10).toBeLessThan(sizes.full);
  });

  it('embeds quantiles and the Tukey box of each cell, computed from every raw sample; --embed-samples embeds run.json whole', async () => {
    const page = await open(lean.path);
    const cells = (await embedded(page)).cells as Array<Run['cells'][number] & { samplesMsSummary: DistributionSummary; warmupMsSummary: DistributionSummary }>;
    expect(await page.locator('#raw-samples').innerText()).toMatch(/Raw samples are in the run folder's run\.json.*--embed-samples/);
    cells.forEach((c, i) => {
      const raw = run.cells[i]!;
      expect(c).not.toHaveProperty('samplesMs');
      expect(c).not.toHaveProperty('warmupMs');
      expect(c.outliers).toEqual({ mild: raw.outliers!.mild, severe: raw.outliers!.severe, mad: raw.outliers!.mad });
      expect(c.samplesMsSummary.n).toBe(SAMPLES);
      expect(c.samplesMsSummary.tukeyBoxMs).toEqual(tukeyBox(raw.samplesMs!));
      expect(c.samplesMsSummary.quantilesMs.p0).toBe(raw.stats!.minMs);
      expect(c.samplesMsSummary.quantilesMs.p100).toBe(raw.stats!.maxMs);
      expect(Object.keys(c.samplesMsSummary.quantilesMs)).toContain('p99.9');
      expect(c.warmupMsSummary.n).toBe(2_000);
    });
    await page.close();

    const fullPage = await open(full.path);
    expect(await embedded(fullPage)).toEqual(JSON.parse(JSON.stringify(run)));
    expect(await fullPage.locator('#raw-samples').innerText()).toMatch(/every raw sample included/);
    await fullPage.close();
  });

  it('Chromium draws every chart from the summaries', async () => {
    const page = await open(lean.path);
    // One workload x (latency, throughput, memory, GFLOP/s, cold start).
    const charts = page.locator('figure.chart svg');
    expect(await charts.count()).toBe(5);
    for (const svg of await charts.all()) {
      const box = (await svg.boundingBox())!;
      expect(box.width).toBeGreaterThan(100);
      expect(box.height).toBeGreaterThan(100);
    }
    // The latency chart's SVG is the same whether the page embeds the samples or not.
    const latency = (html: string): string => html.match(/<figure class="chart" id="chart-0-latency">[\s\S]*?<\/figure>/)![0];
    expect(latency(lean.html)).toBe(latency(full.html));
    expect(latency(lean.html)).toMatch(/<path/);
    await page.close();
  });

  it('--embed-samples with a format other than html is a one-line error, exit 2', async () => {
    const r = await fwbench(['report', join(lean.path, '..'), '--format', 'md', '--embed-samples', '--out', '-']);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--embed-samples: only --format html embeds the run/)]);
  });

  it('at 1280 px the cell table scrolls inside its own box and its first column stays in view', async () => {
    const page = await open(lean.path);
    const scroller = page.locator('.scroll:has(#cells)');
    const doc = (await page.evaluate('({ clientWidth: document.documentElement.clientWidth, scrollWidth: document.documentElement.scrollWidth })')) as {
      clientWidth: number;
      scrollWidth: number;
    };
    const box = (await scroller.boundingBox())!;
    expect(doc.scrollWidth).toBeLessThanOrEqual(doc.clientWidth);
    expect(box.x + box.width).toBeLessThanOrEqual(doc.clientWidth);
    const overflow = await scroller.evaluate((el) => el.scrollWidth - el.clientWidth);
    expect(overflow).toBeGreaterThan(0);

    const firstCell = page.locator('#cells tbody tr:first-child td:first-child');
    const secondCell = page.locator('#cells tbody tr:first-child td:nth-child(2)');
    const firstHead = page.locator('#cells thead th:first-child');
    await firstCell.scrollIntoViewIfNeeded();
    const before = { cell: (await firstCell.boundingBox())!, second: (await secondCell.boundingBox())!, head: (await firstHead.boundingBox())! };
    await scroller.evaluate((el) => el.scrollTo({ left: el.scrollWidth }));
    const after = { cell: (await firstCell.boundingBox())!, second: (await secondCell.boundingBox())!, head: (await firstHead.boundingBox())! };
    // The other columns moved left by the scroll; the first column (cells and header) did not.
    expect(after.second.x).toBeLessThan(before.second.x - overflow / 2);
    expect(after.cell.x).toBe(before.cell.x);
    expect(after.head.x).toBe(before.head.x);
    expect(after.cell.x).toBeGreaterThanOrEqual(box.x);
    // Nothing scrolled over it: the element on top at its centre (in the viewport) is the cell itself.
    const onTop = await page.evaluate(
      `document.elementFromPoint(${after.cell.x + after.cell.width / 2}, ${after.cell.y + after.cell.height / 2})?.closest('td')?.textContent`,
    );
    expect(onTop).toBe(run.cells[0]!.id);
    await page.close();
  });
});

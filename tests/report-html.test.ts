import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from '../harness/results/schema.js';
import { fwbench, tempDir } from './helpers.js';
import { HOSTILE, launchChromium, realRun, writeRunDir } from './report-helpers.js';

/** A real run with hostile strings planted where reports print text: host name, fingerprint, command, a mode label, an engine's reason, a skipped cell's reason and fix. */
function plantHostile(run: Run): Run {
  const victim = run.cells.filter((c) => c.engine === 'tfjs-wasm' && c.workload === 'rnn');
  const template = run.cells[0]!;
  return {
    ...run,
    host: { ...run.host, hostname: HOSTILE.attribute },
    hostFingerprint: `${HOSTILE.svg} host`,
    command: [...run.command, HOSTILE.scriptEnd],
    engines: { ...run.engines, torch: { available: false, framework: 'PyTorch', reason: HOSTILE.svg, fix: HOSTILE.script } },
    cells: [
      ...run.cells.map((c) => (victim.includes(c) ? { ...c, mode: HOSTILE.script } : c)),
      {
        id: 'torch/x/cpu/rnn/tiny/b1',
        engine: 'torch',
        framework: 'PyTorch',
        mode: HOSTILE.attribute,
        device: 'cpu',
        workload: 'rnn',
        preset: template.preset,
        params: victim[0]!.params,
        batchSize: 1,
        seed: 0,
        status: 'skipped',
        reason: HOSTILE.scriptEnd,
        fix: HOSTILE.script,
        flops: 1,
        startedAt: template.startedAt,
        durationMs: 0,
      },
    ],
  };
}

describe('fwbench report --format html in real headless Chromium', () => {
  let browser: Browser;
  let run: Run;
  let html: string;
  let reportPath: string;
  let generationMs: number;

  beforeAll(async () => {
    browser = await launchChromium();
    run = plantHostile((await realRun()).run);
    const dir = writeRunDir(run);
    reportPath = join(dir, 'report.html');
    const t0 = performance.now();
    const r = await fwbench(['report', dir]);
    generationMs = performance.now() - t0;
    expect(r.exitCode, r.stderr).toBe(0);
    html = readFileSync(reportPath, 'utf8');
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('opens with zero console errors and zero network requests; every chart is drawn; hostile strings stay text', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const url = pathToFileURL(reportPath).href;
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (req) => {
      if (req.url() !== url) requests.push(req.url());
    });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    // Anything but the report itself is answered by an abort, so a leak is seen and never reaches out.
    await page.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));
    await page.goto(url, { waitUntil: 'load' });

    const charts = await page.$$('figure.chart svg');
    // Two workloads with ok cells x (latency, throughput, memory, GFLOP/s, cold start).
    expect(charts).toHaveLength(10);
    for (const svg of charts) {
      const box = await svg.boundingBox();
      expect(box!.width).toBeGreaterThan(100);
      expect(box!.height).toBeGreaterThan(100);
    }

    const seen = {
      pwned: await page.evaluate('window.__pwned'),
      injected: await page.locator('#injected').count(),
      images: await page.locator('img').count(),
      scripts: await page.locator('script').count(),
      text: await page.locator('body').innerText(),
      embedded: JSON.parse((await page.locator('#fwbench-run').textContent())!) as unknown,
      chartText: (await page.locator('figure.chart svg').allTextContents()).join('\n'),
    };
    expect(seen.pwned).toBeUndefined();
    expect(seen.injected).toBe(0);
    expect(seen.images).toBe(0);
    expect(seen.scripts).toBe(2);
    for (const s of Object.values(HOSTILE)) expect(seen.text).toContain(s);
    expect(seen.chartText).toContain(`tfjs-wasm/${HOSTILE.script}`);
    // The embedded copy is run.json with each cell's raw samples replaced by their summaries.
    const plain = JSON.parse(JSON.stringify(run)) as Run;
    const embedded = seen.embedded as Omit<Run, 'cells'> & {
      cells: Array<Run['cells'][number] & { samplesMsSummary?: { n: number }; warmupMsSummary?: { n: number } }>;
    };
    const withoutSamples = ({ samplesMs, warmupMs, outliers, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;
    const withoutSummaries = ({ samplesMsSummary, warmupMsSummary, outliers, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;
    expect({ ...embedded, cells: [] }).toEqual({ ...plain, cells: [] });
    expect(embedded.cells.map(withoutSummaries)).toEqual(plain.cells.map(withoutSamples));
    embedded.cells.forEach((c, i) => {
      expect(c.samplesMsSummary?.n).toBe(plain.cells[i]!.samplesMs?.length);
      expect(c.warmupMsSummary?.n).toBe(plain.cells[i]!.warmupMs?.length);
      expect(c).not.toHaveProperty('samplesMs');
      const o = plain.cells[i]!.outliers;
      expect(c.outliers).toEqual(o ? { mild: o.mild, severe: o.severe, mad: o.mad } : undefined);
    });
    expect(seen.text).toContain("Raw samples are in the run folder's run.json, not in this page");

    // The sortable tables sort: latency column of the cell table, ascending then descending.
    const medians = async (): Promise<number[]> => {
      const values = await Promise.all((await page.locator('#cells tbody td:nth-child(4)').all()).map((td) => td.getAttribute('data-v')));
      return values.filter((v) => v !== '').map(Number);
    };
    await page.click('#cells th:nth-child(4)');
    const asc = await medians();
    expect(asc).toEqual([...asc].sort((a, b) => a - b));
    await page.click('#cells th:nth-child(4)');
    expect(await medians()).toEqual([...asc].reverse());

    const shot = join(tempDir(), 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(50_000);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  });

  it('is one self-contained file: no external reference, run.json embedded safely, made in seconds', () => {
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:|\/\/)/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).toContain("default-src 'none'");
    // The only "</script>" sequences are the two closing tags of the page's own scripts.
    expect(html.match(/<\/script>/gi)).toHaveLength(2);
    expect(html).not.toContain(HOSTILE.svg);
    for (const id of ['hosts', 'overview', 'cold-start', 'parity', 'claims', 'not-ok']) expect(html).toContain(`<section id="${id}">`);
    // The planted skipped cell is listed with its reason and fix (escaped).
    expect(html).toContain('&lt;/script&gt;&lt;script&gt;window.__pwned=3&lt;/script&gt;');
    expect(generationMs).toBeLessThan(30_000);
  });
});

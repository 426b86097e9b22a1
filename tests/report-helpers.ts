import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { RunSchema, type Run } from '../harness/results/schema.js';
import { summarize } from '../harness/stats/summary.js';
import { fwbench, tempDir } from './helpers.js';

/** Reads DIR/run.json through the schema. */
export const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));

/** Writes a run as a run folder (run.json only: what reports, compare and merge read). */
export function writeRunDir(run: Run): string {
  const dir = tempDir('fwbench-report-');
  writeFileSync(join(dir, 'run.json'), JSON.stringify(RunSchema.parse(run)));
  return dir;
}

/**
 * A real run for the report tests: ONNX Runtime and TensorFlow.js (wasm), two tiny workloads, two
 * batch sizes, 3 processes per cell and at least 200 samples in each, so intervals are narrow
 * enough to see a 20 % change.
 */
export async function realRun(): Promise<{ dir: string; run: Run }> {
  const dir = tempDir();
  const r = await fwbench([
    'run',
    '--engines',
    'onnxruntime,tfjs-wasm',
    '--workloads',
    'rnn,transformer',
    '--size',
    'tiny',
    '--batch-sizes',
    '1,2',
    '--replicates',
    '3',
    '--min-samples',
    '200',
    '--min-time',
    '100',
    '--max-time',
    '3000',
    '--warmup-max-time',
    '200',
    '--out',
    dir,
  ]);
  if (r.exitCode !== 0) throw new Error(`fwbench run failed (${r.exitCode}): ${r.stderr}`);
  return { dir, run: readRun(dir) };
}

/** The same run with every ok cell's samples transformed (statistics, throughput and GFLOP/s recomputed). */
export function withSamples(run: Run, f: (samplesMs: number[]) => number[]): Run {
  return {
    ...run,
    cells: run.cells.map((c) => {
      if (c.status !== 'ok' || !c.samplesMs) return c;
      const samplesMs = f(c.samplesMs);
      const stats = summarize(samplesMs);
      return { ...c, samplesMs, stats, throughput: c.batchSize / (stats.medianMs / 1000), gflops: c.flops / (stats.medianMs / 1000) / 1e9 };
    }),
  };
}

/** Strings that would run script, add elements or break out of <script>/<svg> if not escaped. */
export const HOSTILE = {
  script: '<script>window.__pwned=1</script>',
  attribute: `"'><img src=x onerror="window.__pwned=2">`,
  svg: '</svg><b id="injected">x</b>',
  scriptEnd: '</script><script>window.__pwned=3</script>',
} as const;

const CHROMIUM = '/usr/bin/chromium';
// environment.md's recipe; Playwright adds --headless and a fresh profile of its own.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Real headless Chromium (Debian's), to open reports in. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

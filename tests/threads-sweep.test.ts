import { describe, expect, it } from 'vitest';
import { compareRuns } from '../harness/report/compare.js';
import { DEFAULT_MEASURE } from '../harness/worker/measure.js';
import { buildModel, cellKey, cellThreads } from '../harness/report/model.js';
import { RunConfigSchema, type RunConfig } from '../harness/results/schema.js';
import { planCells } from '../harness/run/plan.js';
import { fwbench, QUICK, tempDir } from './helpers.js';
import { readRun } from './report-helpers.js';

const config: RunConfig = {
  engines: ['onnxruntime', 'tfjs-wasm'],
  workloads: ['rnn'],
  preset: { rnn: 'tiny' },
  batchSizes: [1, 4],
  sets: [],
  device: 'cpu',
  threads: [1, 2],
  seed: 0,
  measure: DEFAULT_MEASURE,
  cellTimeoutMs: 1000,
};

describe('--threads as a matrix dimension: planning and the config field', () => {
  it('plans every engine/mode/batch at each thread count, with the count in the id and the planned cell', () => {
    const cells = planCells(config);
    expect(cells).toHaveLength(2 * 2 * 2);
    expect(cells.map((c) => c.id)).toContain('onnxruntime/all/cpu/rnn/tiny/b4/t2');
    expect(cells.filter((c) => c.threads === 1)).toHaveLength(4);
    expect(new Set(cells.map((c) => c.id)).size).toBe(cells.length);
    // Thread counts sit inside a (workload, batch) group, so their replicates interleave with the engines'.
    expect(cells.slice(0, 4).map((c) => `${c.engine}/b${c.batchSize}/t${c.threads}`)).toEqual([
      'onnxruntime/b1/t1',
      'onnxruntime/b1/t2',
      'tfjs-wasm/b1/t1',
      'tfjs-wasm/b1/t2',
    ]);
  });

  it('config.threads is a list of positive counts; a single number (older run.json files) reads as a list of one', () => {
    expect(RunConfigSchema.parse({ ...config, threads: 2 }).threads).toEqual([2]);
    expect(RunConfigSchema.parse(config).threads).toEqual([1, 2]);
    expect(RunConfigSchema.safeParse({ ...config, threads: [] }).success).toBe(false);
    expect(RunConfigSchema.safeParse({ ...config, threads: [0] }).success).toBe(false);
    expect(RunConfigSchema.safeParse({ ...config, threads: 1.5 }).success).toBe(false);
  });
});

describe('fwbench run --threads 1,2 (real ONNX Runtime), then compare, report and merge match cells by threads', () => {
  it('records each cell at its thread count with the effective ORT threads, and pairs only equal counts', async () => {
    const dir = tempDir();
    const r = await fwbench(['run', '--engines', 'onnxruntime', '--workloads', 'rnn', '--batch-sizes', '1', '--threads', '1,2', ...QUICK, '--out', dir]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = readRun(dir);
    expect(run.config.threads).toEqual([1, 2]);
    expect(run.cells.map((c) => [c.id, c.threads, c.status, c.settings?.intraOpNumThreads])).toEqual([
      ['onnxruntime/all/cpu/rnn/tiny/b1/t1', 1, 'ok', 1],
      ['onnxruntime/all/cpu/rnn/tiny/b1/t2', 2, 'ok', 2],
    ]);
    // Each count is judged against the peak measured at that count.
    expect(run.peaks?.map((p) => p.threads).sort()).toEqual([1, 2]);
    for (const c of run.cells) expect(c.fractionOfPeak! * run.peaks!.find((p) => p.threads === c.threads)!.gflops).toBeCloseTo(c.gflops!, 6);

    const cmp = compareRuns(run, run, { thresholdPct: 5 });
    expect(cmp.pairs.map((p) => [p.threads, p.ratio])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    // The same cell at another thread count is a different cell: it does not pair.
    const only2 = { ...run, cells: run.cells.filter((c) => c.threads === 2) };
    const mixed = compareRuns(run, { ...only2, cells: only2.cells.map((c) => ({ ...c, threads: 1 })) }, { thresholdPct: 5 });
    expect(mixed.pairs).toHaveLength(1);
    expect(mixed.pairs[0]!.threads).toBe(1);

    // An older record without cell threads takes its run's single count.
    const old = { ...run, config: { ...run.config, threads: [2] }, cells: only2.cells.map(({ threads: _t, ...c }) => c) };
    expect(cellThreads(old, old.cells[0]!)).toBe(2);
    expect(cellKey(old.cells[0]!, cellThreads(old, old.cells[0]!))).toBe(cellKey(only2.cells[0]!, 2));
    expect(compareRuns(only2, old, { thresholdPct: 5 }).pairs).toHaveLength(1);

    // Report sections are per thread count, so the fastest cell is chosen among equal counts.
    const model = buildModel(run);
    expect(model.sections.map((s) => [s.threads, s.groups[0]!.cells.length, s.groups[0]!.cells[0]!.fastest])).toEqual([
      [1, 1, true],
      [2, 1, true],
    ]);
    const md = await fwbench(['report', dir, '--format', 'md', '--out', '-']);
    expect(md.stdout).toMatch(/rnn\/tiny \(cpu, 1 threads\)/);
    expect(md.stdout).toMatch(/rnn\/tiny \(cpu, 2 threads\)/);
  }, 180_000);
});

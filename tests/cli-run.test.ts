import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunSchema, type Run } from '../harness/results/schema.js';
import { expectOkCells, fwbench, QUICK, tempDir } from './helpers.js';

const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));

describe('fwbench run on the npm-only engines (real ONNX Runtime and TensorFlow.js)', () => {
  // Every mode of every engine on every family, with the run's outputs (progress, summary,
  // cells.jsonl) and each cell's figures, is in conformance.test.ts.

  it('runs odd sizes given through --set, and --json prints only run.json on stdout', async () => {
    const out = tempDir();
    const r = await fwbench([
      'run',
      '--engines',
      'onnxruntime,tfjs-wasm',
      '--workloads',
      'rnn,transformer,cnn',
      '--batch-sizes',
      '3',
      '--set',
      'seq=37,hidden=96,heads=3,image=37',
      '--out',
      out,
      '--json',
      ...QUICK,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = RunSchema.parse(JSON.parse(r.stdout));
    expectOkCells(run.cells, 6);
    for (const c of run.cells) expect(c.batchSize).toBe(3);
    const t = run.cells.find((c) => c.workload === 'transformer')!;
    expect(t.params).toMatchObject({ seq: 37, hidden: 96, heads: 3 });
    expect(run.cells.find((c) => c.workload === 'cnn')!.params).toMatchObject({ image: 37 });
  });

  it('--replicates 2 runs each cell in 2 fresh processes, interleaved round-robin, with per-replicate records', async () => {
    const out = tempDir();
    const r = await fwbench([
      'run',
      '--engines',
      'onnxruntime,tfjs-wasm',
      '--workloads',
      'rnn',
      '--batch-sizes',
      '1',
      '--out',
      out,
      ...QUICK,
      '--replicates',
      '2',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = readRun(out);
    expect(run.config.replicates).toBe(2);
    expect(run.config.measurePreset).toBe('quick');
    expect(run.cells).toHaveLength(2);
    const runs: Array<{ cell: string; index: number; pid: number; startedAt: string }> = [];
    for (const c of run.cells) {
      expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
      // Two clean replicates; a busy moment of the machine may add re-runs (issue 17), whose
      // contended replicates are kept with their reason and never pooled.
      expect(c.replicates!.filter((rep) => rep.status === 'ok')).toHaveLength(2);
      for (const rep of c.replicates!.filter((x) => x.status !== 'ok'))
        expect(rep, JSON.stringify(rep)).toMatchObject({ status: 'contended', reason: expect.any(String) });
      expect(c.replicates!.length).toBeLessThanOrEqual(4);
      let offset = 0;
      for (const rep of c.replicates!) {
        expect(rep.parity!.pass).toBe(true);
        expect(rep.offset).toBe(rep.status === 'ok' ? offset : undefined);
        if (rep.status === 'ok') offset += rep.n!;
        expect(rep.interval!.loMs).toBeLessThanOrEqual(rep.interval!.hiMs);
        expect(['target-interval', 'max-time', 'max-samples']).toContain(rep.stopReason);
        expect(rep.memory!.peakHostBytes).toBeGreaterThan(0);
        expect(rep.coldStart!.totalMs).toBeGreaterThan(0);
        if (rep.index < 2) runs.push({ cell: c.engine, index: rep.index, pid: rep.pid!, startedAt: rep.startedAt });
      }
      expect(c.samplesMs).toHaveLength(offset);
      expect(c.stats!.n).toBe(offset);
      expect(c.variation!.betweenCv).toBeGreaterThanOrEqual(0);
      expect(c.outliers).toBeDefined();
      expect(Array.isArray(c.warnings)).toBe(true);
    }
    // The two rounds: four distinct processes, run in the order onnxruntime#0, tfjs-wasm#0, onnxruntime#1, tfjs-wasm#1 (any re-runs come after).
    expect(new Set(runs.map((x) => x.pid)).size).toBe(4);
    runs.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    expect(runs.map((x) => `${x.cell}#${x.index}`)).toEqual(['onnxruntime#0', 'tfjs-wasm#0', 'onnxruntime#1', 'tfjs-wasm#1']);
    expect(r.stdout).toMatch(/warn/);
  });

  it('reports engines that cannot run here as skipped with the reason and the fix, keeping the other cells', async () => {
    const out = tempDir();
    // tfjs-node-gpu needs libtensorflow with CUDA and a GPU: never installed on these machines.
    const r = await fwbench(['run', '--engines', 'tfjs-node-gpu,onnxruntime', '--workloads', 'rnn', '--batch-sizes', '1', '--out', out, ...QUICK]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = readRun(out);
    const skipped = run.cells.find((c) => c.engine === 'tfjs-node-gpu')!;
    expect(skipped.status).toBe('skipped');
    expect(skipped.reason).toMatch(/not installed|does not run on cpu|failed to load/);
    expect(skipped.fix).toBeTruthy();
    expect(run.cells.find((c) => c.engine === 'onnxruntime')!.status).toBe('ok');
    const gpu = await fwbench(['run', '--engines', 'tfjs-wasm', '--workloads', 'rnn', '--batch-sizes', '1', '--device', 'cuda', '--out', tempDir(), ...QUICK]);
    expect(gpu.exitCode).toBe(0);
    expect(gpu.stdout).toMatch(/tfjs-wasm does not run on cuda/);
  });
});

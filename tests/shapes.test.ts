import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, modesToRun } from '../harness/engines/registry.js';
import { ENGINE_IDS } from '../harness/engines/types.js';
import { RunSchema, type Cell, type Run } from '../harness/results/schema.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { paddedLength, shapeStream, STREAM } from '../workloads/shapes.js';
import { getFamily } from '../workloads/index.js';
import { fwbench, installed, QUICK, runProblems, tempDir } from './helpers.js';

/**
 * Shape streams end to end through the real CLI, generated from the registry: every engine and
 * every stream mode on the transformer and rnn families (tiny, batch 2, exact padding: the most
 * shapes), each batch checked row by row against the reference's unpadded rows, compile counts
 * from the frameworks' own counters; then the reports and claims read the stream cells.
 */

const VENV = 'python-runners/.venv/bin/python';
const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
const FAMILIES = ['transformer', 'rnn'] as const;
const QUICK_MAX_TIME_MS = Number(QUICK[QUICK.indexOf('--max-time') + 1]);

describe('fwbench run --shapes stream: every engine x stream mode, transformer and rnn, tiny', () => {
  const out = tempDir();
  let run: Run;
  const engines = ENGINE_IDS.filter((id) => id !== 'tfjs-node-gpu' || installed('@tensorflow/tfjs-node-gpu'));
  const cell = (engine: string, mode: string, family: string): Cell => run.cells.find((c) => c.engine === engine && c.mode === mode && c.workload === family)!;

  beforeAll(async () => {
    expect(existsSync(VENV), `${VENV} is missing: run \`npm run setup\` (python-runners/setup.sh) to create it`).toBe(true);
    const args = ['run', '--shapes', 'stream', '--paddings', 'exact', '--workloads', FAMILIES.join(','), '--size', 'tiny', '--batch-sizes', '2'];
    const r = await fwbench([...args, '--engines', engines.join(','), '--threads', '1', ...QUICK, '--out', out], { timeoutMs: 1_500_000 });
    expect(r.exitCode, runProblems(r.stderr)).toBe(0);
    run = readRun(out);
  }, 1_600_000);

  it('runs every stream mode of every engine with parity ok on every distinct shape, and records the stream', () => {
    const expected = FAMILIES.length * engines.reduce((n, id) => n + modesToRun(ENGINES[id], undefined, 'inference', 'stream').length, 0);
    expect(run.cells).toHaveLength(expected);
    expect(run.config.shapes).toEqual(['stream']);
    for (const c of run.cells) {
      expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
      expect(c.id.endsWith('/stream-exact'), c.id).toBe(true);
      const s = shapeStream(getFamily(c.workload), c.params, c.seed, c.batchSize);
      const distinct = new Set(s.lengths.map((rows) => paddedLength('exact', rows, s))).size;
      expect(distinct).toBeGreaterThan(2);
      expect(c.parity!.stream).toMatchObject({ batches: STREAM.batches, shapes: distinct });
      expect(c.parity!.relL2!).toBeLessThan(FP32_REL_L2_TOLERANCE);
      expect(c.stream!.lengths).toEqual(s.lengths);
      expect(c.stream!.distinctShapes).toBe(distinct);
      expect(c.stream!.coldMs).toBeGreaterThan(c.stream!.compileMs);
      expect(c.stream!.fixed.medianMs).toBeGreaterThan(0);
      expect(c.stream!.dynamicPenalty).toBeCloseTo(c.stream!.coldMs / (STREAM.batches * c.stream!.fixed.medianMs), 9);
      // One sample = one warm pass over the whole stream: at least minPasses, unless the passes
      // reached --max-time first (a slow engine on a busy machine).
      expect(c.samplesMs!.length).toBeGreaterThanOrEqual(1);
      if (c.samplesMs!.length < STREAM.minPasses)
        expect(
          c.samplesMs!.reduce((a, b) => a + b, 0),
          c.id,
        ).toBeGreaterThanOrEqual(0.99 * QUICK_MAX_TIME_MS);
      expect(c.throughput).toBeCloseTo((STREAM.batches * c.batchSize) / (c.stats!.medianMs / 1000), 6);
    }
  });

  it('counts compilations with the frameworks own counters: none for eager, one ORT session, retraces per shape without a signature', () => {
    for (const f of FAMILIES) {
      for (const c of run.cells.filter((x) => x.workload === f && x.mode === 'eager'))
        expect(c.stream!.compiles, c.id).toEqual({ afterCold: null, afterWarm: null });
      expect(cell('onnxruntime', 'all', f).stream!.compiles).toEqual({ afterCold: 1, afterWarm: 1 });
      const fn = cell('tensorflow', 'function', f).stream!;
      const sig = cell('tensorflow', 'function-signature', f).stream!;
      // tf.function without a signature traces once per new shape; with one, once.
      expect(fn.compiles.afterCold!, f).toBeGreaterThan(sig.compiles.afterCold!);
      expect(sig.compiles.afterCold, f).toBe(1);
      const stat = cell('torch', 'compile-static', f).stream!;
      const dyn = cell('torch', 'compile-dynamic', f).stream!;
      // dynamic=False compiles a graph per shape (up to torch's recompile limit); dynamic=True one symbolic graph.
      expect(stat.compiles.afterCold!, f).toBeGreaterThan(dyn.compiles.afterCold!);
      // The warm passes see no new shape: no more compiling.
      expect(fn.compiles.afterWarm).toBe(fn.compiles.afterCold);
    }
  });

  it('reports the streams in Markdown and judges the claims on them, naming the stream', async () => {
    const md = await fwbench(['report', out, '--format', 'md']);
    expect(md.exitCode, md.stderr).toBe(0);
    const text = readFileSync(join(out, 'report.md'), 'utf8');
    expect(text).toContain('## Shape streams');
    expect(text).toMatch(/transformer\/tiny \| 2 \| exact \| torch\/compile-static \| ok/);
    const claims = await fwbench(['claims', out, '--json']);
    expect(claims.exitCode, claims.stderr).toBe(0);
    const results = JSON.parse(claims.stdout) as Array<{ claim: { id: string }; evaluations: Array<{ workload?: string; verdict: string; note: string }> }>;
    for (const id of ['static-faster', 'dynamic-slower', 'tf-slow-compile']) {
      const onStream = results.find((r) => r.claim.id === id)!.evaluations.filter((e) => e.workload?.endsWith('stream-exact'));
      expect(onStream.length, id).toBeGreaterThan(0);
      expect(
        onStream.some((e) => e.verdict !== 'not measured'),
        id,
      ).toBe(true);
      expect(
        onStream.every((e) => e.verdict === 'not measured' || /shape stream/.test(e.note)),
        id,
      ).toBe(true);
    }
  });
});

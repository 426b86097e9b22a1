import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getFamily, resolveParams } from '../workloads/index.js';
import { clockResolution, DEFAULT_MEASURE, measure, medianCi, medianCiIndices } from '../harness/worker/measure.js';
import type { MeasureSettings } from '../harness/worker/protocol.js';
import { CellSchema, type RunConfig } from '../harness/results/schema.js';
import type { PlannedCell } from '../harness/run/plan.js';
import { cellFromReplicates, cellWarnings, type ReplicateOutcome } from '../harness/run/record.js';
import type { WorkerOutcome } from '../harness/run/outcome.js';
import { bootstrapCis, flagOutliers, reliablePercentiles, summarize } from '../harness/stats/summary.js';
import { planConfig } from './plan-config.js';

/** The same cases as python-runners/tests/test_measure.py, from one shared file. */
interface Case {
  name: string;
  settings: Partial<MeasureSettings>;
  steps: number[];
  stopReason: string;
  warmupN: number;
  n: number;
  halfWidthPct: number;
}
const CASES = JSON.parse(readFileSync('tests/fixtures/stopping-cases.json', 'utf8')) as {
  medianCiIndices: Array<[number, number, number]>;
  medianCiOf1to100: { medianNs: number; loNs: number; hiNs: number; halfWidthPct: number };
  base: MeasureSettings;
  cases: Case[];
};

const cyclicClock = (steps: number[]) => {
  let t = 0n;
  let i = 0;
  return { clock: () => t, tick: async () => void (t += BigInt(Math.round(steps[i++ % steps.length]! * 1e6))) };
};

describe('order-statistic interval of the median', () => {
  it.each(CASES.medianCiIndices)('n = %i -> indices %i..%i', (n, lo, hi) => {
    expect(medianCiIndices(n)).toEqual([lo, hi]);
  });
  it('of 1..100', () => {
    const r = medianCi(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(r.medianNs).toBe(CASES.medianCiOf1to100.medianNs);
    expect(r.loNs).toBe(CASES.medianCiOf1to100.loNs);
    expect(r.hiNs).toBe(CASES.medianCiOf1to100.hiNs);
    expect(r.halfWidthPct).toBeCloseTo(CASES.medianCiOf1to100.halfWidthPct, 12);
    expect(medianCi([])).toEqual({ medianNs: 0, loNs: 0, hiNs: 0, halfWidthPct: 0 });
  });
  it('clock resolution is the smallest positive step between reads', () => {
    const ticks = [0, 0, 40, 40, 120, 150, 150];
    let i = 0;
    expect(clockResolution(() => BigInt(ticks[i++] ?? 150))).toBe(30);
  });
});

describe('stopping rule on a fake clock (shared cases with pytest)', () => {
  it.each(CASES.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const k = cyclicClock(c.steps);
    const r = await measure(k.tick, { ...CASES.base, ...c.settings }, k.clock);
    expect(r.stopReason).toBe(c.stopReason);
    expect(r.warmupNs).toHaveLength(c.warmupN);
    expect(r.samplesNs).toHaveLength(c.n);
    expect(r.interval.halfWidthPct).toBeCloseTo(c.halfWidthPct, 12);
    expect(r.clockResolutionNs).toBe(0);
  });
  it('the default needs 20 samples and a ±2 % interval; p90 needs 64 samples and p99 662', () => {
    expect(DEFAULT_MEASURE).toMatchObject({ minSamples: 20, targetInterval: 0.02 });
    expect(reliablePercentiles(63)).toEqual(['p50']);
    expect(reliablePercentiles(64)).toEqual(['p50', 'p90']);
    expect(reliablePercentiles(662)).toEqual(['p50', 'p90', 'p99']);
  });
});

describe('outliers and bootstrap intervals', () => {
  it('flags Tukey (1.5 / 3 IQR) and modified z-score outliers by index without dropping them', () => {
    // Quartiles of 1..20 plus two: q1, q3 interpolated; 40 is beyond 3 IQR, 32 only beyond 1.5 IQR.
    const xs = [...Array.from({ length: 20 }, (_, i) => i + 1), 32, 40];
    const o = flagOutliers(xs);
    // q1 = 6.25, q3 = 16.75, IQR 10.5: inner fence 32.5 -> only 40; outer 48.25 -> none.
    expect(o).toMatchObject({ mild: 1, severe: 0, indices: { mild: [21], severe: [] } });
    const y = flagOutliers([10, 10.1, 9.9, 10, 10.2, 9.8, 10, 10.1, 30, 10]);
    expect(y.indices.severe).toEqual([8]);
    // IQR is only 0.1 here (q1 10, q3 10.1): 9.8 is beyond the inner fence too.
    expect(y.indices.mild).toEqual([5, 8]);
    expect(y.indices.mad).toEqual([8]);
    expect(flagOutliers([5, 5, 5, 5]).mad).toBe(0);
    expect(flagOutliers([])).toMatchObject({ mild: 0, severe: 0, mad: 0 });
  });
  it('bootstrap CIs of median and mean contain the estimates and are seeded', () => {
    const xs = Array.from({ length: 200 }, (_, i) => 10 + Math.sin(i) * 0.5);
    const a = bootstrapCis(xs);
    const s = summarize(xs);
    expect(a.medianCi!.lo).toBeLessThanOrEqual(s.medianMs);
    expect(a.medianCi!.hi).toBeGreaterThanOrEqual(s.medianMs);
    expect(a.meanCi!.lo).toBeLessThanOrEqual(s.meanMs);
    expect(a.meanCi!.hi).toBeGreaterThanOrEqual(s.meanMs);
    expect(bootstrapCis(xs)).toEqual(a);
    expect(bootstrapCis([1, 2, 3])).toEqual({});
  });
});

describe('replicates and warnings in the cell record', () => {
  const family = getFamily('rnn');
  const planned: PlannedCell = {
    id: 'x',
    task: 'inference',
    shapes: 'fixed',
    precision: 'fp32',
    engine: 'tfjs-cpu',
    mode: 'eager',
    device: 'cpu',
    family,
    preset: 'tiny',
    params: resolveParams(family, 'tiny'),
    batchSize: 1,
    threads: 1,
  };
  const config: RunConfig = planConfig({ engines: ['tfjs-cpu'], workloads: ['rnn'], preset: { rnn: 'tiny' }, replicates: 2 });
  const passed = { reference: 'onnxruntime/disabled/cpu', relL2: 1e-7, maxAbs: 1e-7, tolerance: 1e-4, pass: true };
  const outcome = (
    pid: number,
    samplesMs: number[],
    o: Partial<{
      firstWarmupMs: number;
      stop: 'target-interval' | 'max-time';
      resNs: number;
      mem: number;
      spawnMs: number;
      importMs: number;
      compileMs: number;
    }> = {},
  ): WorkerOutcome => {
    const ci = medianCi(samplesMs.map((v) => v * 1e6));
    return {
      done: true,
      exitCode: 0,
      signal: null,
      timedOut: false,
      logTail: [],
      spawnMs: o.spawnMs ?? 100,
      toFirstOutputMs: 300,
      hello: { type: 'hello', protocol: 1, pid, language: 'node', runtime: 'node v20' },
      built: {
        type: 'built',
        phases: { importMs: o.importMs ?? 40, weightsMs: 5, buildMs: 50, ...(o.compileMs !== undefined ? { compileMs: o.compileMs } : {}) },
        settings: {},
      },
      parity: { type: 'parity', firstRunMs: 20, shape: [1, 2], values: [1, 2] },
      samples: {
        type: 'samples',
        warmupNs: [(o.firstWarmupMs ?? 2) * 1e6],
        samplesNs: samplesMs.map((v) => v * 1e6),
        stopReason: o.stop ?? 'target-interval',
        warmupStopReason: 'stable',
        interval: ci,
        clockResolutionNs: o.resNs ?? 30,
      },
      memory: { type: 'memory', peakHostBytes: o.mem ?? 1e8 },
    };
  };
  const rep = (o: WorkerOutcome, parity = passed): ReplicateOutcome => ({ o, parity, startedAt: '2026-01-01T00:00:00Z' });

  it('pools samples, keeps per-replicate summaries, variation, median memory and cold start; parity of every replicate', () => {
    const a = Array.from({ length: 20 }, (_, i) => 1 + (i % 2) * 0.01);
    const b = Array.from({ length: 20 }, (_, i) => 1.1 + (i % 2) * 0.01);
    const c = CellSchema.parse(
      cellFromReplicates(planned, config, 't', 10, [
        rep(outcome(11, a, { mem: 1e8, spawnMs: 100, importMs: 30, compileMs: 7 })),
        rep(outcome(12, b, { mem: 3e8, spawnMs: 200, importMs: 50, compileMs: 9 })),
      ]),
    );
    expect(c.status).toBe('ok');
    expect(c.samplesMs).toHaveLength(40);
    expect(c.replicates!.map((r) => [r.index, r.pid, r.n, r.offset])).toEqual([
      [0, 11, 20, 0],
      [1, 12, 20, 20],
    ]);
    expect(c.replicates![0]!.medianMs).toBeCloseTo(1.005, 12);
    expect(c.replicates![1]!.interval!.halfWidthPct).toBeGreaterThan(0);
    expect(c.memory!.peakHostBytes).toBe(2e8);
    expect(c.coldStart).toEqual({ spawnMs: 150, importMs: 40, weightsMs: 5, buildMs: 50, compileMs: 8, firstRunMs: 20, totalMs: 300 });
    expect(c.replicates!.map((r) => r.coldStart!.compileMs)).toEqual([7, 9]);
    expect(c.variation!.betweenCv).toBeCloseTo((Math.SQRT1_2 * 0.1) / 1.055, 9);
    expect(c.variation!.withinCv).toBeGreaterThan(0);
    expect(c.variation!.withinCv).toBeLessThan(0.01);
    expect(c.stats!.medianCi).toBeDefined();
    expect(c.stats!.reliablePercentiles).toEqual(['p50']);
    expect(c.stopReason).toBe('target-interval');
    const failing = cellFromReplicates(planned, config, 't', 10, [rep(outcome(11, a)), rep(outcome(12, b), { ...passed, relL2: 0.5, pass: false })]);
    expect(failing.status).toBe('parity-failed');
    expect(failing.reason).toMatch(/^replicate 1: output differs/);
    expect(failing.stats).toBeUndefined();
  });

  it('warns on high CV, slow first run, timer resolution and a target not reached', () => {
    const noisy = Array.from({ length: 20 }, (_, i) => (i % 2 ? 1 : 2));
    const c = cellFromReplicates(planned, config, 't', 10, [rep(outcome(1, noisy, { firstWarmupMs: 100, stop: 'max-time', resNs: 20000 }))]);
    expect(c.warnings!.map((w) => w.code).sort()).toEqual(['high-cv', 'slow-first-run', 'target-not-reached', 'timer-resolution']);
    const quiet = cellFromReplicates(planned, config, 't', 10, [
      rep(
        outcome(
          1,
          Array.from({ length: 20 }, () => 5),
        ),
      ),
    ]);
    expect(quiet.warnings).toEqual([]);
    expect(cellWarnings(summarize([1]), [], [1])).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { isStable, measure } from '../harness/worker/measure.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { summarize } from '../harness/stats/summary.js';

describe('statistics', () => {
  it('summarizes against hand-computed values', () => {
    const s = summarize([4, 1, 3, 2, 10]);
    expect(s).toMatchObject({ n: 5, medianMs: 3, meanMs: 4, minMs: 1, maxMs: 10 });
    expect(s.stdMs).toBeCloseTo(Math.sqrt((9 + 1 + 4 + 0 + 36) / 4), 12);
    expect(s.cv).toBeCloseTo(s.stdMs / 4, 12);
    // Linear interpolation between order statistics (numpy's default): index 0.9 * (n - 1) = 3.6.
    expect(s.p90Ms).toBeCloseTo(4 + 0.6 * 6, 12);
  });
  it('percentiles of 1..100', () => {
    const s = summarize(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(s.p90Ms).toBeCloseTo(90.1, 12);
    expect(s.p99Ms).toBeCloseTo(99.01, 12);
    expect(s.medianMs).toBe(50.5);
  });
  it('one sample has zero spread; none is an error', () => {
    expect(summarize([2])).toMatchObject({ n: 1, stdMs: 0, cv: 0, p99Ms: 2 });
    expect(() => summarize([])).toThrow();
  });
});

describe('parity check', () => {
  it('passes float32 rounding noise, fails a real difference', () => {
    const ref = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i));
    // About the worst error of a correct engine on a shipped preset (docs/parity.md): passes.
    const near = ref.map((v) => v * (1 + 7.5e-6));
    expect(compareOutputs(ref, [2, 10], near, [2, 10]).pass).toBe(true);
    // Half the smallest error of a tanh-approximate GELU (docs/parity.md): fails.
    const gelu = ref.map((v) => v * (1 + 5e-5));
    expect(compareOutputs(ref, [2, 10], gelu, [2, 10]).pass).toBe(false);
    const far = ref.map((v, i) => (i === 3 ? v + 0.1 : v));
    const f = compareOutputs(ref, [2, 10], far, [2, 10]);
    expect(f.pass).toBe(false);
    expect(f.maxAbs).toBeCloseTo(0.1, 6);
    expect(f.relL2).toBeGreaterThan(FP32_REL_L2_TOLERANCE);
  });
  it('fails NaN, shape mismatch and an all-zero reference', () => {
    const ref = [1, 2, 3, 4];
    expect(compareOutputs(ref, [2, 2], [1, NaN, 3, 4], [2, 2]).problem).toMatch(/NaN/);
    expect(compareOutputs(ref, [2, 2], ref, [4, 1]).problem).toMatch(/shape/);
    expect(compareOutputs([0, 0], [1, 2], [0, 0], [1, 2]).pass).toBe(false);
  });
});

describe('measurement loop', () => {
  const fakeClock = (stepNs: () => number) => {
    let t = 0n;
    return { clock: () => t, tick: async () => void (t += BigInt(stepNs())) };
  };
  it('warms up until stable, then samples until min samples AND min time AND the target interval', async () => {
    const times = [50, 30, 20, 10, 10, 10];
    let i = 0;
    const c = fakeClock(() => (times[i++] ?? 10) * 1e6);
    const r = await measure(
      c.tick,
      {
        warmupMinIters: 3,
        warmupMaxIters: 50,
        warmupMaxMs: 1e6,
        warmupTolerance: 0.1,
        warmupWindow: 3,
        minSamples: 5,
        minTimeMs: 100,
        maxTimeMs: 1e6,
        maxSamples: 1e6,
        targetInterval: 0.01,
      },
      c.clock,
    );
    expect(r.warmupStopReason).toBe('stable');
    expect(r.warmupNs.map((v) => v / 1e6)).toEqual([50, 30, 20, 10, 10, 10]);
    // 10 ms each: 5 samples reach only 50 ms, so the 100 ms minimum decides.
    expect(r.samplesNs).toHaveLength(10);
    expect(r.stopReason).toBe('target-interval');
  });
  it('a max time caps the loop', async () => {
    const c = fakeClock(() => 1e9);
    const r = await measure(
      c.tick,
      {
        warmupMinIters: 1,
        warmupMaxIters: 1,
        warmupMaxMs: 1,
        warmupTolerance: 0.1,
        warmupWindow: 2,
        minSamples: 100,
        minTimeMs: 0,
        maxTimeMs: 3000,
        maxSamples: 1e6,
        targetInterval: 0.01,
      },
      c.clock,
    );
    expect(r.warmupStopReason).toBe('max-iters');
    expect(r.samplesNs).toHaveLength(3);
    expect(r.stopReason).toBe('max-time');
  });
  it('stability needs the whole window within tolerance', () => {
    expect(isStable([10, 10.5, 9.6], 3, 0.1)).toBe(true);
    expect(isStable([10, 12, 10], 3, 0.1)).toBe(false);
    expect(isStable([10, 10], 3, 0.1)).toBe(false);
  });
});

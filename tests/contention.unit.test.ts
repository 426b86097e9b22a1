import { describe, expect, it } from 'vitest';
import { judgeLoad, slowOutlier } from '../harness/run/contention.js';

/** A 1-second loop on a 2-core machine. */
const loop = (ownCores: number, busyCores: number, stealCores = 0) => ({
  wallMs: 1000,
  ownCpuMs: ownCores * 1000,
  involuntarySwitches: 0,
  machine: { cores: 2, busyCores, stealCores },
});

describe('contention rule 1: CPU used by others on a saturated machine', () => {
  it('a worker alone on the machine is clean', () => {
    expect(judgeLoad(loop(2, 2.02))).toEqual({ othersCores: expect.closeTo(0.02, 5) });
  });
  it('a busy neighbour on a saturated machine is contention, with the figures', () => {
    const v = judgeLoad(loop(1.1, 2, 0))!;
    expect(v.othersCores).toBeCloseTo(0.9, 5);
    expect(v.reason).toBe('other processes used 0.90 of 2 cores while the machine was saturated (2.00 busy; this worker 1.10)');
  });
  it('a 1-thread worker that had its core beside a busy process is not contended; a 2-thread one held to 1 core is', () => {
    expect(judgeLoad(loop(0.99, 2), 1)?.reason).toBeUndefined();
    expect(judgeLoad(loop(0.99, 2), 2)?.reason).toMatch(/^other processes used 1.01 of 2 cores/);
  });
  it('a neighbour that leaves a core idle is not: the worker could have had it', () => {
    expect(judgeLoad(loop(0.5, 1.2))?.reason).toBeUndefined();
  });
  it('steal above 10 % of the cores is contention even when nothing else runs; 10 % is not', () => {
    expect(judgeLoad(loop(1.7, 2, 0.3))!.reason).toBe('the hypervisor stole 0.30 of 2 cores during the timed loop');
    expect(judgeLoad(loop(1.98, 2, 0.2))!.reason).toBeUndefined();
  });
  it('a short loop gets the /proc/stat tick slack: 0.3 others over 100 ms is within it, over 1 s it is not', () => {
    expect(judgeLoad({ ...loop(1.7, 2), wallMs: 100, ownCpuMs: 170 })!.reason).toBeUndefined();
    expect(judgeLoad(loop(1.7, 2))!.reason).toMatch(/^other processes used 0.30 of 2 cores/);
  });
  it('no machine figures (no /proc/stat): no verdict', () => {
    expect(judgeLoad({ wallMs: 1000, ownCpuMs: 1000, involuntarySwitches: 0 })).toBeUndefined();
    expect(judgeLoad(undefined)).toBeUndefined();
  });
});

describe('contention rule 2: a slow outlier among the replicates', () => {
  const r = (medianMs: number, half = 0.02) => ({ medianMs, interval: { loMs: medianMs * (1 - half), hiMs: medianMs * (1 + half) } });
  it('the issue’s example: 239.9 ms beside 5.45 and 5.47 ms', () => {
    const all = [r(5.45), r(239.9), r(5.47)];
    expect(slowOutlier(all, 1)).toBe("its median 239.90 ms is 43.94x the other replicates' 5.46 ms, with disjoint intervals");
    expect(slowOutlier(all, 0)).toBeUndefined();
    expect(slowOutlier(all, 2)).toBeUndefined();
  });
  it('1.4x apart is not an outlier; 1.6x apart with overlapping intervals is not either', () => {
    expect(slowOutlier([r(10), r(14)], 1)).toBeUndefined();
    expect(slowOutlier([r(10, 0.4), r(16, 0.4)], 1)).toBeUndefined();
    expect(slowOutlier([r(10), r(16)], 1)).toMatch(/1.60x/);
  });
  it('a lone replicate has nothing to be compared with', () => {
    expect(slowOutlier([r(100)], 0)).toBeUndefined();
  });
});

import type { MeasureSettings } from './protocol.js';

/**
 * The warm-up and timed loop, run inside the worker. Each iteration is one forward pass
 * including reading the outputs back to host memory; times are integer nanoseconds from a
 * monotonic clock.
 *
 * Warm-up rule: at least `warmupMinIters` iterations, then until the last `warmupWindow` times
 * are all within ±`warmupTolerance` of their median (stable), capped by `warmupMaxIters` and
 * `warmupMaxMs`. Timed loop: until at least `minSamples` samples AND `minTimeMs` elapsed, capped
 * by `maxTimeMs` and `maxSamples` (at least one sample is always taken).
 */
export interface MeasureResult {
  warmupNs: number[];
  samplesNs: number[];
  stopReason: 'min-samples-and-time' | 'max-time' | 'max-samples';
  warmupStopReason: 'stable' | 'max-iters' | 'max-time';
}

/** Default settings: about 1-10 s of timed work per cell. */
export const DEFAULT_MEASURE: MeasureSettings = {
  warmupMinIters: 3,
  warmupMaxIters: 50,
  warmupMaxMs: 2000,
  warmupTolerance: 0.1,
  warmupWindow: 3,
  minSamples: 20,
  minTimeMs: 1000,
  maxTimeMs: 10000,
  maxSamples: 100000,
};

/** True when the last `window` values lie within ±tol of their median. */
export function isStable(values: number[], window: number, tol: number): boolean {
  if (values.length < window) return false;
  const last = values.slice(-window).sort((a, b) => a - b);
  const med = last[Math.floor(window / 2)]!;
  return last.every((v) => Math.abs(v - med) <= tol * med);
}

/** Runs warm-up then the timed loop around `iteration`. `clock` returns monotonic ns. */
export async function measure(iteration: () => Promise<unknown>, s: MeasureSettings, clock: () => bigint = process.hrtime.bigint): Promise<MeasureResult> {
  const warmupNs: number[] = [];
  const warmStart = clock();
  let warmupStopReason: MeasureResult['warmupStopReason'];
  for (;;) {
    const t0 = clock();
    await iteration();
    const t1 = clock();
    warmupNs.push(Number(t1 - t0));
    if (warmupNs.length >= s.warmupMinIters && isStable(warmupNs, s.warmupWindow, s.warmupTolerance)) {
      warmupStopReason = 'stable';
      break;
    }
    if (warmupNs.length >= s.warmupMaxIters) {
      warmupStopReason = 'max-iters';
      break;
    }
    if (Number(t1 - warmStart) / 1e6 >= s.warmupMaxMs && warmupNs.length >= s.warmupMinIters) {
      warmupStopReason = 'max-time';
      break;
    }
  }
  const samplesNs: number[] = [];
  const start = clock();
  let stopReason: MeasureResult['stopReason'];
  for (;;) {
    const t0 = clock();
    await iteration();
    const t1 = clock();
    samplesNs.push(Number(t1 - t0));
    const elapsedMs = Number(t1 - start) / 1e6;
    if (samplesNs.length >= s.minSamples && elapsedMs >= s.minTimeMs) {
      stopReason = 'min-samples-and-time';
      break;
    }
    if (samplesNs.length >= s.maxSamples) {
      stopReason = 'max-samples';
      break;
    }
    if (elapsedMs >= s.maxTimeMs) {
      stopReason = 'max-time';
      break;
    }
  }
  return { warmupNs, samplesNs, stopReason, warmupStopReason };
}

import { watchLoad, type TimedLoopLoad } from './load.js';
import type { MeasureSettings } from './protocol.js';

/**
 * The warm-up and timed loop, run inside the worker. Each iteration is one forward pass
 * including reading the outputs back to host memory; times are integer nanoseconds from a
 * monotonic clock. python-runners/fwbench_runner/measure.py implements the same rules.
 *
 * Warm-up rule: at least `warmupMinIters` iterations and `warmupMinMs`, then until the last
 * `warmupWindow` times are all within ±`warmupTolerance` of their median (stable), capped by
 * `warmupMaxIters` (counted once `warmupMinMs` has passed) and `warmupMaxMs`. The minimum time
 * exists because JavaScript engines keep tiering up: bench/overhead.ts found TF.js cells whose
 * first fifth of samples ran 15-40 % slower than the rest after a 3-iteration "stable" warm-up,
 * which moved their medians by 3-9 %.
 *
 * Stopping rule of the timed loop: once at least `minSamples` samples AND `minTimeMs` have
 * elapsed, the 95 % confidence interval of the median (order statistics, binomial / normal
 * approximation: no bootstrap inside the worker) is checked at n, then every ~10 % more samples
 * (so the sort stays cheap); the loop stops with 'target-interval' when its half-width is
 * <= `targetInterval` x median. Otherwise `maxSamples` ('max-samples') or `maxTimeMs` ('max-time'),
 * whichever comes first. At least one sample is always taken. `targetInterval` 0 never stops
 * early: the loop runs to a cap.
 */
export interface MeasureResult {
  warmupNs: number[];
  samplesNs: number[];
  stopReason: 'target-interval' | 'max-time' | 'max-samples';
  warmupStopReason: 'stable' | 'max-iters' | 'max-time';
  /** 95 % order-statistic interval of the median of all samples, as achieved at the stop. */
  interval: MedianCi;
  /** Smallest positive step of the clock seen in consecutive reads (ns; 0 if it never moved). */
  clockResolutionNs: number;
  /** What the worker and the rest of the machine used during the timed loop (absent when not watched). */
  load?: TimedLoopLoad;
}

/** A median with its order-statistic confidence interval (ns) and half-width in % of the median. */
export interface MedianCi {
  medianNs: number;
  loNs: number;
  hiNs: number;
  halfWidthPct: number;
}

/** Two-sided 95 % standard-normal quantile. */
export const Z95 = 1.959963984540054;

/**
 * Default settings, sized so the default run (every engine, real-model-sized presets, batch 1
 * and 8) ends within about 6 minutes on 2 cores: warm-up >= 0.5 s, then >= 20 samples and >= 0.5 s,
 * until the median is known to ±2 %, at most 2 s, in one process per cell. Most of a cell's time
 * is its process's start (framework import, build, compilation), so more precision costs little
 * per cell: --rigorous, or --replicates 3 for intervals across processes. (The warm-up minimum
 * exists for TF.js, whose JIT keeps tiering up: on tiny models 1 s was needed; these presets run
 * tens to hundreds of ops per iteration, so half of that sees as many JS calls.)
 */
export const DEFAULT_MEASURE: MeasureSettings = {
  warmupMinIters: 3,
  warmupMinMs: 500,
  warmupMaxIters: 50,
  warmupMaxMs: 2000,
  warmupTolerance: 0.1,
  warmupWindow: 3,
  minSamples: 20,
  minTimeMs: 500,
  maxTimeMs: 2000,
  maxSamples: 100000,
  targetInterval: 0.02,
};

/** `--quick`: ±5 %, short times, one process per cell. */
export const QUICK_MEASURE: MeasureSettings = {
  ...DEFAULT_MEASURE,
  warmupMinMs: 100,
  warmupMaxMs: 200,
  minSamples: 10,
  minTimeMs: 100,
  maxTimeMs: 1000,
  targetInterval: 0.05,
};
/** `--rigorous`: ±0.5 %, >= 662 samples (p99 trustworthy), longer. */
export const RIGOROUS_MEASURE: MeasureSettings = {
  ...DEFAULT_MEASURE,
  warmupMinMs: 3000,
  warmupMaxMs: 5000,
  minSamples: 662,
  minTimeMs: 3000,
  maxTimeMs: 30000,
  targetInterval: 0.005,
};
/** The measurement presets by name (`--quick`, the default, `--rigorous`). */
export const MEASURE_PRESETS = { quick: QUICK_MEASURE, default: DEFAULT_MEASURE, rigorous: RIGOROUS_MEASURE } as const;
/** A measurement preset's name. */
export type MeasurePreset = keyof typeof MEASURE_PRESETS;
/** The measurement presets' names. */
export const MEASURE_PRESET_NAMES = Object.keys(MEASURE_PRESETS) as MeasurePreset[];
/** Processes per cell for each preset. */
export const PRESET_REPLICATES: Record<MeasurePreset, number> = { quick: 1, default: 1, rigorous: 5 };

/**
 * 0-based indices of the order statistics bounding a 95 % interval of the median of n sorted
 * values: lower = floor(n/2 - z sqrt(n)/2) and upper = ceil(1 + n/2 + z sqrt(n)/2) as 1-based
 * ranks (normal approximation of the binomial), clamped to [1, n].
 */
export function medianCiIndices(n: number, z = Z95): [number, number] {
  const h = (z * Math.sqrt(n)) / 2;
  const lo = Math.max(1, Math.floor(n / 2 - h));
  const hi = Math.min(n, Math.ceil(1 + n / 2 + h));
  return [lo - 1, hi - 1];
}

/** The median of `values` (mean of the middle two for an even count) and its 95 % order-statistic interval. */
export function medianCi(values: readonly number[]): MedianCi {
  const n = values.length;
  if (n === 0) return { medianNs: 0, loNs: 0, hiNs: 0, halfWidthPct: 0 };
  const s = Float64Array.from(values).sort();
  const med = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  const [i, j] = medianCiIndices(n);
  const lo = s[i]!;
  const hi = s[j]!;
  return { medianNs: med, loNs: lo, hiNs: hi, halfWidthPct: med > 0 ? ((hi - lo) / 2 / med) * 100 : 0 };
}

/** Smallest positive difference between up to `reads` consecutive clock reads (0 if the clock never moved). */
export function clockResolution(clock: () => bigint, reads = 1000): number {
  let best = 0;
  let prev = clock();
  for (let i = 0; i < reads; i++) {
    const t = clock();
    const d = Number(t - prev);
    if (d > 0 && (best === 0 || d < best)) best = d;
    prev = t;
  }
  return best;
}

/** True when the last `window` values lie within ±tol of their median. */
export function isStable(values: number[], window: number, tol: number): boolean {
  if (values.length < window) return false;
  const last = values.slice(-window).sort((a, b) => a - b);
  const med = last[Math.floor(window / 2)]!;
  return last.every((v) => Math.abs(v - med) <= tol * med);
}

/** Runs warm-up then the timed loop around `iteration`. `clock` returns monotonic ns; `onTimedLoop` is called once, between warm-up and the timed loop (the worker announces the phase). */
export async function measure(
  iteration: () => Promise<unknown>,
  s: MeasureSettings,
  clock: () => bigint = process.hrtime.bigint,
  onTimedLoop: () => void | Promise<void> = () => undefined,
  watch: (() => () => TimedLoopLoad) | undefined = watchLoad,
): Promise<MeasureResult> {
  const clockResolutionNs = clockResolution(clock);
  const warmupNs: number[] = [];
  const warmStart = clock();
  let warmupStopReason: MeasureResult['warmupStopReason'];
  for (;;) {
    const t0 = clock();
    await iteration();
    const t1 = clock();
    warmupNs.push(Number(t1 - t0));
    const warmedMs = Number(t1 - warmStart) / 1e6;
    const longEnough = warmedMs >= (s.warmupMinMs ?? 0);
    if (longEnough && warmupNs.length >= s.warmupMinIters && isStable(warmupNs, s.warmupWindow, s.warmupTolerance)) {
      warmupStopReason = 'stable';
      break;
    }
    if (longEnough && warmupNs.length >= s.warmupMaxIters) {
      warmupStopReason = 'max-iters';
      break;
    }
    if (warmedMs >= s.warmupMaxMs && warmupNs.length >= s.warmupMinIters) {
      warmupStopReason = 'max-time';
      break;
    }
  }
  await onTimedLoop();
  const loadOfLoop = watch?.();
  const samplesNs: number[] = [];
  const start = clock();
  let stopReason: MeasureResult['stopReason'];
  let nextCheck = 0;
  for (;;) {
    const t0 = clock();
    await iteration();
    const t1 = clock();
    samplesNs.push(Number(t1 - t0));
    const n = samplesNs.length;
    const elapsedMs = Number(t1 - start) / 1e6;
    if (n >= s.minSamples && elapsedMs >= s.minTimeMs && n >= nextCheck) {
      nextCheck = n + Math.max(1, Math.floor(n / 10));
      if (s.targetInterval > 0 && medianCi(samplesNs).halfWidthPct <= s.targetInterval * 100) {
        stopReason = 'target-interval';
        break;
      }
    }
    if (n >= s.maxSamples) {
      stopReason = 'max-samples';
      break;
    }
    if (elapsedMs >= s.maxTimeMs) {
      stopReason = 'max-time';
      break;
    }
  }
  const load = loadOfLoop?.();
  return { warmupNs, samplesNs, stopReason, warmupStopReason, interval: medianCi(samplesNs), clockResolutionNs, ...(load ? { load } : {}) };
}

/** When a stream cell's warm passes stop (the job's `stream` passes and the measure settings' times). */
export interface PassSettings {
  minPasses: number;
  maxPasses: number;
  minTimeMs: number;
  maxTimeMs: number;
}

/** A stream cell's warm passes: `passesNs[p][i]` batch i's time in pass p, and the CPU accounting of all the passes. */
export interface PassesResult {
  passesNs: number[][];
  load?: TimedLoopLoad;
}

/**
 * The warm passes of a shape stream (harness/worker/protocol.ts, job.stream): the whole stream,
 * batch after batch (`run(i)`, each timed alone including readback), pass after pass, until at
 * least `minPasses` passes and `minTimeMs`; it stops at `maxPasses` or `maxTimeMs`, always after
 * one whole pass at least. The load is watched over all the passes, as over a fixed timed loop.
 */
export async function measurePasses(
  run: (batch: number) => Promise<unknown>,
  batches: number,
  s: PassSettings,
  clock: () => bigint = process.hrtime.bigint,
  watch: (() => () => TimedLoopLoad) | undefined = watchLoad,
): Promise<PassesResult> {
  const loadOfPasses = watch?.();
  const passesNs: number[][] = [];
  const start = clock();
  for (;;) {
    const pass: number[] = [];
    for (let i = 0; i < batches; i++) {
      const t0 = clock();
      await run(i);
      pass.push(Number(clock() - t0));
    }
    passesNs.push(pass);
    const elapsedMs = Number(clock() - start) / 1e6;
    if (passesNs.length >= s.maxPasses || elapsedMs >= s.maxTimeMs) break;
    if (passesNs.length >= s.minPasses && elapsedMs >= s.minTimeMs) break;
  }
  const load = loadOfPasses?.();
  return { passesNs, ...(load ? { load } : {}) };
}

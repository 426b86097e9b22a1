import type { PeakRequest, PeakResult } from './types.js';

/**
 * Timing of the peak kernels (GEMM, copy) inside a worker: two warm-up calls, then calls until
 * at least 5 samples and 200 ms, or the time budget (at least 3 samples), or 50 samples. The
 * median is robust against the odd preempted call.
 */
export async function medianMs(fn: () => Promise<void> | void, maxMs: number): Promise<number> {
  for (let i = 0; i < 2; i++) await fn();
  const samples: number[] = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
    const elapsed = performance.now() - start;
    if ((samples.length >= 5 && elapsed >= 200) || (samples.length >= 3 && elapsed >= maxMs) || samples.length >= 50) break;
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  return samples.length % 2 ? samples[mid]! : (samples[mid - 1]! + samples[mid]!) / 2;
}

/** The figures of a peak result from the two medians. */
export function peakFigures(req: PeakRequest, gemmMedianMs: number, copyMedianMs: number, details: Record<string, string>): PeakResult {
  const copyBytes = 8 * req.copyElements;
  return {
    gemmN: req.gemmN,
    gemmMedianMs,
    gemmGflops: (2 * req.gemmN ** 3) / (gemmMedianMs / 1000) / 1e9,
    copyBytes,
    copyMedianMs,
    copyGBps: copyBytes / (copyMedianMs / 1000) / 1e9,
    details,
  };
}

/** Deterministic pseudo-random float32 data in [-1, 1) (content does not matter for timing; denormals would). */
export function filled(n: number, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = ((x >>> 0) / 2 ** 32) * 2 - 1;
  }
  return a;
}

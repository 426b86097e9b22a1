import { max, mean, median, min, quantileSorted, sampleStandardDeviation } from 'simple-statistics';

/** Summary statistics of one cell's timed samples (milliseconds). */
export interface Stats {
  /** Number of timed samples. */
  n: number;
  medianMs: number;
  meanMs: number;
  p90Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  /** Sample standard deviation (0 for a single sample). */
  stdMs: number;
  /** Coefficient of variation, stdMs / meanMs. */
  cv: number;
}

/** Nanosecond integers -> milliseconds. */
export const nsToMs = (ns: number[]): number[] => ns.map((v) => v / 1e6);

/** Computes the summary of a non-empty list of sample times in ms. Percentiles interpolate linearly between order statistics (numpy's default). */
export function summarize(samplesMs: number[]): Stats {
  if (samplesMs.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const m = mean(sorted);
  const std = sorted.length > 1 ? sampleStandardDeviation(sorted) : 0;
  return {
    n: sorted.length,
    medianMs: median(sorted),
    meanMs: m,
    p90Ms: quantileSorted(sorted, 0.9),
    p99Ms: quantileSorted(sorted, 0.99),
    minMs: min(sorted),
    maxMs: max(sorted),
    stdMs: std,
    cv: m > 0 ? std / m : 0,
  };
}

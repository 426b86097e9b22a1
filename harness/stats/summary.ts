import { max, mean, median, min, quantileSorted, sampleStandardDeviation } from 'simple-statistics';
import { meanInterval, medianInterval, MIN_SAMPLES_FOR_CI } from './bootstrap.js';

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
  /** Bootstrap 95 % interval of the median (ms). */
  medianCi?: { lo: number; hi: number };
  /** Bootstrap 95 % interval of the mean (ms). */
  meanCi?: { lo: number; hi: number };
  /** Percentiles trustworthy for n. */
  reliablePercentiles?: Array<'p50' | 'p90' | 'p99'>;
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

/** Minimum sample counts for a percentile to be stated (MLPerf LoadGen's early-stopping bound). */
export const PERCENTILE_MIN_SAMPLES = { p50: 1, p90: 64, p99: 662 } as const;

/** The reported percentiles that are trustworthy for n samples. */
export function reliablePercentiles(n: number): Array<keyof typeof PERCENTILE_MIN_SAMPLES> {
  return (Object.keys(PERCENTILE_MIN_SAMPLES) as Array<keyof typeof PERCENTILE_MIN_SAMPLES>).filter((p) => n >= PERCENTILE_MIN_SAMPLES[p]);
}

/** Outlier flags; samples are never dropped. Indices refer to the samples in their recorded order. */
export interface Outliers {
  /** Beyond the Tukey inner fences (1.5 IQR from the quartiles), severe ones included. */
  mild: number;
  /** Beyond the Tukey outer fences (3 IQR). */
  severe: number;
  /** Modified z-score 0.6745 (x - median) / MAD above 3.5 in absolute value. */
  mad: number;
  indices: { mild: number[]; severe: number[]; mad: number[] };
}

/** Flags outliers by Tukey fences (1.5 / 3 IQR, quartiles interpolated linearly) and by the modified z-score (> 3.5). */
export function flagOutliers(samples: readonly number[]): Outliers {
  const out: Outliers = { mild: 0, severe: 0, mad: 0, indices: { mild: [], severe: [], mad: [] } };
  if (samples.length === 0) return out;
  const sorted = [...samples].sort((a, b) => a - b);
  const q1 = quantileSorted(sorted, 0.25);
  const q3 = quantileSorted(sorted, 0.75);
  const iqr = q3 - q1;
  const med = median(sorted);
  const mad = median(sorted.map((v) => Math.abs(v - med)));
  samples.forEach((v, i) => {
    if (v < q1 - 1.5 * iqr || v > q3 + 1.5 * iqr) out.indices.mild.push(i);
    if (v < q1 - 3 * iqr || v > q3 + 3 * iqr) out.indices.severe.push(i);
    if (mad > 0 && Math.abs((0.6745 * (v - med)) / mad) > 3.5) out.indices.mad.push(i);
  });
  out.mild = out.indices.mild.length;
  out.severe = out.indices.severe.length;
  out.mad = out.indices.mad.length;
  return out;
}

/** Seeded bootstrap 95 % intervals of the median and the mean (absent below MIN_SAMPLES_FOR_CI samples). */
export function bootstrapCis(samplesMs: readonly number[]): { medianCi?: { lo: number; hi: number }; meanCi?: { lo: number; hi: number } } {
  if (samplesMs.length < MIN_SAMPLES_FOR_CI) return {};
  const m = medianInterval(samplesMs);
  const a = meanInterval(samplesMs);
  return { medianCi: { lo: m.lo, hi: m.hi }, meanCi: { lo: a.lo, hi: a.hi } };
}

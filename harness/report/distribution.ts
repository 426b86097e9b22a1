/**
 * A fixed-size summary of one cell's latency distribution: what the HTML report draws and embeds
 * instead of the raw samples (up to ~190,000 per cell; they stay in run.json). Computed once per
 * cell, so the page's size no longer grows with the number of samples.
 */

/** The quantiles every summary carries, as fractions; keys are `p` + percent (`p50`, `p99.9`). */
export const SUMMARY_QUANTILES = [0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1] as const;

/** Summary of a non-empty list of times (ms). */
export interface DistributionSummary {
  /** Number of values summarized. */
  n: number;
  /** Linear-interpolated quantiles (ms), one per SUMMARY_QUANTILES entry, keyed `p0` … `p100`. */
  quantilesMs: Record<string, number>;
  /** Tukey box (ms): [lower whisker, q1, median, q3, upper whisker], whiskers at the furthest values within 1.5 IQR of the box. */
  tukeyBoxMs: [number, number, number, number, number];
}

/** Linear-interpolated quantile of sorted values. */
function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function boxOfSorted(s: Float64Array): [number, number, number, number, number] {
  const q1 = quantile(s, 0.25);
  const q3 = quantile(s, 0.75);
  const fence = 1.5 * (q3 - q1);
  const inside = s.filter((v) => v >= q1 - fence && v <= q3 + fence);
  return [inside[0]!, q1, quantile(s, 0.5), q3, inside[inside.length - 1]!];
}

/** Tukey box: quartiles, whiskers at the furthest samples within 1.5 IQR of the box. */
export const tukeyBox = (samples: readonly number[]): [number, number, number, number, number] => boxOfSorted(Float64Array.from(samples).sort());

/** The summary of a non-empty list of times (ms); one sort serves the quantiles and the box. */
export function summarizeDistribution(valuesMs: readonly number[]): DistributionSummary {
  if (valuesMs.length === 0) throw new Error('summarizeDistribution: no values');
  const s = Float64Array.from(valuesMs).sort();
  return {
    n: s.length,
    // Rounded percent, so 0.999 is keyed p99.9 and not p99.90000000000001.
    quantilesMs: Object.fromEntries(SUMMARY_QUANTILES.map((q) => [`p${Number((q * 100).toPrecision(6))}`, quantile(s, q)])),
    tukeyBoxMs: boxOfSorted(s),
  };
}

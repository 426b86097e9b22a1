/**
 * Bootstrap confidence intervals for medians and ratios of medians, reproducible through a seeded
 * generator.
 *
 * A cell can hold ~50,000 samples; resampling them 2,000 times and taking each median costs
 * seconds per cell. The median of a resample depends only on which order statistic it lands on,
 * and the m-th smallest of n uniform indices is floor(n * U) with U ~ Beta(m, n - m + 1). Drawing
 * that rank directly gives exactly the distribution of the classic resample-and-take-the-median
 * bootstrap in O(1) per resample (tests compare the two).
 */

/** Default number of bootstrap resamples. */
export const DEFAULT_RESAMPLES = 2000;
/** Default seed: every report, comparison and claim verdict is reproducible from the files alone. */
export const DEFAULT_SEED = 0x5eed;
/** Fewer timed samples than this and a bootstrap interval of the median is not worth stating. */
export const MIN_SAMPLES_FOR_CI = 10;

/** Uniform [0, 1) generator. */
export type Rng = () => number;

/** mulberry32: a small, fast, well-distributed 32-bit generator; deterministic for a given seed. */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function standardNormal(rng: Rng): number {
  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** Gamma(shape, 1) for shape >= 1 (Marsaglia and Tsang, 2000). */
function gamma(rng: Rng, shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = standardNormal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Beta(a, b) for a, b >= 1. */
function beta(rng: Rng, a: number, b: number): number {
  const x = gamma(rng, a);
  return x / (x + gamma(rng, b));
}

/** Median of a sorted, non-empty array (mean of the two middle values for an even length). */
export function sortedMedian(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  const h = n >> 1;
  return n % 2 ? sorted[h]! : (sorted[h - 1]! + sorted[h]!) / 2;
}

/** Draws medians of bootstrap resamples of one sample set. */
export class MedianResampler {
  private readonly sorted: Float64Array;
  /** Median of the original samples. */
  readonly median: number;

  constructor(samples: readonly number[]) {
    if (samples.length === 0) throw new Error('MedianResampler: no samples');
    this.sorted = Float64Array.from(samples).sort();
    this.median = sortedMedian(this.sorted);
  }

  /** The median of one resample (with replacement, same size). */
  draw(rng: Rng): number {
    const n = this.sorted.length;
    const at = (u: number): number => this.sorted[Math.min(n - 1, Math.floor(n * u))]!;
    if (n % 2 === 1) {
      const m = (n + 1) / 2;
      return at(beta(rng, m, n - m + 1));
    }
    // Even n: the mean of the (n/2)-th and (n/2 + 1)-th smallest; the next order statistic is the
    // minimum of the n - m uniforms left above U(m).
    const m = n / 2;
    const lower = beta(rng, m, n - m + 1);
    const upper = lower + (1 - lower) * (1 - Math.pow(1 - rng(), 1 / (n - m)));
    return (at(lower) + at(upper)) / 2;
  }
}

/** Percentile-bootstrap interval options. */
export interface BootstrapOptions {
  /** Number of resamples (default 2000). */
  resamples?: number;
  /** Two-sided confidence level (default 0.95). */
  confidence?: number;
  /** PRNG seed (default DEFAULT_SEED). */
  seed?: number;
}

/** An estimate with its percentile-bootstrap confidence interval. */
export interface Interval {
  /** Point estimate from the original samples. */
  estimate: number;
  /** Lower bound. */
  lo: number;
  /** Upper bound. */
  hi: number;
}

function percentileInterval(estimate: number, draws: Float64Array, confidence: number): Interval {
  draws.sort();
  const q = (p: number): number => draws[Math.min(draws.length - 1, Math.max(0, Math.round(p * (draws.length - 1))))]!;
  return { estimate, lo: q((1 - confidence) / 2), hi: q(1 - (1 - confidence) / 2) };
}

/** Bootstrap confidence interval of the median of one sample set. */
export function medianInterval(samples: readonly number[], opts: BootstrapOptions = {}): Interval {
  const r = new MedianResampler(samples);
  const rng = createRng(opts.seed ?? DEFAULT_SEED);
  const draws = new Float64Array(opts.resamples ?? DEFAULT_RESAMPLES);
  for (let i = 0; i < draws.length; i++) draws[i] = r.draw(rng);
  return percentileInterval(r.median, draws, opts.confidence ?? 0.95);
}

/**
 * Bootstrap confidence interval of the mean of one sample set (classic resampling). The work is
 * n x resamples, so for very large n the resample count is lowered to keep it near 2e7 draws
 * (never below 200). Resampling draws from the sorted samples, so the interval depends on the
 * samples and the seed only, not on the order they were recorded in.
 */
export function meanInterval(samples: readonly number[], opts: BootstrapOptions = {}): Interval {
  const n = samples.length;
  if (n === 0) throw new Error('meanInterval: no samples');
  const sorted = Float64Array.from(samples).sort();
  const rng = createRng(opts.seed ?? DEFAULT_SEED);
  const wanted = opts.resamples ?? DEFAULT_RESAMPLES;
  const draws = new Float64Array(Math.min(wanted, Math.max(200, Math.floor(2e7 / n))));
  for (let i = 0; i < draws.length; i++) {
    let sum = 0;
    for (let k = 0; k < n; k++) sum += sorted[Math.floor(rng() * n)]!;
    draws[i] = sum / n;
  }
  return percentileInterval(sorted.reduce((a, b) => a + b, 0) / n, draws, opts.confidence ?? 0.95);
}

/**
 * Bootstrap confidence interval of a product of median ratios: prod(median(num_i)) / prod(median(den_i)),
 * each sample set resampled independently. One numerator and one denominator give the plain
 * ratio B/A; two of each give a ratio of ratios (how a ratio changes between two conditions).
 */
export function medianRatioInterval(
  numerators: ReadonlyArray<readonly number[]>,
  denominators: ReadonlyArray<readonly number[]>,
  opts: BootstrapOptions = {},
): Interval {
  const nums = numerators.map((s) => new MedianResampler(s));
  const dens = denominators.map((s) => new MedianResampler(s));
  const ratio = (f: (r: MedianResampler) => number): number => nums.reduce((p, r) => p * f(r), 1) / dens.reduce((p, r) => p * f(r), 1);
  const rng = createRng(opts.seed ?? DEFAULT_SEED);
  const draws = new Float64Array(opts.resamples ?? DEFAULT_RESAMPLES);
  for (let i = 0; i < draws.length; i++) draws[i] = ratio((r) => r.draw(rng));
  return percentileInterval(
    ratio((r) => r.median),
    draws,
    opts.confidence ?? 0.95,
  );
}

/** Ratio verdict by Criterion's rule: a change only when the whole interval lies beyond the noise threshold. */
export type ChangeVerdict = 'lower' | 'higher' | 'no significant change';

/** Classifies a ratio interval against a relative noise threshold (0.05 = ±5 %). */
export function classifyRatio(ci: { lo: number; hi: number }, threshold: number): ChangeVerdict {
  if (ci.lo > 1 + threshold) return 'higher';
  if (ci.hi < 1 - threshold) return 'lower';
  return 'no significant change';
}

/**
 * Replicate-aware (two-stage) bootstrap interval of a product of cells' medians divided by another
 * (for a plain ratio, one cell on each side) when each cell was measured in several processes:
 * every draw resamples each cell's processes with replacement, then the samples inside each chosen
 * process (its median drawn by MedianResampler), and takes the mean of those process medians.
 * Pooling the samples instead treats every sample as independent, so the interval would only
 * reflect within-process noise and miss the larger process-to-process variation (JIT, memory
 * placement, machine state) that a rerun meets. `estimate` is the same statistic on the original
 * processes (the mean of the process medians); callers that report another point estimate scale
 * the interval to it (see harness/report/model.ts ratioOfCells).
 */
export function replicateRatioInterval(
  numerators: ReadonlyArray<ReadonlyArray<readonly number[]>>,
  denominators: ReadonlyArray<ReadonlyArray<readonly number[]>>,
  opts: BootstrapOptions = {},
): Interval {
  const cells = (side: ReadonlyArray<ReadonlyArray<readonly number[]>>): MedianResampler[][] =>
    side.map((processes) => {
      if (processes.length === 0) throw new Error('replicateRatioInterval: a cell has no processes');
      return processes.map((s) => new MedianResampler(s));
    });
  const nums = cells(numerators);
  const dens = cells(denominators);
  const rng = createRng(opts.seed ?? DEFAULT_SEED);
  /** One cell's statistic: the mean of its process medians, each process drawn with replacement and its median drawn. */
  const drawCell = (groups: readonly MedianResampler[]): number => {
    let sum = 0;
    for (let k = 0; k < groups.length; k++) sum += groups[Math.floor(rng() * groups.length)]!.draw(rng);
    return sum / groups.length;
  };
  const meanMedian = (groups: readonly MedianResampler[]): number => groups.reduce((a, r) => a + r.median, 0) / groups.length;
  const product = (side: MedianResampler[][], f: (g: readonly MedianResampler[]) => number): number => side.reduce((p, g) => p * f(g), 1);
  const draws = new Float64Array(opts.resamples ?? DEFAULT_RESAMPLES);
  for (let i = 0; i < draws.length; i++) draws[i] = product(nums, drawCell) / product(dens, drawCell);
  return percentileInterval(product(nums, meanMedian) / product(dens, meanMedian), draws, opts.confidence ?? 0.95);
}

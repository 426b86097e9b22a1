import { describe, expect, it } from 'vitest';
import {
  classifyRatio,
  createRng,
  MedianResampler,
  medianInterval,
  medianRatioInterval,
  replicateRatioInterval,
  sortedMedian,
} from '../harness/stats/bootstrap.js';
import { tukeyBox } from '../harness/report/distribution.js';

/** The textbook bootstrap: resample with replacement, sort, take the median. */
function naiveMedians(samples: number[], draws: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: draws }, () => sortedMedian(Array.from(samples, () => samples[Math.floor(rng() * samples.length)]!).sort((a, b) => a - b)));
}

describe('bootstrap of the median (order-statistic sampling)', () => {
  it.each([15, 16])('draws the same distribution as resampling n=%i samples and sorting', (n) => {
    const rng = createRng(7);
    const samples = Array.from({ length: n }, () => Math.exp(rng()));
    const fast = new MedianResampler(samples);
    const r = createRng(11);
    const fastDraws = Array.from({ length: 40_000 }, () => fast.draw(r));
    const slowDraws = naiveMedians(samples, 40_000, 13);
    // Kolmogorov distance between the two empirical distributions (both discrete, on the same support).
    const cdf = (xs: number[], x: number): number => xs.filter((v) => v <= x).length / xs.length;
    const support = [...new Set([...fastDraws, ...slowDraws])];
    expect(Math.max(...support.map((x) => Math.abs(cdf(fastDraws, x) - cdf(slowDraws, x))))).toBeLessThan(0.02);
  });

  it('covers the true median about 95 % of the time, and is reproducible from its seed', () => {
    const rng = createRng(3);
    let covered = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      // Exponential(1): true median ln 2.
      const samples = Array.from({ length: 101 }, () => -Math.log(1 - rng()));
      const ci = medianInterval(samples, { seed: t });
      if (ci.lo <= Math.LN2 && Math.LN2 <= ci.hi) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.9);
    expect(covered / trials).toBeLessThan(0.99);
    const samples = Array.from({ length: 500 }, (_, i) => 1 + (i % 17) / 10);
    expect(medianInterval(samples)).toEqual(medianInterval(samples));
  });

  it('ratio of medians: exact for scaled samples, judged by the whole interval against the threshold', () => {
    const rng = createRng(5);
    const a = Array.from({ length: 300 }, () => 10 + rng());
    const ci = medianRatioInterval([a.map((v) => v * 1.2)], [a]);
    expect(ci.estimate).toBeCloseTo(1.2, 12);
    expect(classifyRatio(ci, 0.05)).toBe('higher');
    expect(classifyRatio({ lo: 0.9, hi: 0.96 }, 0.05)).toBe('no significant change');
    expect(classifyRatio({ lo: 0.8, hi: 0.94 }, 0.05)).toBe('lower');
    expect(classifyRatio({ lo: 1.02, hi: 1.3 }, 0.05)).toBe('no significant change');
  });

  it('box plot: quartiles and Tukey whiskers', () => {
    expect(tukeyBox([1, 2, 3, 4, 5, 6, 7, 8, 9, 100])).toEqual([1, 3.25, 5.5, 7.75, 9]);
  });
});

describe('replicate-aware bootstrap of a ratio (processes, then samples)', () => {
  /** One process: n samples around `level` with 2 % within-process noise. */
  const process = (rng: () => number, level: number, n = 400): number[] => Array.from({ length: n }, () => level * (1 + 0.02 * (rng() - 0.5)));

  it('an A/A pair whose processes differ by a few % is no change, where pooling the samples calls it one', () => {
    const rng = createRng(21);
    // The same configuration twice; each process lands on its own level (spread ±4 %), as reruns do.
    const a = [0.97, 1.0, 1.04].map((l) => process(rng, l));
    const b = [1.01, 1.04, 1.05].map((l) => process(rng, l));
    const pooled = medianRatioInterval([b.flat()], [a.flat()]);
    const byProcess = replicateRatioInterval([b], [a]);
    expect(pooled.hi - pooled.lo).toBeLessThan(0.02);
    expect(classifyRatio(pooled, 0.01)).toBe('higher');
    expect(byProcess.lo).toBeLessThan(1.01);
    expect(classifyRatio(byProcess, 0.01)).toBe('no significant change');
  });

  it('still finds a 20 % slowdown when processes agree within 1 %, and is reproducible from its seed', () => {
    const rng = createRng(5);
    const a = [1.0, 1.01, 0.995].map((l) => process(rng, l));
    const b = [1.2, 1.21, 1.195].map((l) => process(rng, l));
    const ci = replicateRatioInterval([b], [a], { seed: 9 });
    expect(ci.estimate).toBeCloseTo(1.2, 2);
    expect(classifyRatio(ci, 0.05)).toBe('higher');
    expect(replicateRatioInterval([b], [a], { seed: 9 })).toEqual(ci);
  });
});

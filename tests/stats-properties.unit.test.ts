import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { medianInterval } from '../harness/stats/bootstrap.js';
import { bootstrapCis, flagOutliers, summarize } from '../harness/stats/summary.js';

/** Property tests of harness/stats/summary.ts: what must hold for any sample set, not only the ones we thought of. */

/** Latency-like samples (ms): positive, finite, ties and outliers included. */
const samples = (minLength = 1): fc.Arbitrary<number[]> =>
  fc.array(fc.oneof(fc.double({ min: 1e-4, max: 1e4, noNaN: true }), fc.constantFrom(1, 1, 2, 1000)), { minLength, maxLength: 300 });

/** A sample set and a permutation of it. */
const withPermutation = (minLength = 1): fc.Arbitrary<[number[], number[]]> =>
  samples(minLength).chain((s) => fc.shuffledSubarray(s, { minLength: s.length, maxLength: s.length }).map((p) => [s, p] as [number[], number[]]));

describe('statistics properties (fast-check)', () => {
  it('the median lies within [min, max], and so does the mean', () => {
    fc.assert(
      fc.property(samples(), (s) => {
        const st = summarize(s);
        expect(st.minMs).toBe(Math.min(...s));
        expect(st.maxMs).toBe(Math.max(...s));
        expect(st.medianMs).toBeGreaterThanOrEqual(st.minMs);
        expect(st.medianMs).toBeLessThanOrEqual(st.maxMs);
        expect(st.meanMs).toBeGreaterThanOrEqual(st.minMs * (1 - 1e-12));
        expect(st.meanMs).toBeLessThanOrEqual(st.maxMs * (1 + 1e-12));
        expect(st.n).toBe(s.length);
      }),
    );
  });

  it('percentiles are monotone: min <= median <= p90 <= p99 <= max', () => {
    fc.assert(
      fc.property(samples(), (s) => {
        const st = summarize(s);
        const chain = [st.minMs, st.medianMs, st.p90Ms, st.p99Ms, st.maxMs];
        for (let i = 1; i < chain.length; i++) expect(chain[i]!).toBeGreaterThanOrEqual(chain[i - 1]!);
      }),
    );
  });

  it('the bootstrap is deterministic for a seed, and its interval contains the median', () => {
    fc.assert(
      fc.property(samples(), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (s, seed) => {
        const a = medianInterval(s, { seed, resamples: 500 });
        expect(medianInterval(s, { seed, resamples: 500 })).toEqual(a);
        const median = summarize(s).medianMs;
        expect(Math.abs(a.estimate - median)).toBeLessThanOrEqual(1e-12 * Math.abs(median));
        expect(a.lo).toBeLessThanOrEqual(a.estimate);
        expect(a.hi).toBeGreaterThanOrEqual(a.estimate);
      }),
      { numRuns: 200 },
    );
  });

  it('outlier flags never drop a sample: indices are valid and unique, severe ones are also mild, the input is untouched', () => {
    fc.assert(
      fc.property(samples(), (s) => {
        const copy = [...s];
        const o = flagOutliers(s);
        expect(s).toEqual(copy);
        for (const kind of ['mild', 'severe', 'mad'] as const) {
          const idx = o.indices[kind];
          expect(o[kind]).toBe(idx.length);
          expect(new Set(idx).size).toBe(idx.length);
          for (const i of idx) expect(Number.isInteger(i) && i >= 0 && i < s.length).toBe(true);
        }
        for (const i of o.indices.severe) expect(o.indices.mild).toContain(i);
        // Flags describe samples; the summary still counts every one of them.
        expect(summarize(s).n).toBe(s.length);
      }),
    );
  });

  it('summaries, intervals and flagged values are invariant under sample order', () => {
    fc.assert(
      fc.property(withPermutation(10), ([s, p]) => {
        expect(summarize(p)).toEqual(summarize(s));
        expect(bootstrapCis(p)).toEqual(bootstrapCis(s));
        const flagged = (x: number[]) => {
          const o = flagOutliers(x);
          return {
            mild: o.indices.mild.map((i) => x[i]!).sort((a, b) => a - b),
            severe: o.indices.severe.map((i) => x[i]!).sort((a, b) => a - b),
            mad: o.indices.mad.map((i) => x[i]!).sort((a, b) => a - b),
          };
        };
        expect(flagged(p)).toEqual(flagged(s));
      }),
      { numRuns: 100 },
    );
  });
});

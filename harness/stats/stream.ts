import { paddedLength, type Padding, type ShapeStream } from '../../workloads/shapes.js';
import type { CellStream } from '../results/schema.js';
import { medianCi } from '../worker/measure.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from './parity.js';

/**
 * A stream cell's figures from its replicates (docs/shapes.md): the cold pass split into compiling
 * and running, first sight of a shape against its repeats, compile counts, and the penalty against
 * the same batches at one fixed shape.
 */

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
const sum = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0);

/** What one clean replicate of a stream cell measured (ms). */
export interface StreamRun {
  /** The mode's compile segment of the cold start (torchscript's trace, tf.function's first call on batch 0...), 0 if none. */
  compileSegmentMs: number;
  coldPassMs: number[];
  /** passesMs[p][i]: batch i in warm pass p. */
  passesMs: number[][];
  compiles: { afterCold: number | null; afterWarm: number | null };
  /** The fixed-shape baseline's samples. */
  fixedMs: number[];
}

/** Each batch's median over the warm passes. */
export const warmBatchMedians = (passesMs: number[][]): number[] => passesMs[0]!.map((_, i) => median(passesMs.map((p) => p[i]!)));

/** The cold pass of one replicate: its total with the compile segment, and the part of it spent compiling. */
function coldSplit(r: StreamRun): { coldMs: number; compileMs: number } {
  const warm = warmBatchMedians(r.passesMs);
  const excess = r.coldPassMs.map((t, i) => Math.max(0, t - warm[i]!));
  return { coldMs: r.compileSegmentMs + sum(r.coldPassMs), compileMs: r.compileSegmentMs + sum(excess) };
}

/** The figures of a stream cell from its clean replicates (at least one). */
export function streamFigures(
  s: ShapeStream,
  padding: Padding,
  runs: StreamRun[],
  flops: { useful: number; padded: number },
): Omit<CellStream, 'seed'> & { seed: number } {
  const padded = s.lengths.map((rows) => paddedLength(padding, rows, s));
  const batch = s.lengths[0]!.length;
  const firstOf = new Map<number, number>();
  padded.forEach((len, i) => {
    if (!firstOf.has(len)) firstOf.set(len, i);
  });
  const firsts = [...firstOf.values()];
  const splits = runs.map(coldSplit);
  const coldMs = median(splits.map((x) => x.coldMs));
  const compileMs = median(splits.map((x) => x.compileMs));
  const warmTotals = runs.flatMap((r) => r.passesMs.map(sum));
  const warmMs = median(warmTotals);
  const fixedAll = runs.flatMap((r) => r.fixedMs);
  const ci = medianCi(fixedAll);
  const fixedMs = median(fixedAll);
  const realTokens = sum(s.lengths.flat());
  return {
    seed: s.seed,
    batches: s.lengths.length,
    maxLength: s.maxLength,
    buckets: s.buckets,
    lengths: s.lengths,
    paddedLengths: padded,
    distinctShapes: firstOf.size,
    realTokens,
    paddedTokens: batch * sum(padded),
    usefulFlops: flops.useful,
    paddedFlops: flops.padded,
    coldMs,
    compileMs,
    runMs: coldMs - compileMs,
    firstSightMs: median(runs.flatMap((r) => firsts.map((i) => r.coldPassMs[i]!))),
    repeatMs: median(runs.flatMap((r) => firsts.map((i) => warmBatchMedians(r.passesMs)[i]!))),
    compiles: runs[0]!.compiles,
    perRealTokenUs: (warmMs * 1e3) / realTokens,
    fixed: { medianMs: fixedMs, loMs: ci.loNs, hiMs: ci.hiNs, n: fixedAll.length },
    dynamicPenalty: coldMs / (s.lengths.length * fixedMs),
    warmPenalty: warmMs / (s.lengths.length * fixedMs),
  };
}

/**
 * Parity of a stream cell: each batch's logits against the reference's logits of its rows, each
 * computed alone and unpadded. The verdict is the worst batch's relative L2.
 */
export function compareStream(
  referenceRows: number[][],
  outputs: number[][],
  s: ShapeStream,
  padding: Padding,
): { relL2: number; maxAbs: number; pass: boolean; worstBatch: number; worstLength: number; shapes: number; problem?: string } {
  const batch = s.lengths[0]!.length;
  const classes = referenceRows[0]!.length;
  const padded = s.lengths.map((rows) => paddedLength(padding, rows, s));
  const shapes = new Set(padded).size;
  if (outputs.length !== s.lengths.length)
    return {
      relL2: NaN,
      maxAbs: NaN,
      pass: false,
      worstBatch: -1,
      worstLength: -1,
      shapes,
      problem: `${outputs.length} outputs for ${s.lengths.length} batches`,
    };
  let worst = { relL2: -1, maxAbs: 0, i: 0 };
  let pass = true;
  for (let i = 0; i < outputs.length; i++) {
    const ref = referenceRows.slice(i * batch, (i + 1) * batch).flat();
    const f = compareOutputs(ref, [batch, classes], outputs[i]!, [batch, outputs[i]!.length / batch]);
    if (!f.pass) pass = false;
    const r = Number.isFinite(f.relL2) ? f.relL2 : Infinity;
    if (r > worst.relL2) worst = { relL2: r, maxAbs: f.maxAbs, i };
  }
  return {
    relL2: worst.relL2,
    maxAbs: worst.maxAbs,
    pass: pass && worst.relL2 < FP32_REL_L2_TOLERANCE,
    worstBatch: worst.i,
    worstLength: padded[worst.i]!,
    shapes,
  };
}

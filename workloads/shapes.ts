import { join } from 'node:path';
import { cachedFile } from './cache.js';
import { cacheDir, workloadKey } from './materialize.js';
import { Stream } from './rng.js';
import { writeSafetensors } from './safetensors.js';
import type { Params, WorkloadFamily } from './types.js';

/**
 * The shapes axis: `fixed` (every call has the preset's shape: every run before this axis) or
 * `stream` (a seeded sequence of batches whose rows have different lengths, the same for every
 * engine; docs/shapes.md). A stream cell also has a padding strategy, which decides the shape each
 * batch is run at. Only families with a sequence dimension (`lengthParam`) have streams.
 */
export const SHAPES = ['fixed', 'stream'] as const;
/** A value of the shapes axis. */
export type Shapes = (typeof SHAPES)[number];

/**
 * How a stream batch is padded before it runs: `exact` to its longest row (every batch its own
 * shape), `bucket` to the next bucket length (`buckets` below), `max` to the preset's length (one
 * shape for the whole stream). Rows are padded on the right with PAD_TOKEN; each row's length
 * goes with the batch, so the model masks the padding.
 */
export const PADDINGS = ['exact', 'bucket', 'max'] as const;
/** A padding strategy. */
export type Padding = (typeof PADDINGS)[number];

/** The stream's fixed settings: its length, the warm passes a worker makes over it, the pad token and the length distribution's spread. */
export const STREAM = {
  /** Batches in a stream. */
  batches: 16,
  /** Warm passes over the whole stream after the checked cold pass: at least... */
  minPasses: 3,
  /** ...and at most (the measure settings' min and max time bound them too). */
  maxPasses: 20,
  /** Token id of padding positions (any id works: the mask hides them). */
  padToken: 0,
  /** Row lengths are log-normal around a median of a third of the maximum, with this sigma, clipped to [minLength, maxLength]. */
  lengthSigma: 0.6,
} as const;

/** Bumped whenever a stream's lengths, tokens or file layout change, so cached stream files are never reused. */
export const STREAM_VERSION = 1;

/** One shape stream: its batches' row lengths, before padding. */
export interface ShapeStream {
  /** The run's seed it was drawn from. */
  seed: number;
  /** The family's length parameter (`seq`) at the preset: the longest a row can be. */
  maxLength: number;
  /** The shortest a row can be: max(1, min(8, floor(maxLength / 4))). */
  minLength: number;
  /** Bucket lengths of the `bucket` strategy: powers of two from minLength's, and maxLength. */
  buckets: number[];
  /** Row lengths of each batch: lengths[i][r] for batch i, row r. */
  lengths: number[][];
}

/** Why the family has no shape stream, or undefined when it has one. */
export function streamProblem(family: WorkloadFamily): string | undefined {
  return family.lengthParam ? undefined : `the ${family.name} family has no sequence length to vary (a shape stream varies the length of token sequences)`;
}

/** The stream of a workload instance and batch size (the same for every engine and padding). */
export function shapeStream(family: WorkloadFamily, params: Params, seed: number, batch: number, batches: number = STREAM.batches): ShapeStream {
  const why = streamProblem(family);
  if (why) throw new Error(why);
  const maxLength = params[family.lengthParam!] as number;
  const minLength = Math.max(1, Math.min(8, Math.floor(maxLength / 4)));
  const buckets: number[] = [];
  for (let b = 2 ** Math.ceil(Math.log2(minLength)); b < maxLength; b *= 2) buckets.push(b);
  buckets.push(maxLength);
  const rng = new Stream(`${seed}:stream:${family.name}:${maxLength}:${batch}`);
  const median = Math.max(minLength, maxLength / 3);
  const lengths = Array.from({ length: batches }, () =>
    Array.from({ length: batch }, () => Math.min(maxLength, Math.max(minLength, Math.round(median * Math.exp(STREAM.lengthSigma * rng.normal()))))),
  );
  return { seed, maxLength, minLength, buckets, lengths };
}

/** The length a batch with these row lengths runs at under a padding strategy. */
export function paddedLength(padding: Padding, rows: number[], s: Pick<ShapeStream, 'buckets' | 'maxLength'>): number {
  const longest = Math.max(...rows);
  if (padding === 'exact') return longest;
  if (padding === 'max') return s.maxLength;
  return s.buckets.find((b) => b >= longest) ?? s.maxLength;
}

/** The tokens of stream row r of batch i: its own seeded stream, so a row is the same whatever it is padded to. */
function rowTokens(seed: number, i: number, r: number, length: number, vocab: number): number[] {
  const rng = new Stream(`${seed}:stream-tokens:${i}:${r}`);
  return Array.from({ length }, () => rng.below(vocab));
}

/** A batch of rows padded on the right to `length`: tokens [rows, length] and lengths [rows]. */
function padBatch(rows: number[][], length: number): { tokens: Int32Array; lengths: Int32Array } {
  const tokens = new Int32Array(rows.length * length).fill(STREAM.padToken);
  rows.forEach((row, r) => tokens.set(row, r * length));
  return { tokens, lengths: Int32Array.from(rows, (row) => row.length) };
}

/**
 * Writes (once; cached) a stream cell's batches as one safetensors file: `tokens.<i>` I32
 * [batch, L_i] and `lengths.<i>` I32 [batch] for i in 0..batches-1, padded by the strategy; and
 * `fixed.tokens` [batch, maxLength] with `fixed.lengths` all maxLength, the fixed-shape baseline
 * the dynamic penalty divides by. With padding `rows` (the reference's file), every row is a batch
 * of one at its own length, unpadded, in order (batch i row r is entry i * batch + r).
 */
export function materializeStream(
  family: WorkloadFamily,
  params: Params,
  seed: number,
  batch: number,
  padding: Padding | 'rows',
  dir = cacheDir(),
): { path: string; stream: ShapeStream; batches: number } {
  const stream = shapeStream(family, params, seed, batch);
  const vocab = params.vocab as number;
  const rows = stream.lengths.map((ls, i) => ls.map((len, r) => rowTokens(seed, i, r, len, vocab)));
  const batches = padding === 'rows' ? rows.flat().map((row) => [row]) : rows;
  const key = workloadKey(family, params, seed);
  const path = cachedFile(join(dir, `${family.name}-${key}.stream-v${STREAM_VERSION}-b${batch}-n${stream.lengths.length}-${padding}.safetensors`), (p) => {
    const padded = batches.map((b) =>
      padBatch(
        b,
        padding === 'rows'
          ? b[0]!.length
          : paddedLength(
              padding,
              b.map((row) => row.length),
              stream,
            ),
      ),
    );
    const fixedRows = Array.from({ length: batch }, (_, r) => rowTokens(seed, -1, r, stream.maxLength, vocab));
    const all = [
      ...padded.flatMap((b, i) => [
        { name: `tokens.${i}`, dtype: 'I32' as const, shape: [b.lengths.length, b.tokens.length / b.lengths.length], data: b.tokens },
        { name: `lengths.${i}`, dtype: 'I32' as const, shape: [b.lengths.length], data: b.lengths },
      ]),
      ...(padding === 'rows'
        ? []
        : (() => {
            const f = padBatch(fixedRows, stream.maxLength);
            return [
              { name: 'fixed.tokens', dtype: 'I32' as const, shape: [batch, stream.maxLength], data: f.tokens },
              { name: 'fixed.lengths', dtype: 'I32' as const, shape: [batch], data: f.lengths },
            ];
          })()),
    ];
    writeSafetensors(
      p,
      all.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
      (i) => all[i]!.data,
      { family: family.name, seed: String(seed), batch: String(batch), padding, batches: String(batches.length), version: String(STREAM_VERSION) },
    );
  });
  return { path, stream, batches: batches.length };
}

/** Forward FLOPs of a whole stream: `useful` counts each row at its real length, `padded` at the length its batch ran at. */
export function streamFlops(family: WorkloadFamily, params: Params, s: ShapeStream, padding: Padding): { useful: number; padded: number } {
  const at = (len: number): number => family.flopsPerSample({ ...params, [family.lengthParam!]: len });
  let useful = 0;
  let padded = 0;
  for (const rows of s.lengths) {
    for (const len of rows) useful += at(len);
    padded += rows.length * at(paddedLength(padding, rows, s));
  }
  return { useful, padded };
}

import { join } from 'node:path';
import { cacheEntryOk, recordCacheEntry } from '../../workloads/cache.js';
import { cacheDir, type Materialized } from '../../workloads/materialize.js';
import { loadTensors, saveTensors } from '../../workloads/safetensors.js';
import { materializeStream, shapeStream, STREAM, STREAM_VERSION, type Padding, type ShapeStream } from '../../workloads/shapes.js';
import type { Params, WorkloadFamily } from '../../workloads/types.js';
import { ENGINES } from '../engines/registry.js';
import type { RunConfig } from '../results/schema.js';
import type { StreamRun } from '../stats/stream.js';
import type { ToWorker } from '../worker/protocol.js';
import { describeFailure } from './failure.js';
import type { WorkerOutcome } from './outcome.js';
import { REFERENCE, REFERENCE_NAME } from './plan.js';
import { runEngineWorker, threadEnv } from './workers.js';

/**
 * Stream cells' side of a run (docs/shapes.md): the job's stream fields, the reference (every row
 * of the stream alone and unpadded, through the inference reference engine, cached), and the
 * view of a stream worker's outcome that the cell records use.
 */

type Job = Extract<ToWorker, { type: 'job' }>;

/** A stream job's `stream` fields for a padding strategy (or `rows`, the reference's unpadded rows). */
export function streamFields(
  family: WorkloadFamily,
  params: Params,
  config: RunConfig,
  batchSize: number,
  padding: Padding | 'rows',
): NonNullable<Job['stream']> {
  const f = materializeStream(family, params, config.seed, batchSize, padding);
  return { path: f.path, batches: f.batches, minPasses: STREAM.minPasses, maxPasses: STREAM.maxPasses };
}

/** The reference's logits of every stream row, in order (batch i row r is entry i * batch + r), and the stream. */
export interface StreamReference {
  rows: number[][];
  stream: ShapeStream;
  family: WorkloadFamily;
  params: Params;
  batchSize: number;
}

/**
 * The reference of a stream (workload, batch): each row run alone at its own length, unpadded, by
 * the inference reference (ONNX Runtime on the CPU, optimizations disabled), cached by ORT version.
 * A padded, masked batch must reproduce these rows: that is what a stream cell's parity checks.
 */
export async function streamReference(
  m: Materialized,
  family: WorkloadFamily,
  params: Params,
  batchSize: number,
  config: RunConfig,
  ortVersion: string,
  jobOf: (c: typeof REFERENCE & { family: WorkloadFamily; params: Params; batchSize: number; threads: number; shapes: 'stream'; padding: Padding }) => Job,
): Promise<StreamReference | { error: string }> {
  const stream = shapeStream(family, params, config.seed, batchSize);
  const path = join(
    cacheDir(),
    `${family.name}-${m.key}.stream-reference-v${STREAM_VERSION}-b${batchSize}-n${stream.lengths.length}-ort${ortVersion}.safetensors`,
  );
  if (cacheEntryOk(path)) {
    const t = loadTensors(path).tensors.get('logits')!;
    const classes = t.shape[1]!;
    return {
      stream,
      family,
      params,
      batchSize,
      rows: Array.from({ length: t.shape[0]! }, (_, j) => Array.from(t.data.subarray(j * classes, (j + 1) * classes))),
    };
  }
  const threads = Math.max(...config.threads);
  const job = {
    ...jobOf({ ...REFERENCE, family, params, batchSize: 1, threads, shapes: 'stream', padding: 'exact' }),
    stream: streamFields(family, params, config, batchSize, 'rows'),
  };
  const o = await runEngineWorker(ENGINES[REFERENCE.engine], job, { timeoutMs: config.cellTimeoutMs, env: threadEnv(threads), onParity: () => 'stop' });
  if (o.parity?.type !== 'stream-parity') return { error: `stream reference (${REFERENCE_NAME}) failed: ${describeFailure(o)}` };
  const rows = o.parity.outputs;
  const classes = rows[0]?.length ?? 0;
  saveTensors(path, new Map([['logits', { dtype: 'F32', shape: [rows.length, classes], data: Float32Array.from(rows.flat()) }]]), {
    reference: REFERENCE_NAME,
    ortVersion,
    padding: 'rows',
  });
  recordCacheEntry(path);
  return { stream, family, params, batchSize, rows };
}

/** What a clean stream replicate measured, for harness/stats/stream.ts. */
export function streamRun(o: WorkerOutcome): StreamRun | undefined {
  if (o.parity?.type !== 'stream-parity' || !o.passes || !o.fixedSamples) return undefined;
  return {
    compileSegmentMs: o.built?.phases.compileMs ?? 0,
    coldPassMs: o.parity.passNs.map((v) => v / 1e6),
    passesMs: o.passes.passesNs.map((p) => p.map((v) => v / 1e6)),
    compiles: { afterCold: o.parity.compiles, afterWarm: o.passes.compiles },
    fixedMs: o.fixedSamples.samplesNs.map((v) => v / 1e6),
  };
}

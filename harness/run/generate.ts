import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheEntryOk, recordCacheEntry } from '../../workloads/cache.js';
import { GENERATE, materializePrompt, PROMPT_VERSION, type Generation } from '../../workloads/generate.js';
import { cacheDir, type Materialized } from '../../workloads/materialize.js';
import { loadTensors, saveTensors } from '../../workloads/safetensors.js';
import type { Params, WorkloadFamily } from '../../workloads/types.js';
import { ENGINES } from '../engines/registry.js';
import type { RunConfig } from '../results/schema.js';
import type { GenerationReference, GenerationRun } from '../stats/generate.js';
import type { ToWorker } from '../worker/protocol.js';
import { describeFailure } from './failure.js';
import type { WorkerOutcome } from './outcome.js';
import { REFERENCE, REFERENCE_NAME, type PlannedCell } from './plan.js';
import { parityFilePath } from './training.js';
import { runEngineWorker, threadEnv } from './workers.js';

/**
 * Generation cells' side of a run (docs/generation.md): the job's `generate` fields, the reference
 * generation (ONNX Runtime on the CPU, optimizations disabled, with its key/value cache; cached),
 * and the view of a generation worker's outcome that the cell records use.
 */

type Job = Extract<ToWorker, { type: 'job' }>;

/** The reference generation as the reference names it. */
export const GENERATION_REFERENCE_NAME = `${REFERENCE_NAME} with its key/value cache`;

/** A generation job's `generate` fields: the prompt file and a fresh file for the worker's logits. */
export function generateFields(
  family: WorkloadFamily,
  params: Params,
  config: RunConfig,
  batchSize: number,
  g: Generation,
  m: Materialized,
  tag: string,
): NonNullable<Job['generate']> {
  return {
    promptPath: materializePrompt(family, params, config.seed, batchSize, g.promptLength),
    logitsPath: parityFilePath(m, `generate-${tag}`),
    minPasses: GENERATE.minPasses,
    maxPasses: GENERATE.maxPasses,
  };
}

/** The generate job of a cell (or of the reference): the cell's job with its `generate` fields. */
export function generateJob(
  base: Job,
  c: Pick<PlannedCell, 'family' | 'params' | 'batchSize' | 'engine'> & { generation: Generation },
  config: RunConfig,
  m: Materialized,
): Job {
  return {
    ...base,
    cell: { ...base.cell, task: 'generate', generation: c.generation },
    generate: generateFields(c.family, c.params, config, c.batchSize, c.generation, m, c.engine),
  };
}

/** The generation's logits a worker wrote: `logits` [newTokens, batch, vocab]. */
export function readLogits(path: string): { data: Float32Array; shape: number[] } {
  const t = loadTensors(path).tensors.get('logits');
  if (!t || t.dtype !== 'F32' || t.shape.length !== 3) throw new Error(`${path}: expected an F32 tensor 'logits' [steps, batch, vocab]`);
  return { data: t.data as Float32Array, shape: t.shape };
}

/**
 * The reference generation of a (workload, batch, prompt length, new tokens): ONNX Runtime on the
 * CPU with optimizations disabled, with its key/value cache, cached next to the weights by ORT
 * version; the tokens it chose and every step's logits.
 */
export async function generationReference(
  m: Materialized,
  family: WorkloadFamily,
  params: Params,
  batchSize: number,
  g: Generation,
  config: RunConfig,
  ortVersion: string,
  jobOf: (c: typeof REFERENCE & { family: WorkloadFamily; params: Params; batchSize: number; threads: number }) => Job,
): Promise<GenerationReference | { error: string }> {
  const path = join(
    cacheDir(),
    `${family.name}-${m.key}.generate-reference-v${PROMPT_VERSION}-b${batchSize}-p${g.promptLength}-n${g.newTokens}-ort${ortVersion}.safetensors`,
  );
  const fromFile = (p: string): GenerationReference => {
    const t = loadTensors(p).tensors;
    const ids = t.get('tokens')!;
    const logits = t.get('logits')!;
    const steps = ids.shape[1]!;
    return {
      tokens: Array.from({ length: ids.shape[0]! }, (_, r) => Array.from(ids.data.subarray(r * steps, (r + 1) * steps))),
      logits: logits.data as Float32Array,
      vocab: logits.shape[2]!,
    };
  };
  if (cacheEntryOk(path)) return fromFile(path);
  const threads = Math.max(...config.threads);
  const kv: Generation = { ...g, cache: 'kv' };
  const job = generateJob(jobOf({ ...REFERENCE, family, params, batchSize, threads }), { ...REFERENCE, family, params, batchSize, generation: kv }, config, m);
  try {
    // A fault planted for a test (FWBENCH_FAULT) is for the cells under test, never for what they are judged against.
    const env = { ...threadEnv(threads), FWBENCH_FAULT: '' };
    const o = await runEngineWorker(ENGINES[REFERENCE.engine], job, { timeoutMs: config.cellTimeoutMs, env, onParity: () => 'stop' });
    if (o.parity?.type !== 'generate-parity') return { error: `generation reference (${GENERATION_REFERENCE_NAME}) failed: ${describeFailure(o)}` };
    const logits = readLogits(job.generate!.logitsPath);
    const ids = o.parity.tokens;
    saveTensors(
      path,
      new Map([
        ['tokens', { dtype: 'I32', shape: [ids.length, ids[0]?.length ?? 0], data: Int32Array.from(ids.flat()) }],
        ['logits', { dtype: 'F32', shape: logits.shape, data: logits.data }],
      ]),
      { reference: GENERATION_REFERENCE_NAME, ortVersion },
    );
    recordCacheEntry(path);
    return { tokens: ids, logits: logits.data, vocab: logits.shape[2]! };
  } finally {
    rmSync(job.generate!.logitsPath, { force: true });
  }
}

/** What a clean generation replicate measured, for harness/stats/generate.ts. */
export function generationRun(o: WorkerOutcome): GenerationRun | undefined {
  if (o.parity?.type !== 'generate-parity' || !o.passes) return undefined;
  return {
    coldPassMs: o.parity.passNs.map((v) => v / 1e6),
    passesMs: o.passes.passesNs.map((p) => p.map((v) => v / 1e6)),
    compiles: { afterCold: o.parity.compiles, afterWarm: o.passes.compiles },
  };
}

import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { makeFolder } from '../harness/io/files.js';
import { cachedFile } from './cache.js';
import { InputError } from '../harness/errors.js';
import { Stream } from './rng.js';
import { numel, writeSafetensors } from './safetensors.js';
import type { InputSpec, Params, WeightSpec, WorkloadFamily } from './types.js';

/** Bumped whenever generated values change, so old cache entries are never reused. */
export const GENERATOR_VERSION = 1;

/** Where canonical weights, inputs and reference outputs are cached. */
export function cacheDir(): string {
  const dir = process.env.FWBENCH_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fwbench');
  const from = process.env.FWBENCH_CACHE ? `FWBENCH_CACHE=${dir}` : `cache folder ${dir}`;
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError(`${from} is a file, not a folder; point FWBENCH_CACHE at a folder`);
  makeFolder(dir, from);
  return dir;
}

/** Canonical JSON (sorted keys) so equal parameters hash equally. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Content key of a workload instance: family, parameters, seed and generator version. */
export function workloadKey(family: WorkloadFamily, params: Params, seed: number): string {
  return createHash('sha256')
    .update(canonicalJson({ family: family.name, params, seed, v: GENERATOR_VERSION }))
    .digest('hex')
    .slice(0, 16);
}

/** Values of one weight tensor. */
export function generateWeight(spec: WeightSpec, seed: number): Float32Array {
  const rng = new Stream(`${seed}:weight:${spec.name}`);
  const out = new Float32Array(numel(spec.shape));
  const init = spec.init;
  if (init.kind === 'normal') {
    const mean = init.mean ?? 0;
    for (let i = 0; i < out.length; i++) out[i] = mean + init.std * rng.normal();
  } else {
    const span = init.high - init.low;
    for (let i = 0; i < out.length; i++) out[i] = init.low + span * rng.uniform();
  }
  return out;
}

/**
 * Values of one input tensor. Each sample has its own stream, so the first k samples of a batch
 * of n equal a batch of k: results at different batch sizes see the same data.
 */
export function generateInput(spec: InputSpec, seed: number): Float32Array | Int32Array {
  const batch = spec.shape[0]!;
  const perSample = numel(spec.shape) / batch;
  const out = spec.dtype === 'I32' ? new Int32Array(batch * perSample) : new Float32Array(batch * perSample);
  for (let b = 0; b < batch; b++) {
    const rng = new Stream(`${seed}:input:${spec.name}:${b}`);
    for (let i = 0; i < perSample; i++) {
      out[b * perSample + i] = spec.init.kind === 'tokens' ? rng.below(spec.init.vocab) : spec.init.std * rng.normal();
    }
  }
  return out;
}

/** Paths of the materialized files of one workload instance. */
export interface Materialized {
  /** Content key (16 hex digits). */
  key: string;
  /** Canonical weights (safetensors). */
  weightsPath: string;
  /** Inputs for the batch (safetensors). */
  inputsPath: string;
}

/** Writes (once; cached by content key) the canonical weights and the inputs for a batch size. */
export function materialize(family: WorkloadFamily, params: Params, seed: number, batch: number, dir = cacheDir()): Materialized {
  const key = workloadKey(family, params, seed);
  const meta = { family: family.name, params: JSON.stringify(params), seed: String(seed), generator: String(GENERATOR_VERSION) };
  const weightsPath = cachedFile(join(dir, `${family.name}-${key}.weights.safetensors`), (path) => {
    const specs = family.weights(params);
    writeSafetensors(
      path,
      specs.map((s) => ({ name: s.name, dtype: 'F32' as const, shape: s.shape })),
      (i) => generateWeight(specs[i]!, seed),
      meta,
    );
  });
  const inputsPath = cachedFile(join(dir, `${family.name}-${key}.inputs-b${batch}.safetensors`), (path) => {
    const specs = family.inputs(params, batch);
    writeSafetensors(
      path,
      specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape })),
      (i) => generateInput(specs[i]!, seed),
      { ...meta, batch: String(batch) },
    );
  });
  return { key, weightsPath, inputsPath };
}

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheEntryOk, recordCacheEntry } from '../../workloads/cache.js';
import { cacheDir, type Materialized } from '../../workloads/materialize.js';
import { loadTensors, numel, saveTensors, type Tensor, type TensorMap } from '../../workloads/safetensors.js';
import { materializeLabels, TRAINING, type TrainingRecipe } from '../../workloads/training.js';
import type { Params, WorkloadFamily } from '../../workloads/types.js';
import { KERAS_WEIGHTS, kerasTensors } from '../engines/keras-layout.js';
import { ENGINES } from '../engines/registry.js';
import type { EngineId } from '../engines/types.js';
import type { RunConfig } from '../results/schema.js';
import type { TrainingExpectation } from '../stats/training-parity.js';
import { TRAIN_PARITY_TENSORS, type ToWorker } from '../worker/protocol.js';
import { describeFailure } from './failure.js';
import { runEngineWorker, threadEnv } from './workers.js';

/**
 * Training cells' side of a run: the job's training fields, the float64 reference (PyTorch on the
 * CPU, run once per workload, batch and parametrisation, and cached), and what it expects of an
 * engine, in the engine's own layout.
 */

/** The float64 reference of training cells: PyTorch's eager mode on the CPU. */
export const TRAINING_REFERENCE = { engine: 'torch' as const, mode: 'eager', device: 'cpu' as const };
/** The reference as cells' parity records name it. */
export const TRAINING_REFERENCE_NAME = 'torch/eager/cpu float64';

/** The parametrisation an engine trains: the canonical model, or Keras' (one LSTM bias; biased running variance). */
export type Parametrisation = 'torch' | 'keras';
export const parametrisationOf = (engine: EngineId): Parametrisation => (ENGINES[engine].stateLayout === 'keras' ? 'keras' : 'torch');

/**
 * Test-only: FWBENCH_PLANT=<bug>@<engine> sends that engine's training cells a wrong optimizer
 * (`no-weight-decay`: weight decay 0; `wrong-momentum`: momentum 0.99) while the reference keeps the
 * recipe, so a test can show parity catches it. Not a user feature.
 */
const PLANTS = { 'no-weight-decay': { weightDecay: 0 }, 'wrong-momentum': { momentum: 0.99 } } as const;
function planted(engine: string): Partial<TrainingRecipe> {
  const m = /^([a-z-]+)@([a-z-]+)$/.exec(process.env.FWBENCH_PLANT ?? '');
  if (!m || m[2] !== engine) return {};
  const plant = PLANTS[m[1] as keyof typeof PLANTS];
  if (!plant) throw new Error(`FWBENCH_PLANT=${process.env.FWBENCH_PLANT}: unknown bug; known: ${Object.keys(PLANTS).join(', ')}`);
  return plant;
}

/** A training job's `training` fields: the recipe, the labels, where to write the parity tensors, and for the reference its parametrisation. */
export function trainingFields(
  family: WorkloadFamily,
  params: Params,
  config: RunConfig,
  batchSize: number,
  parityPath: string,
  engine: string,
  reference?: Parametrisation,
): NonNullable<Extract<ToWorker, { type: 'job' }>['training']> {
  return {
    ...TRAINING,
    ...(reference ? {} : planted(engine)),
    labelsPath: materializeLabels(family, params, config.seed, batchSize),
    parityPath,
    ...(reference ? { reference } : {}),
  };
}

/** A fresh path for a worker's parity file, in the cache folder (deleted once read). */
export const parityFilePath = (m: Materialized, tag: string): string => join(cacheDir(), `${m.key}.parity-${process.pid}-${tag}-${Date.now()}.safetensors.tmp`);

/** The reference's losses and tensors (F64), from its cache file. */
export interface TrainingReference {
  losses: number[];
  tensors: TensorMap;
}

/**
 * The float64 reference for a workload, batch and parametrisation: cached next to the weights
 * (keyed by the torch version), otherwise run now in the torch worker.
 */
export async function trainingReference(
  m: Materialized,
  family: WorkloadFamily,
  params: Params,
  batchSize: number,
  config: RunConfig,
  torchVersion: string,
  as: Parametrisation,
  job: (c: typeof TRAINING_REFERENCE & { family: WorkloadFamily; params: Params; batchSize: number; threads: number }) => Extract<ToWorker, { type: 'job' }>,
): Promise<TrainingReference | { error: string }> {
  const path = join(cacheDir(), `${family.name}-${m.key}.train-reference-v2-${as}-b${batchSize}-s${config.seed}-torch${torchVersion}.safetensors`);
  if (cacheEntryOk(path)) {
    const { tensors, metadata } = loadTensors(path);
    return { losses: JSON.parse(metadata.losses ?? '[]') as number[], tensors };
  }
  const threads = Math.max(...config.threads);
  const tmp = parityFilePath(m, `reference-${as}`);
  const base = job({ ...TRAINING_REFERENCE, family, params, batchSize, threads });
  const msg: ToWorker = { ...base, cell: { ...base.cell, task: 'training' }, training: trainingFields(family, params, config, batchSize, tmp, 'torch', as) };
  try {
    const o = await runEngineWorker(ENGINES[TRAINING_REFERENCE.engine], msg, {
      timeoutMs: config.cellTimeoutMs,
      env: threadEnv(threads),
      onParity: () => 'stop',
    });
    if (!o.parity || o.parity.type !== 'train-parity' || !existsSync(tmp))
      return { error: `training reference (${TRAINING_REFERENCE_NAME}, ${as} parametrisation) failed: ${describeFailure(o)}` };
    const tensors = loadTensors(tmp).tensors;
    saveTensors(path, tensors, { reference: TRAINING_REFERENCE_NAME, parametrisation: as, torchVersion, losses: JSON.stringify(o.parity.losses) });
    recordCacheEntry(path);
    return { losses: o.parity.losses, tensors };
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The tensors of `file` under `prefix`, without it. */
function under(file: TensorMap, prefix: string): TensorMap {
  return new Map([...file].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

/** after - before, element by element in float64. */
function difference(after: TensorMap, before: TensorMap): TensorMap {
  return new Map(
    [...after].map(([name, t]) => {
      const b = before.get(name);
      if (!b) throw new Error(`training reference: no ${TRAIN_PARITY_TENSORS.state(0)}${name}`);
      return [name, { dtype: 'F64', shape: t.shape, data: Float64Array.from(t.data, (v, i) => v - b.data[i]!) } satisfies Tensor];
    }),
  );
}

/** A zero tensor of `t`'s shape. */
const zerosLike = (t: Tensor): Tensor => ({ dtype: 'F64', shape: t.shape, data: new Float64Array(numel(t.shape)) });

/**
 * What the reference expects of an engine, in the engine's layout. Canonical for PyTorch; for the
 * Keras-layout engines every canonical map goes through the one Keras mapping (keras-layout.ts):
 * it is linear (transposes, reshapes, an LSTM's bias sum), so it maps gradients and updates as it
 * maps weights. Gradients of tensors that are not trained (normalization statistics) are left out.
 */
export function expectationFor(
  engine: EngineId,
  family: WorkloadFamily,
  params: Params,
  canonicalWeights: TensorMap,
  ref: TrainingReference,
): TrainingExpectation {
  const grads = under(ref.tensors, TRAIN_PARITY_TENSORS.grad(1));
  const before = under(ref.tensors, TRAIN_PARITY_TENSORS.state(0));
  const updateFirst = difference(under(ref.tensors, TRAIN_PARITY_TENSORS.state(1)), before);
  const updateLast = difference(under(ref.tensors, TRAIN_PARITY_TENSORS.state(ref.losses.length)), before);
  const recipe = { learningRate: TRAINING.learningRate, momentum: TRAINING.momentum, weightDecay: TRAINING.weightDecay };
  if (ENGINES[engine].stateLayout !== 'keras') return { losses: ref.losses, grads, updateFirst, updateLast, initial: canonicalWeights, recipe };
  const mapping = KERAS_WEIGHTS[family.name];
  if (!mapping) throw new Error(`${engine}: the ${family.name} family has no Keras mapping to train in`);
  const toKeras = (m: TensorMap): TensorMap => kerasTensors(mapping(m, params));
  // Every canonical tensor the mapping needs; untrained ones get a zero gradient, dropped below.
  const complete = (partial: TensorMap): TensorMap => new Map([...canonicalWeights].map(([k, t]) => [k, partial.get(k) ?? zerosLike(t)]));
  const trained = toKeras(complete(new Map([...grads].map(([k, t]) => [k, { dtype: 'F64', shape: t.shape, data: new Float64Array(t.data.length).fill(1) }]))));
  const kerasGrads = toKeras(complete(grads));
  for (const [k, t] of trained) if (!t.data.some((v) => v !== 0)) kerasGrads.delete(k);
  return {
    losses: ref.losses,
    grads: kerasGrads,
    updateFirst: toKeras(complete(updateFirst)),
    updateLast: toKeras(complete(updateLast)),
    initial: toKeras(canonicalWeights),
    recipe,
  };
}

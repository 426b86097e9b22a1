import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import { tfjsNode } from '../harness/engines/tfjs/index.js';
import type { TfjsModel } from '../harness/engines/tfjs/model.js';
import { KERAS_MAPPING, type KerasMapping } from '../harness/engines/keras-layout.js';
import { buildRnn } from '../harness/engines/tfjs/rnn.js';
import { buildTransformer } from '../harness/engines/tfjs/transformer.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE, type ParityFigures } from '../harness/stats/parity.js';
import { REFERENCE } from '../harness/run/plan.js';
import { getFamily, int, type FamilyName } from '../workloads/index.js';
import { swapBlocks, workloadInstance, type WorkloadInstance } from './helpers.js';

/**
 * The fp32 tolerance must catch plausible weight-porting mistakes on every shipped preset, not only
 * on tiny: a transformer whose GELU is the tanh approximation and an LSTM with two gates swapped.
 * Each is planted in a TF.js model built from the canonical weights and run on tfjs-node (the
 * fastest in-process TF.js backend) at batch 1, against the run's reference (ONNX Runtime,
 * optimizations off); the correct tfjs-node model on the same inputs must pass.
 */

const BATCH = 1;
const SEED = 0;

/** tanh-approximate GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): what some ports use instead of erf. */
const geluTanh = (x: tf.Tensor2D): tf.Tensor2D => x.mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1)).mul(0.5);

/** Compares the correct tfjs-node model and a planted one with the reference on one preset's batch. */
async function againstReference(
  family: FamilyName,
  preset: string,
  plant: (inst: WorkloadInstance) => TfjsModel,
): Promise<{ right: ParityFigures; wrong: ParityFigures }> {
  const inst = workloadInstance(family, [], { seed: SEED, batch: BATCH, preset });
  const req = { family, params: inst.params, batchSize: BATCH, weights: inst.weights, device: 'cpu' as const, threads: 2 };
  const shape = [BATCH, inst.classes];

  const reference = await (await onnxruntime.load()).build({ ...req, mode: REFERENCE.mode });
  const ref = await reference.run(inst.inputs);
  await reference.dispose();

  const correct = await (await tfjsNode.load()).build({ ...req, mode: 'eager' });
  const right = await correct.run(inst.inputs);
  await correct.dispose();

  // Built after tfjs-node selected its backend, so the planted model runs on the same kernels.
  expect(tf.getBackend()).toBe('tensorflow');
  const planted = plant(inst);
  const out = tf.tidy(() => planted.predict(inst.inputs));
  const wrong = (await out.data()) as Float32Array;
  out.dispose();
  planted.dispose();

  const figures = { right: compareOutputs(ref, shape, right, shape), wrong: compareOutputs(ref, shape, wrong, shape) };
  // The figures docs/parity.md records.
  console.log(`${family} ${preset}: correct relL2 ${figures.right.relL2.toExponential(2)}, planted relL2 ${figures.wrong.relL2.toExponential(2)}`);
  return figures;
}

function expectCaught({ right, wrong }: { right: ParityFigures; wrong: ParityFigures }): void {
  expect(right.pass, right.problem).toBe(true);
  expect(right.relL2).toBeLessThan(FP32_REL_L2_TOLERANCE);
  expect(wrong.relL2).toBeGreaterThan(FP32_REL_L2_TOLERANCE);
  expect(wrong.pass).toBe(false);
}

const presets = (family: FamilyName): string[] => Object.values(getFamily(family).sizes);

describe('the fp32 parity tolerance catches planted porting bugs on every shipped preset', () => {
  it.each(presets('transformer'))(
    'transformer %s: tanh-approximate GELU fails, exact GELU passes',
    async (preset) => {
      expectCaught(await againstReference('transformer', preset, (inst) => buildTransformer(inst.weights, inst.params, KERAS_MAPPING, geluTanh)));
    },
    600_000,
  );

  it.each(presets('rnn'))(
    'rnn %s: forget and output gates swapped fails, canonical order passes',
    async (preset) => {
      expectCaught(
        await againstReference('rnn', preset, (inst) => {
          const H = int(inst.params, 'hidden');
          const swapped: KerasMapping = { ...KERAS_MAPPING, lstm: (...args) => KERAS_MAPPING.lstm(...args).map((t) => swapBlocks(t, H, 1, 3)) };
          return buildRnn(inst.weights, inst.params, swapped);
        }),
      );
    },
    600_000,
  );
});

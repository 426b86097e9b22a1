import { join } from 'node:path';
import { cachedFile } from './cache.js';
import { cacheDir, workloadKey } from './materialize.js';
import { Stream } from './rng.js';
import { writeSafetensors } from './safetensors.js';
import type { Params, WorkloadFamily } from './types.js';

/**
 * The training step every engine runs, declared once (docs/training.md explains each choice and
 * maps it onto each framework's optimizer): forward on the batch, cross-entropy (mean over the
 * batch) of the logits against seeded labels, backward, then SGD with momentum and coupled weight
 * decay, PyTorch's `torch.optim.SGD(lr, momentum, weight_decay)` formula:
 *
 *     g  <- grad + weightDecay * w           (every trainable tensor, biases and norms included)
 *     v  <- g at the first step, else momentum * v + g
 *     w  <- w - learningRate * v
 *
 * Keras' SGD (v <- momentum * v - lr * g; w <- w + v) is the same update for a fixed rate; its
 * `weight_decay` is decoupled, so the Keras engines add weightDecay * w to the gradient themselves.
 * TF.js' tf.train.momentum is the PyTorch formula without weight decay, added the same way.
 * BatchNorm normalizes with the batch's statistics and updates its running ones with
 * batchNormMomentum in PyTorch's convention (running <- (1 - m) running + m batch; Keras'
 * `momentum` is 1 - m). No dropout anywhere.
 */
export const TRAINING = {
  learningRate: 0.01,
  momentum: 0.9,
  weightDecay: 5e-4,
  batchNormMomentum: 0.1,
  /** Steps of the parity check (losses of each are compared; gradients at the first, weights after the first and the last). */
  paritySteps: 3,
} as const;
/** The training recipe a job carries (the worker reads it from there, never from its own copy). */
export interface TrainingRecipe {
  learningRate: number;
  momentum: number;
  weightDecay: number;
  batchNormMomentum: number;
  paritySteps: number;
}

/** Training FLOPs per sample by the common convention: three forward passes (forward, and backward's two products). */
export const TRAINING_FLOPS_FACTOR = 3;

/** Class labels for a batch: one per sample from its own stream (the first k of n equal a batch of k), in [0, classes). */
export function generateLabels(seed: number, batch: number, classes: number): Int32Array {
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) out[b] = new Stream(`${seed}:label:${b}`).below(classes);
  return out;
}

/** Writes (once; cached by content key) the training labels of a batch (safetensors, `labels` I32 [batch]). */
export function materializeLabels(family: WorkloadFamily, params: Params, seed: number, batch: number, dir = cacheDir()): string {
  const key = workloadKey(family, params, seed);
  const classes = family.outputShape(params, 1)[1]!;
  return cachedFile(join(dir, `${family.name}-${key}.labels-b${batch}.safetensors`), (path) => {
    writeSafetensors(path, [{ name: 'labels', dtype: 'I32', shape: [batch] }], () => generateLabels(seed, batch, classes), {
      family: family.name,
      seed: String(seed),
      batch: String(batch),
    });
  });
}

import * as tf from '@tensorflow/tfjs';
import type { TensorMap } from '../../../workloads/safetensors.js';
import type { KerasLayerWeights } from '../keras-layout.js';

/**
 * What every TF.js family builder (cnn.ts, rnn.ts, transformer.ts) returns, and how the tf.layers
 * ones load their weights. Only the family files import this at run time (the engine's index.ts
 * takes the type alone), so TensorFlow.js still loads only when a model is built.
 */

/** A TF.js model built from canonical weights: `predict` runs under the caller's tf.tidy. */
export interface TfjsModel {
  /** One forward pass on canonical inputs; returns logits [batch, classes]. */
  predict(inputs: TensorMap): tf.Tensor;
  /** Frees the model's weights. */
  dispose(): void;
}

/** Copies the mapped Keras weights into the model's layers (each list must match the layer's variables). */
export function loadKerasWeights(model: tf.LayersModel, list: KerasLayerWeights[]): void {
  for (const { layer, weights } of list) {
    const values = weights.map((t) => tf.tensor(t.data, t.shape));
    model.getLayer(layer).setWeights(values);
    // setWeights assigns (shares) the data into the layer's variables, so these handles can go.
    tf.dispose(values);
  }
}

/** One tensor of a trainable model's state, named `<keras layer>/<index>` (index in set_weights order). */
export interface StateVariable {
  name: string;
  variable: tf.Variable;
  /** False for normalization statistics (BatchNormalization's moving mean and variance). */
  trainable: boolean;
}

/** What a family builder gives for training: the inference model's layers and weights, run in training mode. */
export interface TfjsTrainable {
  /** The canonical inputs as the tensor the model takes (NHWC images, int32 tokens); the caller owns it. */
  toInput(inputs: TensorMap): tf.Tensor;
  /** Forward pass in training mode (BatchNorm on the batch's statistics, updating its moving ones); logits [batch, classes]. */
  forward(x: tf.Tensor): tf.Tensor;
  /** Every tensor of the model's state, in the order and with the names and shapes of the Keras-layout mapping. */
  state: StateVariable[];
  /** Frees the model's weights. */
  dispose(): void;
}

/** Options of a trainable build: the recipe's BatchNorm momentum, PyTorch convention (running <- (1 - m) running + m batch). */
export interface TrainableOptions {
  batchNormMomentum: number;
}

/** Checks a model's state against the mapped list: same names, same order, same shapes. */
function checkState(state: StateVariable[], list: KerasLayerWeights[]): void {
  const want = list.flatMap(({ layer, weights }) => weights.map((t, i) => `${layer}/${i} [${t.shape}]`));
  const got = state.map((s) => `${s.name} [${s.variable.shape}]`);
  if (want.join() !== got.join()) throw new Error(`TF.js model state does not match the Keras mapping: got ${got.join(', ')}; expected ${want.join(', ')}`);
}

/**
 * The state of a tf.layers model named after the mapped list: each listed layer's `weights`
 * (setWeights order: kernels and biases, then BatchNormalization's moving statistics).
 */
export function layersState(model: tf.LayersModel, list: KerasLayerWeights[]): StateVariable[] {
  const state = list.flatMap(({ layer }) =>
    // LayerVariable.read() is the tf.Variable behind the layer weight (no copy).
    model.getLayer(layer).weights.map((w, i) => ({ name: `${layer}/${i}`, variable: w.read() as tf.Variable, trainable: w.trainable })),
  );
  checkState(state, list);
  return state;
}

/** The state of a model written in raw ops: one trainable tf.Variable per mapped tensor. */
export function variablesState(list: KerasLayerWeights[], variables: Map<string, tf.Tensor[]>): StateVariable[] {
  const state = list.flatMap(({ layer }) => variables.get(layer)!.map((v, i) => ({ name: `${layer}/${i}`, variable: v as tf.Variable, trainable: true })));
  checkState(state, list);
  return state;
}

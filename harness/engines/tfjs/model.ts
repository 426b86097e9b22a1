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

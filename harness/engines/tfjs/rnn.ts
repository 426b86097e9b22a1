import * as tf from '@tensorflow/tfjs';
import type { TensorMap } from '../../../workloads/safetensors.js';
import { int, type Params } from '../../../workloads/types.js';
import { layersState, loadKerasWeights, type TfjsModel, type TfjsTrainable } from './model.js';
import { KERAS_MAPPING, kerasName, rnnKerasWeights, type KerasLayerWeights, type KerasMapping } from '../keras-layout.js';

/**
 * LSTM classifier as a TF.js user writes it: tf.layers Embedding -> stacked LSTM -> Dense on the
 * last hidden state, weights loaded through `setWeights` in Keras layout and gate order.
 */

/** The tf.layers LSTM classifier with the mapped weights in it, and the mapped list (the names of its state). */
function lstmClassifier(weights: TensorMap, params: Params, mapping: KerasMapping): { model: tf.LayersModel; list: KerasLayerWeights[] } {
  const layers = int(params, 'layers');
  const input = tf.input({ shape: [int(params, 'seq')], dtype: 'int32', name: 'tokens' });
  // Every weight is overwritten by setWeights; zero initialisers matter for big models because
  // tfjs' default orthogonal recurrent initialiser runs a slow QR in JavaScript.
  let x = tf.layers
    .embedding({ inputDim: int(params, 'vocab'), outputDim: int(params, 'embed'), embeddingsInitializer: 'zeros', name: 'embedding' })
    .apply(input) as tf.SymbolicTensor;
  for (let l = 0; l < layers; l++) {
    x = tf.layers
      .lstm({
        units: int(params, 'hidden'),
        activation: 'tanh',
        // tfjs defaults to hardSigmoid; the canonical LSTM uses the exact logistic sigmoid.
        recurrentActivation: 'sigmoid',
        unitForgetBias: false,
        returnSequences: l < layers - 1,
        kernelInitializer: 'zeros',
        recurrentInitializer: 'zeros',
        biasInitializer: 'zeros',
        name: kerasName(`lstm.${l}`),
      })
      .apply(x) as tf.SymbolicTensor;
  }
  const logits = tf.layers
    .dense({ units: int(params, 'classes'), kernelInitializer: 'zeros', biasInitializer: 'zeros', name: 'fc' })
    .apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: 'lstm_classifier' });
  const list = rnnKerasWeights(weights, params, mapping);
  loadKerasWeights(model, list);
  return { model, list };
}

const tokenIds = (inputs: TensorMap): tf.Tensor2D => {
  const tokens = inputs.get('tokens');
  if (!tokens) throw new Error("rnn expects a 'tokens' input");
  return tf.tensor2d(tokens.data as Int32Array, tokens.shape as [number, number], 'int32');
};

/** Builds the LSTM classifier for `params` from canonical weights; `mapping` is injectable for tests. */
export function buildRnn(weights: TensorMap, params: Params, mapping: KerasMapping = KERAS_MAPPING): TfjsModel {
  const { model } = lstmClassifier(weights, params, mapping);
  return {
    predict(inputs) {
      const ids = tokenIds(inputs);
      return model.predict(ids, { batchSize: ids.shape[0] }) as tf.Tensor;
    },
    dispose: () => model.dispose(),
  };
}

/** The same LSTM classifier for training (no BatchNorm or dropout: training mode changes nothing in its forward pass). */
export function trainableRnn(weights: TensorMap, params: Params, mapping: KerasMapping = KERAS_MAPPING): TfjsTrainable {
  const { model, list } = lstmClassifier(weights, params, mapping);
  return {
    toInput: tokenIds,
    forward: (x) => model.apply(x, { training: true }) as tf.Tensor,
    state: layersState(model, list),
    dispose: () => model.dispose(),
  };
}

import * as tf from '@tensorflow/tfjs';
import type { TensorMap } from '../../../workloads/safetensors.js';
import { int, type Params } from '../../../workloads/types.js';
import { layersState, loadKerasWeights, type TfjsModel, type TfjsTrainable } from './model.js';
import { KERAS_MAPPING, kerasName, rnnKerasWeights, type KerasLayerWeights, type KerasMapping } from '../keras-layout.js';

/**
 * LSTM classifier as a TF.js user writes it: tf.layers Embedding -> stacked LSTM -> Dense on the
 * last hidden state, weights loaded through `setWeights` in Keras layout and gate order.
 */

/**
 * The tf.layers LSTM classifier with the mapped weights in it, and the mapped list (the names of its
 * state). With `stream`, the model takes any length (timesteps None) and returns the top layer's
 * whole sequence instead of the logits: buildRnn picks each row's last real step and classifies it.
 */
function lstmClassifier(weights: TensorMap, params: Params, mapping: KerasMapping, stream = false): { model: tf.LayersModel; list: KerasLayerWeights[] } {
  const layers = int(params, 'layers');
  const input = tf.input({ shape: [stream ? null : int(params, 'seq')], dtype: 'int32', name: 'tokens' });
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
        returnSequences: stream || l < layers - 1,
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
  const model = tf.model({ inputs: input, outputs: stream ? [x, logits] : logits, name: 'lstm_classifier' });
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
export function buildRnn(weights: TensorMap, params: Params, mapping: KerasMapping = KERAS_MAPPING, stream = false): TfjsModel {
  const { model } = lstmClassifier(weights, params, mapping, stream);
  const fc = model.getLayer('fc');
  return {
    predict(inputs) {
      const ids = tokenIds(inputs);
      if (!stream) return model.predict(ids, { batchSize: ids.shape[0] }) as tf.Tensor;
      // tf.layers' LSTM takes no lengths and tfjs masks only token id 0 (Embedding maskZero), a
      // real token here; a unidirectional LSTM's output at a real step does not depend on the
      // padding after it, so each row's last real step (length - 1) is picked by a mask product (step == length - 1)
      // (exact: the other steps are multiplied by 0) and classified by the model's own Dense layer.
      const lengths = inputs.get('lengths');
      if (!lengths) throw new Error("a stream rnn expects a 'lengths' input");
      const [sequence] = model.predict(ids, { batchSize: ids.shape[0] }) as tf.Tensor[];
      const steps = tf.range(0, ids.shape[1], 1, 'int32').expandDims(0);
      const lastStep = tf
        .tensor1d(lengths.data as Int32Array, 'int32')
        .sub(tf.scalar(1, 'int32'))
        .expandDims(1);
      const last = tf.equal(steps, lastStep).cast('float32').expandDims(2);
      return fc.apply(sequence!.mul(last).sum(1)) as tf.Tensor;
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

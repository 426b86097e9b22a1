import * as tf from '@tensorflow/tfjs';
import { resnetLayout, type ConvLayer } from '../../../workloads/cnn.js';
import type { Tensor, TensorMap } from '../../../workloads/safetensors.js';
import type { Params } from '../../../workloads/types.js';
import { layersState, loadKerasWeights, type TfjsModel, type TfjsTrainable, type TrainableOptions } from './model.js';
import { cnnKerasWeights, convLayerNames, KERAS_MAPPING, kerasName, nchwToNhwc, type KerasLayerWeights, type KerasMapping } from '../keras-layout.js';

/**
 * ResNet as a TF.js user writes it: a tf.layers functional model on NHWC images, padded the way
 * keras.applications' ResNet pads (explicit ZeroPadding2D + 'valid' where TF's 'same' would pad
 * asymmetrically), with weights loaded through `setWeights`.
 */

/** PyTorch-style BatchNorm epsilon of the canonical model (Keras defaults to 1e-3). */
const BN_EPSILON = 1e-5;

// Every weight is overwritten by setWeights; zero initialisers skip the random draws at build time.
const NO_INIT = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;

/** Conv2D with the canonical symmetric padding, followed by its BatchNormalization (`bnMomentum` in Keras' convention). */
function convBn(x: tf.SymbolicTensor, c: ConvLayer, bnMomentum?: number): tf.SymbolicTensor {
  const names = convLayerNames(c);
  // TF 'same' puts the extra pixel of an odd total padding at the end (stride 2 on even sides),
  // so it equals the canonical symmetric padding only at stride 1 with pad = (k - 1) / 2.
  const same = c.pad > 0 && c.stride === 1 && 2 * c.pad === c.k - 1;
  let y = x;
  if (c.pad > 0 && !same) y = tf.layers.zeroPadding2d({ padding: c.pad, name: `${names.conv}_pad` }).apply(y) as tf.SymbolicTensor;
  y = tf.layers
    .conv2d({ filters: c.cout, kernelSize: c.k, strides: c.stride, padding: same ? 'same' : 'valid', useBias: false, name: names.conv, ...NO_INIT })
    .apply(y) as tf.SymbolicTensor;
  return tf.layers
    .batchNormalization({
      axis: -1,
      epsilon: BN_EPSILON,
      ...(bnMomentum !== undefined ? { momentum: bnMomentum } : {}),
      name: names.bn,
      gammaInitializer: 'zeros',
      betaInitializer: 'zeros',
    })
    .apply(y) as tf.SymbolicTensor;
}

const relu = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor => tf.layers.activation({ activation: 'relu', name }).apply(x) as tf.SymbolicTensor;

/** The tf.layers ResNet with the mapped weights in it, and the mapped list (the names of its state). */
function resnet(weights: TensorMap, params: Params, mapping: KerasMapping, bnMomentum?: number): { model: tf.LayersModel; list: KerasLayerWeights[] } {
  const l = resnetLayout(params);
  const input = tf.input({ shape: [l.image, l.image, l.channels], name: 'images' });
  let x = relu(convBn(input, l.stem, bnMomentum), 'conv1_relu');
  // Zero padding equals PyTorch's -inf padding here: after ReLU every window has a value >= 0.
  x = tf.layers.zeroPadding2d({ padding: 1, name: 'pool1_pad' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'pool1' }).apply(x) as tf.SymbolicTensor;
  for (const b of l.blocks) {
    let y = x;
    b.convs.forEach((c, i) => {
      y = convBn(y, c, bnMomentum);
      if (i < b.convs.length - 1) y = relu(y, `${convLayerNames(c).bn}_relu`);
    });
    const shortcut = b.downsample ? convBn(x, b.downsample, bnMomentum) : x;
    const sum = tf.layers.add({ name: `${kerasName(b.prefix)}_add` }).apply([shortcut, y]) as tf.SymbolicTensor;
    x = relu(sum, `${kerasName(b.prefix)}_out`);
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: l.classes, name: 'fc', ...NO_INIT }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: 'resnet' });
  const list = cnnKerasWeights(weights, params, mapping);
  loadKerasWeights(model, list);
  return { model, list };
}

const nhwcImages = (inputs: TensorMap): Tensor => {
  const images = inputs.get('images');
  if (!images) throw new Error("cnn expects an 'images' input");
  return nchwToNhwc(images);
};

/** Builds the ResNet for `params` from canonical weights; `mapping` is injectable for tests. */
export function buildCnn(weights: TensorMap, params: Params, mapping: KerasMapping = KERAS_MAPPING): TfjsModel {
  const { model } = resnet(weights, params, mapping);
  // A TF.js user holds images NHWC already; converting the harness' NCHW copy once per input
  // keeps that layout change out of the timed loop.
  const nhwc = new WeakMap<Tensor['data'], Tensor>();
  return {
    predict(inputs) {
      const images = inputs.get('images');
      let host = images && nhwc.get(images.data);
      if (!host) {
        host = nhwcImages(inputs);
        nhwc.set(images!.data, host);
      }
      const batch = host.shape[0]!;
      return model.predict(tf.tensor4d(host.data as Float32Array, host.shape as [number, number, number, number]), { batchSize: batch }) as tf.Tensor;
    },
    dispose: () => model.dispose(),
  };
}

/**
 * The same ResNet for training: called with `training: true`, each BatchNormalization normalizes
 * with the batch's statistics (biased variance) and moves its moving ones by Keras' momentum,
 * 1 - the recipe's PyTorch-convention momentum.
 */
export function trainableCnn(weights: TensorMap, params: Params, opts: TrainableOptions, mapping: KerasMapping = KERAS_MAPPING): TfjsTrainable {
  const { model, list } = resnet(weights, params, mapping, 1 - opts.batchNormMomentum);
  return {
    toInput(inputs) {
      const host = nhwcImages(inputs);
      return tf.tensor4d(host.data as Float32Array, host.shape as [number, number, number, number]);
    },
    forward: (x) => model.apply(x, { training: true }) as tf.Tensor,
    state: layersState(model, list),
    dispose: () => model.dispose(),
  };
}

import * as tf from '@tensorflow/tfjs';
import type { TensorMap } from '../../../workloads/safetensors.js';
import { LAYER_NORM_EPS } from '../../../workloads/transformer.js';
import { int, type Params } from '../../../workloads/types.js';
import { variablesState, type TfjsModel, type TfjsTrainable } from './model.js';
import { KERAS_MAPPING, kerasName, transformerKerasWeights, type KerasLayerWeights, type KerasMapping } from '../keras-layout.js';

/**
 * BERT-style encoder in TF.js ops: tf.layers has no multi-head attention, so this is the encoder
 * a TF.js user writes by hand. Weights are tf tensors in Keras layout (Dense kernels [in, out]),
 * created once at build time; every forward pass runs inside the caller's tf.tidy.
 */

// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT defines it (not the tanh approximation).
/** The feed-forward activation every engine uses. */
export const geluExact = (x: tf.Tensor2D): tf.Tensor2D => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5);

interface Encoder {
  /** Logits of the batch; with `lengths` (a shape stream), positions at or beyond a row's length are padding, masked out of attention. */
  forward(tokens: tf.Tensor2D, lengths?: tf.Tensor1D): tf.Tensor2D;
  /** The weights by Keras layer name, in the mapped order. */
  vars: Map<string, tf.Tensor[]>;
  list: KerasLayerWeights[];
}

/** The encoder's forward pass over its weights: tf tensors for inference, tf.Variables (`trainable`) for training. */
function encoder(weights: TensorMap, params: Params, mapping: KerasMapping, gelu: (x: tf.Tensor2D) => tf.Tensor2D, trainable: boolean): Encoder {
  const [H, heads, layers] = [int(params, 'hidden'), int(params, 'heads'), int(params, 'layers')];
  const headDim = H / heads;
  const vars = new Map<string, tf.Tensor[]>();
  const list = transformerKerasWeights(weights, params, mapping);
  for (const { layer, weights: tensors } of list) {
    vars.set(
      layer,
      tensors.map((t) => {
        const value = tf.tensor(t.data, t.shape);
        if (!trainable) return value;
        // The variable shares the value's data (reference counted): the handle can go.
        const v = tf.variable(value, true);
        value.dispose();
        return v;
      }),
    );
  }
  const get = (prefix: string): tf.Tensor[] => vars.get(kerasName(prefix))!;

  const dense = (x: tf.Tensor2D, prefix: string): tf.Tensor2D => {
    const [kernel, bias] = get(prefix) as [tf.Tensor2D, tf.Tensor1D];
    return tf.fused.matMul({ a: x, b: kernel, bias }) as tf.Tensor2D;
  };
  const layerNorm = (x: tf.Tensor2D, prefix: string): tf.Tensor2D => {
    const [gamma, beta] = get(prefix) as [tf.Tensor1D, tf.Tensor1D];
    const { mean, variance } = tf.moments(x, -1, true);
    return x
      .sub(mean)
      .mul(tf.rsqrt(variance.add(LAYER_NORM_EPS)))
      .mul(gamma)
      .add(beta);
  };
  /** Self-attention over rows [batch * seq, H]: heads split contiguously, scaled dot product, softmax. */
  const attention = (x: tf.Tensor2D, batch: number, seq: number, prefix: string, keyBias?: tf.Tensor4D): tf.Tensor2D => {
    const split = (t: tf.Tensor2D): tf.Tensor4D => t.reshape([batch, seq, heads, headDim]).transpose([0, 2, 1, 3]);
    const q = split(dense(x, `${prefix}.query`)).mul(1 / Math.sqrt(headDim)) as tf.Tensor4D;
    const k = split(dense(x, `${prefix}.key`));
    const v = split(dense(x, `${prefix}.value`));
    const scores = tf.matMul(q, k, false, true);
    const probs = tf.softmax(keyBias ? scores.add(keyBias) : scores);
    const context = tf
      .matMul(probs, v)
      .transpose([0, 2, 1, 3])
      .reshape([batch * seq, H]) as tf.Tensor2D;
    return dense(context, `${prefix}.output`);
  };

  const forward = (tokens: tf.Tensor2D, lengths?: tf.Tensor1D): tf.Tensor2D => {
    const [batch, seq] = tokens.shape;
    const [word] = get('embeddings.word') as [tf.Tensor2D];
    const [table] = get('embeddings.position') as [tf.Tensor2D];
    // A stream batch of length L takes positions 0..L-1.
    const position = seq === table.shape[0] ? table : table.slice([0, 0], [seq, H]);
    // -1e9 on the scores of padded keys ([batch, 1, 1, seq], broadcast over heads and queries).
    const keyBias = lengths
      ? (tf
          .cast(tf.greaterEqual(tf.range(0, seq, 1, 'int32').expandDims(0), lengths.expandDims(1)), 'float32')
          .mul(-1e9)
          .reshape([batch, 1, 1, seq]) as tf.Tensor4D)
      : undefined;
    const embedded = tf.gather(word, tokens).add(position) as tf.Tensor3D;
    let x = layerNorm(embedded.reshape([batch * seq, H]), 'embeddings.norm');
    for (let l = 0; l < layers; l++) {
      const a = `layers.${l}.attention`;
      const f = `layers.${l}.ffn`;
      x = layerNorm(x.add(attention(x, batch, seq, a, keyBias)), `${a}.norm`);
      x = layerNorm(x.add(dense(gelu(dense(x, `${f}.intermediate`)), `${f}.output`)), `${f}.norm`);
    }
    const first = x.reshape([batch, seq, H]).slice([0, 0, 0], [batch, 1, H]).reshape([batch, H]) as tf.Tensor2D;
    return dense(tf.tanh(dense(first, 'pooler')), 'classifier');
  };

  return { forward, vars, list };
}

const tokenIds = (inputs: TensorMap): tf.Tensor2D => {
  const tokens = inputs.get('tokens');
  if (!tokens) throw new Error("transformer expects a 'tokens' input");
  return tf.tensor2d(tokens.data as Int32Array, tokens.shape as [number, number], 'int32');
};

/** A stream batch's row lengths (`lengths` I32 [batch]), or undefined for a fixed-shape batch. */
export const rowLengths = (inputs: TensorMap): tf.Tensor1D | undefined => {
  const lengths = inputs.get('lengths');
  return lengths ? tf.tensor1d(lengths.data as Int32Array, 'int32') : undefined;
};

/**
 * Builds the encoder classifier for `params` from canonical weights; `mapping` and `gelu` are
 * injectable so tests can plant a wrong layout or activation and check that parity catches it.
 */
export function buildTransformer(
  weights: TensorMap,
  params: Params,
  mapping: KerasMapping = KERAS_MAPPING,
  gelu: (x: tf.Tensor2D) => tf.Tensor2D = geluExact,
): TfjsModel {
  const { forward, vars } = encoder(weights, params, mapping, gelu, false);
  return {
    predict: (inputs) => forward(tokenIds(inputs), rowLengths(inputs)),
    dispose: () => {
      for (const list of vars.values()) tf.dispose(list);
    },
  };
}

/** The same encoder for training: its weights are trainable tf.Variables (no dropout, no normalization statistics). */
export function trainableTransformer(weights: TensorMap, params: Params, mapping: KerasMapping = KERAS_MAPPING): TfjsTrainable {
  const { forward, vars, list } = encoder(weights, params, mapping, geluExact, true);
  return {
    toInput: tokenIds,
    forward: (x) => forward(x as tf.Tensor2D),
    state: variablesState(list, vars),
    dispose: () => {
      for (const list of vars.values()) tf.dispose(list);
    },
  };
}

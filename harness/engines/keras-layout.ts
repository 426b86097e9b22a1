import { allConvs, cnn, resnetLayout, type ConvLayer } from '../../workloads/cnn.js';
import { rnn } from '../../workloads/rnn.js';
import type { Tensor, TensorMap } from '../../workloads/safetensors.js';
import { transformer } from '../../workloads/transformer.js';
import { int, type FamilyName, type Params, type WorkloadFamily } from '../../workloads/types.js';

/**
 * The single description of how canonical weights become Keras layer weights, shared by the
 * TensorFlow.js engines and (serialized) by the Python TensorFlow runner. Framework-free on
 * purpose: only typed arrays, so the same lists can be written to a file.
 *
 * Keras layouts: Conv2D kernel HWIO [kh, kw, in, out]; Dense kernel [in, out] then bias;
 * BatchNormalization [gamma, beta, moving_mean, moving_variance]; Embedding [vocab, embed];
 * LSTM [kernel [in, 4H], recurrent_kernel [H, 4H], bias [4H]] with gate blocks (i, f, c, o),
 * which is the canonical (i, f, g, o) order, so only transposes and the bias sum are needed;
 * LayerNormalization [gamma, beta]. Images are NHWC.
 */

/** Weights of one Keras layer, in the order `layer.set_weights` / `setWeights` expects. */
export interface KerasLayerWeights {
  /** Keras layer name (canonical prefix with `.` replaced by `_`, e.g. `layer1_0_conv1`). */
  layer: string;
  /** Weights in Keras order and layout. */
  weights: Tensor[];
}

function expectRank(t: Tensor, rank: number, what: string): void {
  if (t.shape.length !== rank) throw new Error(`${what} expects a rank-${rank} tensor, got shape [${t.shape}]`);
}

/** Transposes a rank-2 F32 tensor: [rows, cols] -> [cols, rows]. */
export function transpose2d(t: Tensor): Tensor {
  expectRank(t, 2, 'transpose2d');
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return { dtype: 'F32', shape: [cols, rows], data: out };
}

/** Conv kernel OIHW [out, in, kh, kw] -> HWIO [kh, kw, in, out] (a transpose, not a reshape). */
export function oihwToHwio(t: Tensor): Tensor {
  expectRank(t, 4, 'oihwToHwio');
  const [o, i, kh, kw] = t.shape as [number, number, number, number];
  const out = new Float32Array(o * i * kh * kw);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) out[((y * kw + x) * i + b) * o + a] = t.data[((a * i + b) * kh + y) * kw + x]!;
      }
    }
  }
  return { dtype: 'F32', shape: [kh, kw, i, o], data: out };
}

/** Images NCHW [batch, c, h, w] -> NHWC [batch, h, w, c]. */
export function nchwToNhwc(t: Tensor): Tensor {
  expectRank(t, 4, 'nchwToNhwc');
  const [n, c, h, w] = t.shape as [number, number, number, number];
  const out = new Float32Array(n * c * h * w);
  const plane = h * w;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const src = (b * c + ch) * plane;
      const dst = b * plane * c + ch;
      for (let p = 0; p < plane; p++) out[dst + p * c] = t.data[src + p]!;
    }
  }
  return { dtype: 'F32', shape: [n, h, w, c], data: out };
}

/** Element-wise sum of two same-shape F32 tensors. */
export function addTensors(a: Tensor, b: Tensor): Tensor {
  if (a.shape.join() !== b.shape.join()) throw new Error(`cannot add shapes [${a.shape}] and [${b.shape}]`);
  const out = new Float32Array(a.data.length);
  for (let k = 0; k < out.length; k++) out[k] = a.data[k]! + b.data[k]!;
  return { dtype: 'F32', shape: [...a.shape], data: out };
}

/**
 * Canonical LSTM (weight_ih [4H, in], weight_hh [4H, H], bias_ih, bias_hh) -> Keras
 * [kernel [in, 4H], recurrent_kernel [H, 4H], bias [4H]]. Keras' gate order (i, f, c, o) is the
 * canonical (i, f, g, o), so gate blocks stay where they are; Keras has one bias, the sum.
 */
export function lstmToKeras(weightIh: Tensor, weightHh: Tensor, biasIh: Tensor, biasHh: Tensor): Tensor[] {
  return [transpose2d(weightIh), transpose2d(weightHh), addTensors(biasIh, biasHh)];
}

/** Per-layer-kind conversions; builders take one so a test can plant a wrong mapping. */
export interface KerasMapping {
  /** Conv2D without bias: [kernel HWIO]. */
  conv(kernel: Tensor): Tensor[];
  /** BatchNormalization: [gamma, beta, moving_mean, moving_variance]. */
  batchNorm(weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor): Tensor[];
  /** Dense: [kernel [in, out], bias]. */
  dense(weight: Tensor, bias: Tensor): Tensor[];
  /** Embedding: [table [vocab, embed]]. */
  embedding(table: Tensor): Tensor[];
  /** LSTM: [kernel, recurrent_kernel, bias]. */
  lstm(weightIh: Tensor, weightHh: Tensor, biasIh: Tensor, biasHh: Tensor): Tensor[];
  /** LayerNormalization: [gamma, beta]. */
  layerNorm(weight: Tensor, bias: Tensor): Tensor[];
}

/** The real canonical -> Keras mapping. */
export const KERAS_MAPPING: KerasMapping = {
  conv: (kernel) => [oihwToHwio(kernel)],
  batchNorm: (weight, bias, runningMean, runningVar) => [weight, bias, runningMean, runningVar],
  dense: (weight, bias) => [transpose2d(weight), bias],
  embedding: (table) => [table],
  lstm: lstmToKeras,
  layerNorm: (weight, bias) => [weight, bias],
};

/** Keras layer name of a canonical prefix (`layer1.0.bn1` -> `layer1_0_bn1`). */
export const kerasName = (canonicalPrefix: string): string => canonicalPrefix.replaceAll('.', '_');

/** Keras names of a ResNet convolution and of the BatchNormalization after it. */
export function convLayerNames(c: ConvLayer): { conv: string; bn: string } {
  return { conv: kerasName(c.weight.replace(/\.weight$/, '')), bn: kerasName(c.bn) };
}

/** Checks every canonical weight the family expects is present with its canonical shape. */
function checkCanonical(family: WorkloadFamily, w: TensorMap, p: Params): void {
  for (const spec of family.weights(p)) {
    const t = w.get(spec.name);
    if (!t) throw new Error(`${family.name} weights: missing '${spec.name}'`);
    if (t.shape.join() !== spec.shape.join()) throw new Error(`${family.name} weights: '${spec.name}' has shape [${t.shape}], expected [${spec.shape}]`);
  }
}

const getter =
  (w: TensorMap) =>
  (name: string): Tensor =>
    w.get(name)!;

/** ResNet weights for a channels-last Keras model: each conv, its BatchNormalization, then `fc`. */
export function cnnKerasWeights(w: TensorMap, p: Params, mapping: KerasMapping = KERAS_MAPPING): KerasLayerWeights[] {
  checkCanonical(cnn, w, p);
  const get = getter(w);
  const out: KerasLayerWeights[] = [];
  for (const c of allConvs(resnetLayout(p))) {
    const names = convLayerNames(c);
    out.push({ layer: names.conv, weights: mapping.conv(get(c.weight)) });
    out.push({
      layer: names.bn,
      weights: mapping.batchNorm(get(`${c.bn}.weight`), get(`${c.bn}.bias`), get(`${c.bn}.running_mean`), get(`${c.bn}.running_var`)),
    });
  }
  out.push({ layer: 'fc', weights: mapping.dense(get('fc.weight'), get('fc.bias')) });
  return out;
}

/** LSTM classifier weights: `embedding`, `lstm_0` .. `lstm_{L-1}`, `fc`. */
export function rnnKerasWeights(w: TensorMap, p: Params, mapping: KerasMapping = KERAS_MAPPING): KerasLayerWeights[] {
  checkCanonical(rnn, w, p);
  const get = getter(w);
  const out: KerasLayerWeights[] = [{ layer: 'embedding', weights: mapping.embedding(get('embedding.weight')) }];
  for (let l = 0; l < int(p, 'layers'); l++) {
    const s = `lstm.${l}`;
    out.push({ layer: kerasName(s), weights: mapping.lstm(get(`${s}.weight_ih`), get(`${s}.weight_hh`), get(`${s}.bias_ih`), get(`${s}.bias_hh`)) });
  }
  out.push({ layer: 'fc', weights: mapping.dense(get('fc.weight'), get('fc.bias')) });
  return out;
}

/**
 * Encoder weights as Dense/LayerNormalization/Embedding layers named after their canonical
 * prefixes (`layers_0_attention_query`, ...). Because the head split is contiguous, a query, key
 * or value kernel [H, H] is Keras MultiHeadAttention's [H, heads, head_dim] by reshape alone, and
 * the output kernel [H, H] its [heads, head_dim, H].
 */
export function transformerKerasWeights(w: TensorMap, p: Params, mapping: KerasMapping = KERAS_MAPPING): KerasLayerWeights[] {
  checkCanonical(transformer, w, p);
  const get = getter(w);
  const dense = (prefix: string): KerasLayerWeights => ({ layer: kerasName(prefix), weights: mapping.dense(get(`${prefix}.weight`), get(`${prefix}.bias`)) });
  const norm = (prefix: string): KerasLayerWeights => ({
    layer: kerasName(prefix),
    weights: mapping.layerNorm(get(`${prefix}.weight`), get(`${prefix}.bias`)),
  });
  const out: KerasLayerWeights[] = [
    { layer: 'embeddings_word', weights: mapping.embedding(get('embeddings.word')) },
    { layer: 'embeddings_position', weights: mapping.embedding(get('embeddings.position')) },
    norm('embeddings.norm'),
  ];
  for (let l = 0; l < int(p, 'layers'); l++) {
    const a = `layers.${l}.attention`;
    const f = `layers.${l}.ffn`;
    out.push(dense(`${a}.query`), dense(`${a}.key`), dense(`${a}.value`), dense(`${a}.output`), norm(`${a}.norm`));
    out.push(dense(`${f}.intermediate`), dense(`${f}.output`), norm(`${f}.norm`));
  }
  out.push(dense('pooler'), dense('classifier'));
  return out;
}

/** Each family's canonical -> Keras mapping (the decoder has none: its engines build it from the canonical weights). */
export const KERAS_WEIGHTS: Partial<Record<FamilyName, (w: TensorMap, p: Params) => KerasLayerWeights[]>> = {
  cnn: cnnKerasWeights,
  rnn: rnnKerasWeights,
  transformer: transformerKerasWeights,
};

/** The Keras layers' weights as one flat map, `<layer>/<index>` (the index-th array of its set_weights list), in layer order. */
export function kerasTensors(layers: KerasLayerWeights[]): TensorMap {
  return new Map(layers.flatMap(({ layer, weights }) => weights.map((t, i) => [`${layer}/${i}`, t] as const)));
}

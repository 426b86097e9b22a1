import type { TensorMap } from '../../../workloads/safetensors.js';
import { LAYER_NORM_EPS } from '../../../workloads/transformer.js';
import { int, type Params } from '../../../workloads/types.js';
import { float, GraphBuilder, transpose2d, weight, type GraphOptions } from './graph.js';

/** Additive bias on the attention scores of padding keys (workloads/transformer.ts). */
const MASK_BIAS = -1e9;

/**
 * BERT-style encoder classifier as ONNX, written the way exporters emit it (MatMul + Add linears,
 * Reshape/Transpose head split, explicit erf GELU) so ORT's attention, GELU and LayerNorm fusions
 * are exercised by the optimization levels. Input `tokens` [batch, seq] int64, output `logits`
 * [batch, classes].
 *
 * With `stream`, the sequence dim is symbolic too (`tokens` [batch, length], length <= seq) and an
 * int32 input `lengths` [batch] gives each row's real tokens: the position table is sliced to the
 * runtime length (Shape of tokens), and the scores of keys at or beyond a row's length get a -1e9
 * bias computed in the graph from `lengths`, so padding never reaches a real token.
 */
export function transformerGraph(params: Params, weights: TensorMap, { stream = false }: GraphOptions = {}): GraphBuilder {
  const [S, H, heads, L, F, V, C] = ['seq', 'hidden', 'heads', 'layers', 'ffn', 'vocab', 'classes'].map((k) => int(params, k)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const d = H / heads;
  const g = new GraphBuilder('fwbench-transformer');

  /** y = x W^T + b with W^T stored as an [in, out] initializer, as MatMul wants it; `result` names y. */
  const linear = (x: string, name: string, out: number, inp: number, result: number | string[] = 1): string => {
    const w = g.initializer(`${name}.weight.T`, transpose2d(weight(weights, `${name}.weight`, [out, inp])));
    const b = g.initializer(`${name}.bias`, weight(weights, `${name}.bias`, [out]));
    return g.node('Add', [g.op('MatMul', [x, w]), b], result)[0]!;
  };
  const layerNorm = (x: string, name: string): string => {
    const scale = g.initializer(`${name}.weight`, weight(weights, `${name}.weight`, [H]));
    const bias = g.initializer(`${name}.bias`, weight(weights, `${name}.bias`, [H]));
    return g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: float(LAYER_NORM_EPS) });
  };
  // 0 copies batch and seq from the input, so the batch stays symbolic.
  const splitShape = g.int64Const([0, 0, heads, d]);
  const mergeShape = g.int64Const([0, 0, H]);
  const heads4d = (x: string, perm: number[]): string => g.op('Transpose', [g.op('Reshape', [x, splitShape])], { perm });
  const scale = g.floatConst([1 / Math.sqrt(d)], []);
  const [one, half, sqrt2] = [g.floatConst([1], []), g.floatConst([0.5], []), g.floatConst([Math.SQRT2], [])];

  const tokens = g.input('tokens', 'int64', ['batch', stream ? 'length' : S]);
  const words = g.op('Gather', [g.initializer('embeddings.word', weight(weights, 'embeddings.word', [V, H])), tokens], { axis: 0 });
  const table = g.initializer('embeddings.position', weight(weights, 'embeddings.position', [S, H]));
  let positions = table;
  /** Stream graphs: [batch, 1, 1, length], 0 on real keys and -1e9 on padding, added to the scores. */
  let keyBias: string | undefined;
  if (stream) {
    const lengths = g.input('lengths', 'int32', ['batch']);
    // [1]: the runtime length, from tokens' shape.
    const length = g.op('Shape', [tokens], { start: 1, end: 2 });
    const zero = g.int64Const([0]);
    const axis0 = g.int64Const([0]);
    positions = g.op('Slice', [table, zero, length, axis0]);
    // Key index k is padding for row b when k >= lengths[b].
    const steps = g.op('Slice', [
      g.initializer('key_index', { type: 'int32', dims: [S], data: Int32Array.from({ length: S }, (_, i) => i) }),
      zero,
      length,
      axis0,
    ]);
    const real = g.op('Less', [steps, g.op('Unsqueeze', [lengths, g.int64Const([1])])]); // [batch, length]
    const bias = g.op('Where', [real, g.floatConst([0], []), g.floatConst([MASK_BIAS], [])]);
    keyBias = g.op('Unsqueeze', [bias, g.int64Const([1, 2])]);
  }
  let x = layerNorm(g.op('Add', [words, positions]), 'embeddings.norm');

  for (let l = 0; l < L; l++) {
    const a = `layers.${l}.attention`;
    const q = heads4d(linear(x, `${a}.query`, H, H), [0, 2, 1, 3]); // [b, h, s, d]
    const k = heads4d(linear(x, `${a}.key`, H, H), [0, 2, 3, 1]); // [b, h, d, s]
    const v = heads4d(linear(x, `${a}.value`, H, H), [0, 2, 1, 3]); // [b, h, s, d]
    const scores = g.op('Mul', [g.op('MatMul', [q, k]), scale]);
    const probs = g.op('Softmax', [keyBias ? g.op('Add', [scores, keyBias]) : scores], { axis: -1 });
    const context = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), mergeShape]);
    x = layerNorm(g.op('Add', [linear(context, `${a}.output`, H, H), x]), `${a}.norm`);

    const f = `layers.${l}.ffn`;
    const inner = linear(x, `${f}.intermediate`, F, H);
    // GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2))), the exact form BERT uses.
    const erf = g.op('Erf', [g.op('Div', [inner, sqrt2])]);
    const gelu = g.op('Mul', [g.op('Mul', [inner, g.op('Add', [erf, one])]), half]);
    x = layerNorm(g.op('Add', [linear(gelu, `${f}.output`, H, F), x]), `${f}.norm`);
  }

  // A scalar index drops the seq axis: [batch, seq, H] -> [batch, H] for the first token.
  const first = g.op('Gather', [x, g.int64Const([0], [])], { axis: 1 });
  const pooled = g.op('Tanh', [linear(first, 'pooler', H, H)]);
  linear(pooled, 'classifier', C, H, ['logits']);
  g.output('logits', 'float32', ['batch', C]);
  return g;
}

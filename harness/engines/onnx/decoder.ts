import { DECODER_NORM_EPS } from '../../../workloads/decoder.js';
import type { TensorMap } from '../../../workloads/safetensors.js';
import { int, str, type Params } from '../../../workloads/types.js';
import { DataType } from './proto.js';
import { float, GraphBuilder, transpose2d, weight } from './graph.js';

/** Additive bias on the attention scores of future keys: exp(-1e9 - max) is exactly 0 in float32, as the reference's -inf. */
const CAUSAL_BIAS = -1e9;

/** The names of layer `l`'s cache tensors: graph inputs `past_key_values.<l>.key|value`, outputs `present.<l>.key|value` (the names Hugging Face's ONNX exports use). */
export const cacheNames = (l: number): { pastKey: string; pastValue: string; presentKey: string; presentValue: string } => ({
  pastKey: `past_key_values.${l}.key`,
  pastValue: `past_key_values.${l}.value`,
  presentKey: `present.${l}.key`,
  presentValue: `present.${l}.value`,
});

/**
 * The decoder family's generation graph (workloads/decoder.ts has the math), written the way
 * exporters emit GPT-2 with a key/value cache (MatMul + Add linears, Reshape/Transpose head split,
 * explicit erf GELU, past/present tensors per layer), so ORT's fusions are exercised by the
 * optimization levels. One graph serves every step, as ONNX Runtime GenAI runs a decoder and as
 * Optimum's merged export does, so a session holds one copy of the weights:
 *
 * - inputs `tokens` int32 [batch, length] and `past_key_values.<l>.key|value` [batch, heads, past,
 *   d], both lengths symbolic (past + length at most ctx). A prefill passes the prompt and an empty
 *   past (past = 0); a decode step passes one token and the last step's presents. The new tokens'
 *   positions are past..past+length-1, read in the graph from the first past key's shape, so a
 *   step takes no position from the host.
 * - the causal mask is computed in the graph: query i (position past + i) sees keys 0..past + i;
 *   one token against its cache sees every key.
 * - outputs `present.<l>.key|value` = concat(past, the new tokens') [batch, heads, past + length,
 *   d], the next step's past; `logits` [batch, vocab] of the last position and `next` int32
 *   [batch], their ArgMax (first maximum, as numpy's), so a step can fetch the chosen ids without
 *   the logits.
 */
export function decoderGraph(params: Params, weights: TensorMap): GraphBuilder {
  const [ctx, H, heads, L, F, V] = ['ctx', 'hidden', 'heads', 'layers', 'ffn', 'vocab'].map((k) => int(params, k)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const d = H / heads;
  const g = new GraphBuilder('fwbench-decoder');

  /** y = x W^T + b with W^T stored as an [in, out] initializer, as MatMul wants it. */
  const linear = (x: string, name: string, out: number, inp: number): string => {
    const w = g.initializer(`${name}.weight.T`, transpose2d(weight(weights, `${name}.weight`, [out, inp])));
    const b = g.initializer(`${name}.bias`, weight(weights, `${name}.bias`, [out]));
    return g.op('Add', [g.op('MatMul', [x, w]), b]);
  };
  const layerNorm = (x: string, name: string): string => {
    const scale = g.initializer(`${name}.weight`, weight(weights, `${name}.weight`, [H]));
    const bias = g.initializer(`${name}.bias`, weight(weights, `${name}.bias`, [H]));
    return g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: float(DECODER_NORM_EPS) });
  };
  // 0 copies batch and length from the input, so both stay symbolic.
  const splitShape = g.int64Const([0, 0, heads, d]);
  const mergeShape = g.int64Const([0, 0, H]);
  /** [batch, length, H] -> [batch, heads, length, d] (contiguous head split); `result` names the output. */
  const toHeads = (x: string, result: string[] | number = 1): string =>
    g.node('Transpose', [g.op('Reshape', [x, splitShape])], result, { perm: [0, 2, 1, 3] })[0]!;
  const scale = g.floatConst([1 / Math.sqrt(d)], []);
  const [one, half, sqrt2] = [g.floatConst([1], []), g.floatConst([0.5], []), g.floatConst([Math.SQRT2], [])];

  const tokens = g.input('tokens', 'int32', ['batch', 'length']);
  const pasts = Array.from({ length: L }, (_, l) => {
    const n = cacheNames(l);
    return { key: g.input(n.pastKey, 'float32', ['batch', heads, 'past', d]), value: g.input(n.pastValue, 'float32', ['batch', heads, 'past', d]) };
  });
  const word = g.initializer('embeddings.word', weight(weights, 'embeddings.word', [V, H]));
  const words = g.op('Gather', [word, tokens], { axis: 0 }); // [batch, length, H]
  const table = g.initializer('embeddings.position', weight(weights, 'embeddings.position', [ctx, H]));

  const axis0 = g.int64Const([0]);
  const past = g.op('Shape', [pasts[0]!.key], { start: 2, end: 3 }); // [1]: the cached positions
  const total = g.op('Add', [past, g.op('Shape', [tokens], { start: 1, end: 2 })]); // [1]: past + length
  const positions = g.op('Slice', [table, past, total, axis0]); // [length, H]
  const index = g.initializer('position_index', { type: 'int32', dims: [ctx], data: Int32Array.from({ length: ctx }, (_, i) => i) });
  const keyIndex = g.op('Slice', [index, g.int64Const([0]), total, axis0]); // [total]
  const queryIndex = g.op('Slice', [index, past, total, axis0]); // [length]
  const allowed = g.op('LessOrEqual', [g.op('Unsqueeze', [keyIndex, axis0]), g.op('Unsqueeze', [queryIndex, g.int64Const([1])])]); // keys [1, total] <= queries [length, 1]
  /** [length, total], 0 where key <= query, -1e9 after it; added to every layer's scores. */
  const causal = g.op('Where', [allowed, g.floatConst([0], []), g.floatConst([CAUSAL_BIAS], [])]);
  let x = g.op('Add', [words, positions]);

  for (let l = 0; l < L; l++) {
    const n = cacheNames(l);
    const a = `layers.${l}.attention`;
    const h = layerNorm(x, `layers.${l}.norm1`);
    const q = toHeads(linear(h, `${a}.query`, H, H));
    const keys = g.node('Concat', [pasts[l]!.key, toHeads(linear(h, `${a}.key`, H, H))], [n.presentKey], { axis: 2 })[0]!;
    const values = g.node('Concat', [pasts[l]!.value, toHeads(linear(h, `${a}.value`, H, H))], [n.presentValue], { axis: 2 })[0]!;
    const scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [keys], { perm: [0, 1, 3, 2] })]), scale]);
    const probs = g.op('Softmax', [g.op('Add', [scores, causal])], { axis: -1 });
    const context = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, values])], { perm: [0, 2, 1, 3] }), mergeShape]);
    x = g.op('Add', [x, linear(context, `${a}.output`, H, H)]);

    const f = `layers.${l}.ffn`;
    const inner = linear(layerNorm(x, `layers.${l}.norm2`), `${f}.intermediate`, F, H);
    // GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2))), GPT-2's exact form here (workloads/decoder.ts).
    const gelu = g.op('Mul', [g.op('Mul', [inner, g.op('Add', [g.op('Erf', [g.op('Div', [inner, sqrt2])]), one])]), half]);
    x = g.op('Add', [x, linear(gelu, `${f}.output`, H, F)]);
  }

  // Only the last position's logits are wanted: a scalar index drops the length axis, [batch, H].
  const last = layerNorm(g.op('Gather', [x, g.int64Const([-1], [])], { axis: 1 }), 'final_norm');
  // The head multiplies by W_head^T with W_head [vocab, H] as stored (Gemm transB): tied, the very initializer the token lookup reads.
  const head = str(params, 'head') === 'untied' ? g.initializer('lm_head.weight', weight(weights, 'lm_head.weight', [V, H])) : word;
  g.node('Gemm', [last, head], ['logits'], { transB: 1 });
  g.node('Cast', [g.op('ArgMax', ['logits'], { axis: 1, keepdims: 0 })], ['next'], { to: DataType.INT32 });

  g.output('logits', 'float32', ['batch', V]);
  g.output('next', 'int32', ['batch']);
  for (let l = 0; l < L; l++) {
    const n = cacheNames(l);
    g.output(n.presentKey, 'float32', ['batch', heads, 'total', d]);
    g.output(n.presentValue, 'float32', ['batch', heads, 'total', d]);
  }
  return g;
}

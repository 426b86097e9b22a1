import { CANONICAL_GATES } from '../../../workloads/rnn.js';
import type { Tensor, TensorMap } from '../../../workloads/safetensors.js';
import { int, type Params } from '../../../workloads/types.js';
import { GraphBuilder, weight, type GraphOptions, type GraphTensor } from './graph.js';

/** ONNX LSTM's gate block order (input, output, forget, cell), as the operator spec defines it. */
const ONNX_GATES = ['i', 'o', 'f', 'g'] as const;
/** For each ONNX gate block, the canonical block it is copied from. */
const GATE_SOURCE = ONNX_GATES.map((gate) => CANONICAL_GATES.indexOf(gate));

/** Copies the 4 row blocks of a canonical [4H, ...] tensor into `out` at `offset`, in ONNX gate order. */
function reorderGates(t: Tensor, out: Float32Array, offset = 0): void {
  const block = t.data.length / 4;
  GATE_SOURCE.forEach((src, dst) => out.set(t.data.subarray(src * block, (src + 1) * block), offset + dst * block));
}

/**
 * Stacked LSTM classifier as ONNX: Gather embedding, time-major Transpose, one `LSTM` node per
 * layer (forward, layout 0) and a Gemm on the last layer's final hidden state. Input `tokens`
 * [batch, seq] int64, output `logits` [batch, classes].
 *
 * With `stream`, the sequence dim is symbolic (`tokens` [batch, length]) and an int32 input
 * `lengths` [batch] is every LSTM's own `sequence_lens`, ONNX's native variable-length support:
 * a row's steps beyond its length are not computed (their Y is zero) and Y_h is its hidden state
 * at its last real step, which the classifier reads.
 */
export function rnnGraph(params: Params, weights: TensorMap, { stream = false }: GraphOptions = {}): GraphBuilder {
  const [S, H, E, L, V, C] = ['seq', 'hidden', 'embed', 'layers', 'vocab', 'classes'].map((k) => int(params, k)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const g = new GraphBuilder('fwbench-rnn');

  const tokens = g.input('tokens', 'int64', ['batch', stream ? 'length' : S]);
  const lengths = stream ? g.input('lengths', 'int32', ['batch']) : undefined;
  const table = g.initializer('embedding.weight', weight(weights, 'embedding.weight', [V, E]));
  const embedded = g.op('Gather', [table, tokens], { axis: 0 });
  // ONNX LSTM's layout 0 is time-major: X is [seq, batch, input].
  let x = g.op('Transpose', [embedded], { perm: [1, 0, 2] });
  let lastHidden = '';
  for (let l = 0; l < L; l++) {
    const p = `lstm.${l}`;
    const inSize = l === 0 ? E : H;
    const gates = (name: string, cols: number): GraphTensor => {
      const data = new Float32Array(4 * H * cols);
      reorderGates(weight(weights, `${p}.${name}`, [4 * H, cols]), data);
      return { type: 'float32', dims: [1, 4 * H, cols], data };
    };
    // B is [Wb, Rb] concatenated, each in ONNX gate order; ONNX adds both, as the canonical form does.
    const bias = new Float32Array(8 * H);
    reorderGates(weight(weights, `${p}.bias_ih`, [4 * H]), bias);
    reorderGates(weight(weights, `${p}.bias_hh`, [4 * H]), bias, 4 * H);
    const inputs = [
      x,
      g.initializer(`${p}.W`, gates('weight_ih', inSize)),
      g.initializer(`${p}.R`, gates('weight_hh', H)),
      g.initializer(`${p}.B`, { type: 'float32', dims: [1, 8 * H], data: bias }),
      ...(lengths ? [lengths] : []),
    ];
    const attrs = { hidden_size: H, direction: 'forward', layout: 0 };
    if (l < L - 1) {
      // Y is [seq, num_directions=1, batch, H]; the next layer wants [seq, batch, H].
      x = g.op('Squeeze', [g.op('LSTM', inputs, attrs), g.int64Const([1])]);
    } else {
      // Only Y_h ([1, batch, H]) is needed from the last layer; omitting Y spares its buffer.
      const yh = g.node('LSTM', inputs, ['', `${p}.Y_h`], attrs)[1]!;
      lastHidden = g.op('Squeeze', [yh, g.int64Const([0])]);
    }
  }
  const fcW = g.initializer('fc.weight', weight(weights, 'fc.weight', [C, H]));
  const fcB = g.initializer('fc.bias', weight(weights, 'fc.bias', [C]));
  g.node('Gemm', [lastHidden, fcW, fcB], ['logits'], { transB: 1 });
  g.output('logits', 'float32', ['batch', C]);
  return g;
}

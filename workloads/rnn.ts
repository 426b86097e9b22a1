import { int, type Params, type WeightSpec, type WorkloadFamily } from './types.js';

/**
 * Sentiment-analysis shaped LSTM: token embedding -> stacked unidirectional LSTM -> linear
 * classifier on the last time step (in a shape stream: the row's last real step, its length - 1,
 * whatever padding follows; each engine uses its framework's own variable-length support or
 * masking, docs/shapes.md). Canonical layout: `lstm.L.weight_ih` [4H, in] and
 * `lstm.L.weight_hh` [4H, H] with gate blocks in the order (input, forget, cell, output);
 * separate input and recurrent biases [4H]; linear weights [out, in]; tokens [batch, seq] int32.
 */

/** The canonical gate order of LSTM weight blocks. */
export const CANONICAL_GATES = ['i', 'f', 'g', 'o'] as const;

export const rnn: WorkloadFamily = {
  name: 'rnn',
  description: 'Token embedding -> stacked LSTM -> linear classifier on the last step (sentiment-analysis shape)',
  params: [
    { name: 'seq', kind: 'int', min: 1, doc: 'sequence length (time steps)' },
    { name: 'hidden', kind: 'int', min: 1, doc: 'LSTM hidden size' },
    { name: 'layers', kind: 'int', min: 1, doc: 'stacked LSTM layers' },
    { name: 'embed', kind: 'int', min: 1, doc: 'token embedding size' },
    { name: 'vocab', kind: 'int', min: 2, doc: 'vocabulary size' },
    { name: 'classes', kind: 'int', min: 1, doc: 'classifier outputs' },
  ],
  presets: {
    tiny: { seq: 8, hidden: 16, layers: 1, embed: 16, vocab: 100, classes: 2 },
    small: { seq: 64, hidden: 256, layers: 2, embed: 128, vocab: 10000, classes: 2 },
    large: { seq: 128, hidden: 1024, layers: 2, embed: 256, vocab: 10000, classes: 2 },
  },
  sizes: { tiny: 'tiny', small: 'small', base: 'large' },
  lengthParam: 'seq',
  check: () => undefined,
  weights(p) {
    const H = int(p, 'hidden');
    // PyTorch's default LSTM range, U(-1/sqrt(H), 1/sqrt(H)), keeps gates unsaturated and states
    // well away from zero over long sequences.
    const k = 1 / Math.sqrt(H);
    const u = { kind: 'uniform', low: -k, high: k } as const;
    const out: WeightSpec[] = [{ name: 'embedding.weight', shape: [int(p, 'vocab'), int(p, 'embed')], init: { kind: 'normal', std: 1 } }];
    for (let l = 0; l < int(p, 'layers'); l++) {
      const inSize = l === 0 ? int(p, 'embed') : H;
      out.push(
        { name: `lstm.${l}.weight_ih`, shape: [4 * H, inSize], init: u },
        { name: `lstm.${l}.weight_hh`, shape: [4 * H, H], init: u },
        { name: `lstm.${l}.bias_ih`, shape: [4 * H], init: u },
        { name: `lstm.${l}.bias_hh`, shape: [4 * H], init: u },
      );
    }
    out.push(
      { name: 'fc.weight', shape: [int(p, 'classes'), H], init: { kind: 'normal', std: 1 / Math.sqrt(H) } },
      { name: 'fc.bias', shape: [int(p, 'classes')], init: { kind: 'uniform', low: -0.1, high: 0.1 } },
    );
    return out;
  },
  inputs: (p, batch) => [{ name: 'tokens', shape: [batch, int(p, 'seq')], dtype: 'I32', init: { kind: 'tokens', vocab: int(p, 'vocab') } }],
  outputShape: (p, batch) => [batch, int(p, 'classes')],
  flopsPerSample(p: Params) {
    const H = int(p, 'hidden');
    let total = 0;
    for (let l = 0; l < int(p, 'layers'); l++) {
      const I = l === 0 ? int(p, 'embed') : H;
      total += int(p, 'seq') * 8 * H * (I + H);
    }
    return total + 2 * H * int(p, 'classes');
  },
};

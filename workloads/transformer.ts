import { int, type Params, type WeightSpec, type WorkloadFamily } from './types.js';

/**
 * BERT-style encoder classifier: word + position embeddings, LayerNorm, N post-LN encoder layers
 * [multi-head self-attention, residual, LayerNorm, GELU (erf) feed-forward, residual, LayerNorm],
 * tanh pooler on the first token, linear classifier. At a fixed shape every token is real and no
 * mask is applied. In a shape stream each row comes with its length: positions at or beyond it are
 * padding, and attention adds a large negative bias (-1e9) to the scores of those keys, so a real
 * token never attends to padding and the padded row's logits equal the unpadded row's.
 * Canonical layout: linear weights [out, in] (y = x W^T + b); embeddings [rows, hidden];
 * the head split of query/key/value is the contiguous one (head h owns features h*d..h*d+d-1).
 */

/** LayerNorm epsilon used by BERT and by every engine. */
export const LAYER_NORM_EPS = 1e-12;

/** A linear layer's canonical weight [out, in] and bias [out] (shared by the token-sequence families). */
export const linear = (name: string, out: number, inp: number): WeightSpec[] => [
  { name: `${name}.weight`, shape: [out, inp], init: { kind: 'normal', std: 1 / Math.sqrt(inp) } },
  { name: `${name}.bias`, shape: [out], init: { kind: 'normal', std: 0.02 } },
];
/** A LayerNorm's canonical weight and bias [c]. */
export const norm = (name: string, c: number): WeightSpec[] => [
  { name: `${name}.weight`, shape: [c], init: { kind: 'uniform', low: 0.8, high: 1.2 } },
  { name: `${name}.bias`, shape: [c], init: { kind: 'normal', std: 0.1 } },
];

/** The attention families' cross-field check: the heads split the width evenly. */
export const headsDivideHidden = (p: Params): string | undefined =>
  int(p, 'hidden') % int(p, 'heads') !== 0 ? `heads=${int(p, 'heads')} must divide hidden=${int(p, 'hidden')}` : undefined;

export const transformer: WorkloadFamily = {
  name: 'transformer',
  description: 'BERT-style encoder (token + position embeddings, N x [MHSA, add & LayerNorm, GELU FFN, add & LayerNorm], pooled classifier)',
  params: [
    { name: 'seq', kind: 'int', min: 1, doc: 'sequence length (tokens)' },
    { name: 'hidden', kind: 'int', min: 1, doc: 'model width' },
    { name: 'heads', kind: 'int', min: 1, doc: 'attention heads (must divide hidden)' },
    { name: 'layers', kind: 'int', min: 1, doc: 'encoder layers' },
    { name: 'ffn', kind: 'int', min: 1, doc: 'feed-forward inner size' },
    { name: 'vocab', kind: 'int', min: 2, doc: 'vocabulary size' },
    { name: 'classes', kind: 'int', min: 1, doc: 'classifier outputs' },
  ],
  presets: {
    tiny: { seq: 8, hidden: 32, heads: 2, layers: 1, ffn: 64, vocab: 100, classes: 2 },
    'bert-mini': { seq: 128, hidden: 256, heads: 4, layers: 4, ffn: 1024, vocab: 30522, classes: 2 },
    'bert-base': { seq: 128, hidden: 768, heads: 12, layers: 12, ffn: 3072, vocab: 30522, classes: 2 },
  },
  sizes: { tiny: 'tiny', small: 'bert-mini', base: 'bert-base' },
  lengthParam: 'seq',
  check: headsDivideHidden,
  weights(p) {
    const H = int(p, 'hidden');
    const F = int(p, 'ffn');
    const out: WeightSpec[] = [
      { name: 'embeddings.word', shape: [int(p, 'vocab'), H], init: { kind: 'normal', std: 1 } },
      { name: 'embeddings.position', shape: [int(p, 'seq'), H], init: { kind: 'normal', std: 1 } },
      ...norm('embeddings.norm', H),
    ];
    for (let l = 0; l < int(p, 'layers'); l++) {
      const a = `layers.${l}.attention`;
      out.push(
        ...linear(`${a}.query`, H, H),
        ...linear(`${a}.key`, H, H),
        ...linear(`${a}.value`, H, H),
        ...linear(`${a}.output`, H, H),
        ...norm(`${a}.norm`, H),
      );
      const f = `layers.${l}.ffn`;
      out.push(...linear(`${f}.intermediate`, F, H), ...linear(`${f}.output`, H, F), ...norm(`${f}.norm`, H));
    }
    out.push(...linear('pooler', H, H), ...linear('classifier', int(p, 'classes'), H));
    return out;
  },
  inputs: (p, batch) => [{ name: 'tokens', shape: [batch, int(p, 'seq')], dtype: 'I32', init: { kind: 'tokens', vocab: int(p, 'vocab') } }],
  outputShape: (p, batch) => [batch, int(p, 'classes')],
  flopsPerSample(p: Params) {
    const [S, H, F] = [int(p, 'seq'), int(p, 'hidden'), int(p, 'ffn')];
    const perLayer = 4 * 2 * S * H * H + 2 * 2 * S * S * H + 2 * 2 * S * H * F;
    return int(p, 'layers') * perLayer + 2 * H * H + 2 * H * int(p, 'classes');
  },
};

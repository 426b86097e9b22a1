import { headsDivideHidden, linear, norm } from './transformer.js';
import { int, str, type Params, type WeightSpec, type WorkloadFamily } from './types.js';

/**
 * GPT-2-style decoder language model, the family that generates text (`--tasks generate`;
 * workloads/generate.ts, docs/generation.md): word + learned position embeddings, N pre-LayerNorm
 * blocks [x + attn(LN1(x)); x + FFN(LN2(x))] with causal multi-head self-attention and a GELU (erf)
 * feed-forward, a final LayerNorm, and an LM head that is the word embedding (tied, as GPT-2) or a
 * matrix of its own (`head=untied`). Logits of a position are over the vocabulary.
 *
 * Canonical layout and the math every engine reproduces:
 * - `embeddings.word` [vocab, hidden], `embeddings.position` [ctx, hidden]: h = word[token] + position[p];
 * - `layers.<l>.norm1` / `.norm2` / `final_norm`: LayerNorm, epsilon LAYER_NORM_EPS, weight and bias [hidden];
 * - `layers.<l>.attention.{query,key,value,output}`: linear, weight [out, in] (y = x W^T + b), bias [out];
 *   the head split is contiguous (head h owns features h*d..h*d+d-1, d = hidden / heads); scores
 *   q.k / sqrt(d); a position attends to itself and every earlier position (causal), softmax over them;
 * - `layers.<l>.ffn.intermediate` [ffn, hidden], `layers.<l>.ffn.output` [hidden, ffn], GELU (erf) between;
 * - logits = final_norm(h) W_head^T, W_head = `embeddings.word` (tied) or `lm_head.weight` [vocab, hidden] (untied); no bias.
 * With a key/value cache, a decode step at position p computes only its own token's row and attends
 * to the cached keys and values of positions 0..p: the same numbers as the full forward's row p.
 */

/** LayerNorm epsilon of GPT-2 and of every engine. */
export const DECODER_NORM_EPS = 1e-5;

/** Matrix-product FLOPs (2 per multiply-add) of one token at position `pos` (0-based) through every layer and the LM head. */
export function decoderTokenFlops(p: Params, pos: number): number {
  const [H, F, V, L] = [int(p, 'hidden'), int(p, 'ffn'), int(p, 'vocab'), int(p, 'layers')];
  const keys = pos + 1;
  return L * (2 * 4 * H * H + 2 * 2 * H * F + 2 * 2 * keys * H) + 2 * H * V;
}

export const decoder: WorkloadFamily = {
  name: 'decoder',
  description:
    'GPT-2-style decoder LM (token + position embeddings, N x pre-LN [causal MHSA, GELU FFN], final LayerNorm, tied LM head): generates text with a KV cache',
  tasks: ['generate'],
  params: [
    { name: 'ctx', kind: 'int', min: 2, doc: 'context length: position embeddings, the most tokens a prompt plus its generated tokens may hold' },
    { name: 'hidden', kind: 'int', min: 1, doc: 'model width' },
    { name: 'heads', kind: 'int', min: 1, doc: 'attention heads (must divide hidden)' },
    { name: 'layers', kind: 'int', min: 1, doc: 'decoder blocks' },
    { name: 'ffn', kind: 'int', min: 1, doc: 'feed-forward inner size' },
    { name: 'vocab', kind: 'int', min: 2, doc: 'vocabulary size' },
    { name: 'head', kind: 'enum', choices: ['tied', 'untied'], doc: 'LM head: the word embedding (tied, as GPT-2) or a matrix of its own' },
  ],
  presets: {
    tiny: { ctx: 288, hidden: 32, heads: 2, layers: 2, ffn: 128, vocab: 128, head: 'tied' },
    /** The size of BERT-mini in GPT-2's shape (about 11M parameters with GPT-2's vocabulary). */
    'gpt2-mini': { ctx: 1024, hidden: 256, heads: 4, layers: 4, ffn: 1024, vocab: 50257, head: 'tied' },
    /** GPT-2 small's shape: 124M parameters. */
    'gpt2-small': { ctx: 1024, hidden: 768, heads: 12, layers: 12, ffn: 3072, vocab: 50257, head: 'tied' },
  },
  sizes: { tiny: 'tiny', small: 'gpt2-mini', base: 'gpt2-small' },
  check: headsDivideHidden,
  weights(p) {
    const H = int(p, 'hidden');
    const F = int(p, 'ffn');
    const out: WeightSpec[] = [
      { name: 'embeddings.word', shape: [int(p, 'vocab'), H], init: { kind: 'normal', std: 0.5 } },
      { name: 'embeddings.position', shape: [int(p, 'ctx'), H], init: { kind: 'normal', std: 0.5 } },
    ];
    for (let l = 0; l < int(p, 'layers'); l++) {
      const a = `layers.${l}.attention`;
      out.push(
        ...norm(`layers.${l}.norm1`, H),
        ...linear(`${a}.query`, H, H),
        ...linear(`${a}.key`, H, H),
        ...linear(`${a}.value`, H, H),
        ...linear(`${a}.output`, H, H),
        ...norm(`layers.${l}.norm2`, H),
        ...linear(`layers.${l}.ffn.intermediate`, F, H),
        ...linear(`layers.${l}.ffn.output`, H, F),
      );
    }
    out.push(...norm('final_norm', H));
    if (str(p, 'head') === 'untied') out.push({ name: 'lm_head.weight', shape: [int(p, 'vocab'), H], init: { kind: 'normal', std: 0.5 } });
    return out;
  },
  /** Tokens of a whole context per row; a generation's prompt of length P is each row's first P (workloads/generate.ts). */
  inputs: (p, batch) => [{ name: 'tokens', shape: [batch, int(p, 'ctx')], dtype: 'I32', init: { kind: 'tokens', vocab: int(p, 'vocab') } }],
  /** Logits of one position (the last of a forward pass, or a decode step's) over the vocabulary. */
  outputShape: (p, batch) => [batch, int(p, 'vocab')],
  /** One forward pass over a whole context (every position's projections, the LM head at the last). */
  flopsPerSample(p) {
    let total = 0;
    for (let pos = 0; pos < int(p, 'ctx'); pos++) total += decoderTokenFlops(p, pos) - 2 * int(p, 'hidden') * int(p, 'vocab');
    return total + 2 * int(p, 'hidden') * int(p, 'vocab');
  },
};

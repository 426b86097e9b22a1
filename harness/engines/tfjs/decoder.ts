import * as tf from '@tensorflow/tfjs';
import { DECODER_NORM_EPS } from '../../../workloads/decoder.js';
import type { TensorMap } from '../../../workloads/safetensors.js';
import { int, str, type Params } from '../../../workloads/types.js';
import type { BuiltGenerator, EngineSettings, GenerateRequest, GenerationStep } from '../types.js';
import { geluExact } from './transformer.js';

/**
 * The decoder family (workloads/decoder.ts) in TF.js ops, generating greedily the way TF.js users
 * write generation (tf.layers has no causal attention nor a cache): the weights are tf tensors
 * made once at build, each step runs inside tf.tidy, the key/value cache grows by tf.concat and
 * the step's argmax is taken on the backend with tf.argMax, so only the chosen ids (and the logits
 * when asked) are read back with `await data()`. Loaded only when a generator is built.
 */

/** One layer's cached keys and values, [batch, heads, positions so far, headDim] each. */
interface LayerCache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/** A forward pass's outputs: the logits of its last position and, for the key/value cache, every layer's keys and values so far. */
interface Forward {
  logits: tf.Tensor2D;
  present: LayerCache[];
}

/** The decoder's weights as tf tensors and its forward pass over them. */
interface Decoder {
  /**
   * Logits [batch, vocab] of the last of `tokens` [batch, T], which sit at positions start..start+T-1;
   * `past` holds the keys and values of positions 0..start-1 (absent when start is 0).
   */
  forward(tokens: tf.Tensor2D, start: number, past?: LayerCache[]): Forward;
  dispose(): void;
}

/** A layer's weights in the layout TF.js' matMul takes: kernels [in, out] (the canonical linear is [out, in]); query, key and value in one [hidden, 3 hidden] kernel, as GPT-2's c_attn. */
interface LayerWeights {
  norm1: [tf.Tensor1D, tf.Tensor1D];
  qkv: [tf.Tensor2D, tf.Tensor1D];
  output: [tf.Tensor2D, tf.Tensor1D];
  norm2: [tf.Tensor1D, tf.Tensor1D];
  intermediate: [tf.Tensor2D, tf.Tensor1D];
  ffnOutput: [tf.Tensor2D, tf.Tensor1D];
}

/** Builds the decoder from canonical weights (workloads/decoder.ts names and layouts). */
export function buildDecoder(weights: TensorMap, params: Params): Decoder {
  const [H, heads, layers, ctx] = [int(params, 'hidden'), int(params, 'heads'), int(params, 'layers'), int(params, 'ctx')];
  const headDim = H / heads;
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const raw = (name: string): tf.Tensor => {
    const t = weights.get(name);
    if (!t) throw new Error(`decoder weights have no '${name}'`);
    return tf.tensor(t.data as Float32Array, t.shape, 'float32');
  };
  const vector = (name: string): tf.Tensor1D => keep(raw(name) as tf.Tensor1D);
  const norm = (name: string): [tf.Tensor1D, tf.Tensor1D] => [vector(`${name}.weight`), vector(`${name}.bias`)];
  /** Transposes the canonical [out, in] matrices once here, so every step's product is a plain x @ W. */
  const kernel = (names: string[]): tf.Tensor2D =>
    keep(
      tf.tidy(() => {
        const parts = names.map((n) => raw(`${n}.weight`));
        return tf.transpose(parts.length === 1 ? parts[0]! : tf.concat(parts, 0)) as tf.Tensor2D;
      }),
    );
  const bias = (names: string[]): tf.Tensor1D =>
    keep(
      tf.tidy(
        () =>
          tf.concat(
            names.map((n) => raw(`${n}.bias`)),
            0,
          ) as tf.Tensor1D,
      ),
    );
  const linear = (...names: string[]): [tf.Tensor2D, tf.Tensor1D] => [kernel(names), bias(names)];

  const word = keep(raw('embeddings.word') as tf.Tensor2D);
  const position = keep(raw('embeddings.position') as tf.Tensor2D);
  // The LM head [vocab, hidden] is read transposed by matMul: tied, it is the embedding itself.
  const head = str(params, 'head') === 'untied' ? keep(raw('lm_head.weight') as tf.Tensor2D) : word;
  const finalNorm = norm('final_norm');
  const blocks: LayerWeights[] = [];
  for (let l = 0; l < layers; l++) {
    const a = `layers.${l}.attention`;
    blocks.push({
      norm1: norm(`layers.${l}.norm1`),
      qkv: linear(`${a}.query`, `${a}.key`, `${a}.value`),
      output: linear(`${a}.output`),
      norm2: norm(`layers.${l}.norm2`),
      intermediate: linear(`layers.${l}.ffn.intermediate`),
      ffnOutput: linear(`layers.${l}.ffn.output`),
    });
  }

  const dense = (x: tf.Tensor2D, [w, b]: [tf.Tensor2D, tf.Tensor1D]): tf.Tensor2D => tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D;
  const layerNorm = (x: tf.Tensor2D, [gamma, beta]: [tf.Tensor1D, tf.Tensor1D]): tf.Tensor2D => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x
      .sub(mean)
      .mul(tf.rsqrt(variance.add(DECODER_NORM_EPS)))
      .mul(gamma)
      .add(beta);
  };

  const forward = (tokens: tf.Tensor2D, start: number, past?: LayerCache[]): Forward => {
    const [batch, T] = tokens.shape;
    if (start + T > ctx) throw new Error(`position ${start + T - 1} is beyond the decoder's context (ctx=${ctx} positions)`);
    const toHeads = (t: tf.Tensor2D): tf.Tensor4D => t.reshape([batch, T, heads, headDim]).transpose([0, 2, 1, 3]);
    const embedded = tf.gather(word, tokens).add(position.slice([start, 0], [T, H])) as tf.Tensor3D;
    let x = embedded.reshape([batch * T, H]) as tf.Tensor2D;
    // Query i (position start + i) sees keys 0..start + i: -1e9 on the later ones, [T, start + T]
    // broadcast over batch and heads. A one-token decode step sees every key: no mask.
    const causal =
      T > 1
        ? tf.cast(tf.greater(tf.range(0, start + T, 1, 'int32').expandDims(0), tf.range(start, start + T, 1, 'int32').expandDims(1)), 'float32').mul(-1e9)
        : undefined;
    const present: LayerCache[] = [];
    for (let l = 0; l < layers; l++) {
      const w = blocks[l]!;
      const [q, k, v] = tf.split(dense(layerNorm(x, w.norm1), w.qkv), 3, 1).map((t) => toHeads(t as tf.Tensor2D)) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      const keys = past ? (tf.concat([past[l]!.k, k], 2) as tf.Tensor4D) : k;
      const values = past ? (tf.concat([past[l]!.v, v], 2) as tf.Tensor4D) : v;
      present.push({ k: keys, v: values });
      const scores = tf.matMul(q.mul(1 / Math.sqrt(headDim)) as tf.Tensor4D, keys, false, true);
      const context = tf
        .matMul(tf.softmax(causal ? scores.add(causal) : scores), values)
        .transpose([0, 2, 1, 3])
        .reshape([batch * T, H]) as tf.Tensor2D;
      x = x.add(dense(context, w.output));
      x = x.add(dense(geluExact(dense(layerNorm(x, w.norm2), w.intermediate)), w.ffnOutput));
    }
    // Only the last position's logits are needed: the LM head runs on that row alone.
    const last =
      T === 1
        ? x
        : (x
            .reshape([batch, T, H])
            .slice([0, T - 1, 0], [batch, 1, H])
            .reshape([batch, H]) as tf.Tensor2D);
    const logits = tf.matMul(layerNorm(last, finalNorm), head, false, true) as tf.Tensor2D;
    return { logits, present };
  };

  return { forward, dispose: () => tf.dispose(owned) };
}

/** What the runtime passes along: the effective settings and how to make sure its backend is the active one. */
export interface GeneratorContext {
  settings: EngineSettings;
  /** Re-selects the engine's backend (tests generate on several backends in one process; a no-op in a worker). */
  select(): Promise<void>;
}

/**
 * A greedy generator over the decoder. Between calls it keeps, on the backend, the chosen ids of
 * the last step and either the key/value cache (`kv`) or the whole sequence so far (`none`), so a
 * decode step takes nothing from the host. Every step's intermediates die in its tf.tidy; what it
 * replaces (the previous cache, sequence or ids) is disposed after it, so no tensor outlives a
 * generation but the weights and the prompt.
 */
export function tfjsGenerator(req: GenerateRequest, ctx: GeneratorContext): BuiltGenerator {
  const model = buildDecoder(req.weights, req.params);
  const cache = req.generation.cache;
  // What a step leaves for the next: `kv` every layer's keys and values (k0, v0, k1, v1, ...), `none` the sequence so far.
  let state: tf.Tensor[] = [];
  let last: tf.Tensor1D | undefined;
  let position = 0;
  // The prompt as a tf tensor, made once per prompt: a user holds it on the backend before generating.
  let prompt: { source: ArrayLike<number>; tensor: tf.Tensor2D } | undefined;

  const forget = (): void => {
    tf.dispose([...state, ...(last ? [last] : [])]);
    [state, last, position] = [[], undefined, 0];
  };
  const pairs = (flat: tf.Tensor[]): LayerCache[] =>
    Array.from({ length: flat.length / 2 }, (_, l) => ({ k: flat[2 * l] as tf.Tensor4D, v: flat[2 * l + 1] as tf.Tensor4D }));

  /** Runs one step on `tokens` (the new positions with `kv`, the whole sequence with `none`), keeps its state and reads back the ids (and the logits when asked). */
  const step = async (tokens: tf.Tensor2D, wantLogits: boolean): Promise<GenerationStep> => {
    const out = tf.tidy(() => {
      if (cache === 'kv') {
        const { logits, present } = model.forward(tokens, position, state.length > 0 ? pairs(state) : undefined);
        return { logits, ids: tf.argMax(logits, -1) as tf.Tensor1D, state: present.flatMap(({ k, v }) => [k, v]) };
      }
      const { logits } = model.forward(tokens, 0);
      const ids = tf.argMax(logits, -1) as tf.Tensor1D;
      return { logits, ids, state: [tf.concat([tokens, ids.expandDims(1)], 1)] };
    });
    // What this step replaces; the prompt tensor stays for the next generation.
    tf.dispose([...state, ...(last ? [last] : [])]);
    position = cache === 'kv' ? position + tokens.shape[1] : out.state[0]!.shape[1]!;
    [state, last] = [out.state, out.ids];
    try {
      const ids = await out.ids.data();
      const chosen = ids instanceof Int32Array ? ids : Int32Array.from(ids);
      if (!wantLogits) return { tokens: chosen };
      const logits = await out.logits.data();
      return { tokens: chosen, logits: logits instanceof Float32Array ? logits : Float32Array.from(logits) };
    } finally {
      out.logits.dispose();
    }
  };

  return {
    settings: {
      ...ctx.settings,
      cache:
        cache === 'kv'
          ? 'kv: each layer keeps keys and values [batch, heads, positions, headDim], grown by tf.concat every step'
          : 'none: every step runs the whole sequence so far (prompt + tokens chosen, grown by tf.concat) and takes its last position',
      argmax: 'tf.argMax on the backend; only the ids are read back (data()), the logits only when asked',
    },
    async prefill(input, wantLogits) {
      const t = input.get('tokens');
      if (!t || t.dtype !== 'I32' || t.shape.length !== 2) throw new Error("a prefill expects an I32 tensor 'tokens' [batch, promptLength]");
      await ctx.select();
      forget();
      if (prompt?.source !== t.data) {
        prompt?.tensor.dispose();
        prompt = { source: t.data, tensor: tf.tensor2d(t.data as Int32Array, t.shape as [number, number], 'int32') };
      }
      return step(prompt.tensor, wantLogits);
    },
    async decode(wantLogits) {
      if (!last) throw new Error('decode() before prefill(): a generation starts with its prompt');
      await ctx.select();
      if (cache === 'none') return step(state[0] as tf.Tensor2D, wantLogits);
      const next = last.expandDims(1) as tf.Tensor2D;
      try {
        return await step(next, wantLogits);
      } finally {
        next.dispose();
      }
    },
    compileCount: () => null,
    async dispose() {
      forget();
      prompt?.tensor.dispose();
      prompt = undefined;
      model.dispose();
    },
  };
}

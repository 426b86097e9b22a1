import { join } from 'node:path';
import { cachedFile } from './cache.js';
import { decoderTokenFlops } from './decoder.js';
import { cacheDir, generateInput, workloadKey } from './materialize.js';
import { writeSafetensors } from './safetensors.js';
import { int, type Params, type WorkloadFamily } from './types.js';

/**
 * The generation task (`--tasks generate`, docs/generation.md): a prompt of `promptLength` tokens
 * per row, then `newTokens` tokens chosen greedily (the argmax of each step's logits, computed by
 * the framework), every row the same length, no stopping token. Step 0 is the prefill (the whole
 * prompt in one forward pass, its last position's logits give the first new token: time to first
 * token); steps 1..newTokens-1 each feed the previous step's token (time per output token). With
 * the `kv` cache a step computes only its new token against the cached keys and values; with
 * `none` it recomputes the whole sequence so far, the baseline that measures what the cache buys.
 */

/** How a generation cell keeps what earlier positions computed: `kv` (a key/value cache) or `none` (recompute the prefix every step). */
export const CACHES = ['kv', 'none'] as const;
/** A value of the cache axis. */
export type Cache = (typeof CACHES)[number];

/** The generation settings, declared once: the run flags' defaults and the warm generations a worker makes. */
export const GENERATE = {
  /** Prompt tokens per row (`--prompt-len`; a list sweeps it). */
  promptLength: 128,
  /** Tokens generated per row (`--new-tokens`), the prefill's included. */
  newTokens: 128,
  /** Warm generations after the checked cold one: at least... */
  minPasses: 3,
  /** ...and at most (the measure settings' min and max time bound them too). */
  maxPasses: 20,
} as const;

/** Bumped whenever a prompt file's tokens or layout change, so cached prompts are never reused. */
export const PROMPT_VERSION = 1;

/** What a generation cell runs: its prompt length, the tokens it generates and its cache. */
export interface Generation {
  promptLength: number;
  newTokens: number;
  cache: Cache;
}

/** Why the family cannot generate this, or undefined: a prompt and its new tokens must fit the context. */
export function generationProblem(family: WorkloadFamily, params: Params, g: Pick<Generation, 'promptLength' | 'newTokens'>): string | undefined {
  if (!(family.tasks ?? []).includes('generate')) return `the ${family.name} family does not generate text; the decoder family does`;
  const ctx = int(params, 'ctx');
  if (g.promptLength + g.newTokens > ctx)
    return `a prompt of ${g.promptLength} tokens and ${g.newTokens} new tokens need ${g.promptLength + g.newTokens} positions; the model's context (ctx) holds ${ctx}`;
  return undefined;
}

/**
 * Writes (once; cached) a generation's prompts: `tokens` I32 [batch, promptLength], row r the first
 * promptLength tokens of the family's input row r (each row its own seeded stream, so a batch of k
 * is the first k rows of a batch of n, and a shorter prompt is the start of a longer one).
 */
export function materializePrompt(family: WorkloadFamily, params: Params, seed: number, batch: number, promptLength: number, dir = cacheDir()): string {
  const key = workloadKey(family, params, seed);
  return cachedFile(join(dir, `${family.name}-${key}.prompt-v${PROMPT_VERSION}-b${batch}-p${promptLength}.safetensors`), (path) => {
    const spec = family.inputs(params, batch).find((s) => s.name === 'tokens')!;
    const full = generateInput(spec, seed);
    const width = spec.shape[1]!;
    const tokens = new Int32Array(batch * promptLength);
    for (let r = 0; r < batch; r++) tokens.set(full.subarray(r * width, r * width + promptLength), r * promptLength);
    writeSafetensors(path, [{ name: 'tokens', dtype: 'I32', shape: [batch, promptLength] }], () => tokens, {
      family: family.name,
      seed: String(seed),
      batch: String(batch),
      promptLength: String(promptLength),
      version: String(PROMPT_VERSION),
    });
  });
}

/**
 * Matrix-product FLOPs of one row's generation: the prefill (every prompt position's projections,
 * the LM head once), then each decode step's one token; without a cache every step recomputes
 * every position so far.
 */
export function generationFlops(params: Params, g: Generation): { prefill: number; decode: number } {
  const head = 2 * int(params, 'hidden') * int(params, 'vocab');
  const forward = (len: number): number => {
    let f = head;
    for (let pos = 0; pos < len; pos++) f += decoderTokenFlops(params, pos) - head;
    return f;
  };
  const prefill = forward(g.promptLength);
  let decode = 0;
  for (let s = 1; s < g.newTokens; s++) decode += g.cache === 'kv' ? decoderTokenFlops(params, g.promptLength + s - 1) : forward(g.promptLength + s);
  return { prefill, decode };
}

import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tfjsCpu, tfjsNode, tfjsWasm } from '../harness/engines/tfjs/index.js';
import type { BuiltGenerator, GenerationStep, NodeEngineDescriptor } from '../harness/engines/types.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { materializePrompt } from '../workloads/generate.js';
import { getFamily, int, resolveParams, type Cache, type Params } from '../workloads/index.js';
import { materialize } from '../workloads/materialize.js';
import { loadTensors, type TensorMap } from '../workloads/safetensors.js';
import { installed, tempDir } from './helpers.js';

/**
 * The TF.js decoder generators (harness/engines/tfjs/decoder.ts) on every CPU backend, both
 * caches, batch 1 and 3, against the float64 numpy reference (python-runners/tests/decoder_reference.py,
 * which recomputes the whole sequence every step): the same token ids, each step's logits within
 * the fp32 parity tolerance; a second generation repeats the first; and generations leave no
 * tensors behind.
 */

const VENV = 'python-runners/.venv/bin/python';
const [PROMPT, NEW_TOKENS, SEED] = [8, 6, 0];
const family = getFamily('decoder');
const engines = [tfjsCpu, tfjsWasm, ...(installed('@tensorflow/tfjs-node') ? [tfjsNode] : [])];

/** One workload's files and its reference generation. */
interface Case {
  params: Params;
  weights: TensorMap;
  prompt: TensorMap;
  /** Reference ids [batch, NEW_TOKENS] and logits [NEW_TOKENS, batch, vocab]. */
  tokens: Int32Array;
  logits: Float32Array;
}

const dir = tempDir('fwbench-gen-tfjs-');
const cases = new Map<string, Case>();
const key = (head: string, batch: number): string => `${head}-b${batch}`;

function prepareCase(head: 'tied' | 'untied', batch: number): Case {
  const params = resolveParams(family, 'tiny', [['head', head]]);
  const m = materialize(family, params, SEED, batch, dir);
  const promptPath = materializePrompt(family, params, SEED, batch, PROMPT, dir);
  const out = join(dir, `reference-${key(head, batch)}.safetensors`);
  execFileSync(VENV, ['python-runners/tests/decoder_reference.py', m.weightsPath, promptPath, JSON.stringify(params), String(NEW_TOKENS), out]);
  const ref = loadTensors(out).tensors;
  return {
    params,
    weights: loadTensors(m.weightsPath).tensors,
    prompt: loadTensors(promptPath).tensors,
    tokens: ref.get('tokens')!.data as Int32Array,
    logits: ref.get('logits')!.data as Float32Array,
  };
}

beforeAll(() => {
  for (const batch of [1, 3]) cases.set(key('tied', batch), prepareCase('tied', batch));
  cases.set(key('untied', 1), prepareCase('untied', 1));
});

const open: BuiltGenerator[] = [];
afterAll(async () => {
  for (const g of open) await g.dispose();
});

async function build(engine: NodeEngineDescriptor, c: Case, batch: number, cache: Cache): Promise<BuiltGenerator> {
  const g = await (
    await engine.load()
  ).buildGenerator!({
    family: 'decoder',
    params: c.params,
    batchSize: batch,
    weights: c.weights,
    device: 'cpu',
    mode: 'eager',
    threads: 1,
    generation: { promptLength: PROMPT, newTokens: NEW_TOKENS, cache },
  });
  open.push(g);
  return g;
}

/** One generation as the worker's loop runs it: the prefill, then NEW_TOKENS - 1 decode steps. */
async function generate(g: BuiltGenerator, prompt: TensorMap, wantLogits: boolean): Promise<GenerationStep[]> {
  const steps = [await g.prefill(prompt, wantLogits)];
  for (let i = 1; i < NEW_TOKENS; i++) steps.push(await g.decode(wantLogits));
  return steps;
}

/** Per-row ids [batch][step] of a generation. */
const ids = (steps: GenerationStep[], batch: number): number[][] => Array.from({ length: batch }, (_, r) => steps.map((s) => s.tokens[r]!));

/** Checks a generation against the reference; returns the worst per-step logits relL2. */
function checkAgainstReference(steps: GenerationStep[], c: Case, batch: number, what: string): number {
  const vocab = int(c.params, 'vocab');
  const want = Array.from({ length: batch }, (_, r) => Array.from(c.tokens.subarray(r * NEW_TOKENS, (r + 1) * NEW_TOKENS)));
  expect(ids(steps, batch), `${what}: token ids`).toEqual(want);
  let worst = 0;
  steps.forEach((s, i) => {
    expect(s.logits, `${what} step ${i}: logits asked for`).toBeDefined();
    const ref = c.logits.subarray(i * batch * vocab, (i + 1) * batch * vocab);
    const { relL2 } = compareOutputs(ref, [batch, vocab], s.logits!, [batch, vocab]);
    expect(relL2, `${what} step ${i}`).toBeLessThan(FP32_REL_L2_TOLERANCE);
    worst = Math.max(worst, relL2);
  });
  return worst;
}

for (const engine of engines) {
  describe(`${engine.id} generates the decoder`, () => {
    for (const cache of ['kv', 'none'] as const) {
      for (const batch of [1, 3]) {
        it(`cache ${cache}, batch ${batch}: the reference's ids and logits, reproducibly, without leaking tensors`, async () => {
          const c = cases.get(key('tied', batch))!;
          const before = tf.memory().numTensors;
          const g = await build(engine, c, batch, cache);
          expect(g.compileCount?.()).toBeNull();
          expect(g.settings).toMatchObject({ cache: expect.stringMatching(new RegExp(`^${cache}:`)) });
          const what = `${engine.id} ${cache} b${batch}`;
          const first = await generate(g, c.prompt, true);
          const worst = checkAgainstReference(first, c, batch, what);
          console.log(`${what}: ids = reference; worst per-step logits relL2 ${worst.toExponential(2)}`);
          // Generations in a row (the warm passes): the same ids and logits, and the tensor count
          // after each is the same (the cache left by the last step is replaced, never added to).
          const held = tf.memory().numTensors;
          const second = await generate(g, c.prompt, true);
          expect(ids(second, batch)).toEqual(ids(first, batch));
          second.forEach((s, i) =>
            expect(compareOutputs(first[i]!.logits!, [first[i]!.logits!.length], s.logits!, [s.logits!.length]).relL2).toBeLessThan(1e-6),
          );
          expect(tf.memory().numTensors, 'tensors after a second generation').toBe(held);
          const warm = await generate(g, c.prompt, false);
          expect(
            warm.every((s) => s.logits === undefined),
            'logits read back only when asked',
          ).toBe(true);
          expect(ids(warm, batch)).toEqual(ids(first, batch));
          expect(tf.memory().numTensors, 'tensors after a warm generation').toBe(held);
          await g.dispose();
          open.splice(open.indexOf(g), 1);
          expect(tf.memory().numTensors, 'tensors after dispose').toBe(before);
        });
      }
    }

    it('decode before prefill is refused with a clear message', async () => {
      const g = await build(engine, cases.get(key('tied', 1))!, 1, 'kv');
      await expect(g.decode(false)).rejects.toThrow(/decode\(\) before prefill\(\)/);
    });
  });
}

describe('tfjs-cpu generates with an untied LM head', () => {
  it('lm_head.weight, not the embedding, gives the logits: the reference ids and logits', async () => {
    const c = cases.get(key('untied', 1))!;
    for (const cache of ['kv', 'none'] as const) {
      const g = await build(tfjsCpu, c, 1, cache);
      const worst = checkAgainstReference(await generate(g, c.prompt, true), c, 1, `tfjs-cpu untied ${cache}`);
      console.log(`tfjs-cpu untied ${cache} b1: ids = reference; worst per-step logits relL2 ${worst.toExponential(2)}`);
    }
  });
});

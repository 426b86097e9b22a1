import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import type { BuiltGenerator, EngineRuntime, GenerateRequest, GenerationStep } from '../harness/engines/types.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { DEFAULT_MEASURE } from '../harness/worker/measure.js';
import { PROTOCOL_VERSION, type MeasureSettings, type ToWorker } from '../harness/worker/protocol.js';
import { materializePrompt, type Cache } from '../workloads/generate.js';
import { getFamily, int, resolveParams, type Params } from '../workloads/index.js';
import { materialize } from '../workloads/materialize.js';
import { loadTensors, type TensorMap } from '../workloads/safetensors.js';
import { converseWithWorker, relL2, tempDir } from './helpers.js';

/**
 * ONNX Runtime's generator (harness/engines/onnx/decoder.ts: one graph with past/present
 * key-value tensors for the prefill and the decode steps, the ArgMax in the graph) against the float64 numpy
 * reference (python-runners/tests/decoder_reference.py, which recomputes the whole sequence at
 * every step): the same token ids, and every step's logits within the fp32 tolerance, at the
 * reference level (`disabled`, the generation reference for every other engine) and the most
 * optimized one (`all`), with and without the cache, batch 1 and 3, tied and untied heads.
 */

const SEED = 0;
const PROMPT = 8;
const NEW_TOKENS = 6;
const MODES = ['disabled', 'all'] as const;
const CACHES: Cache[] = ['kv', 'none'];
const BATCHES = [1, 3];
const family = getFamily('decoder');
const dir = tempDir('fwbench-generate-ort-');

/** A decoder instance on disk (weights and the prompt of `batch` rows) and its float64 reference generation. */
interface Instance {
  params: Params;
  weightsPath: string;
  promptPath: string;
  weights: TensorMap;
  prompt: TensorMap;
  /** The reference's ids, [batch][newTokens]. */
  ids: number[][];
  /** The reference's logits, [newTokens, batch, vocab] row-major. */
  logits: Float32Array;
}

const instances = new Map<string, Instance>();
function instance(head: 'tied' | 'untied', batch: number): Instance {
  const key = `${head}/${batch}`;
  const known = instances.get(key);
  if (known) return known;
  const params = resolveParams(family, 'tiny', [['head', head]]);
  const m = materialize(family, params, SEED, batch, dir);
  const promptPath = materializePrompt(family, params, SEED, batch, PROMPT, dir);
  const out = join(dir, `reference-${head}-b${batch}.safetensors`);
  execFileSync(
    'python-runners/.venv/bin/python',
    ['python-runners/tests/decoder_reference.py', m.weightsPath, promptPath, JSON.stringify(params), String(NEW_TOKENS), out],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const ref = loadTensors(out).tensors;
  const tokens = ref.get('tokens')!;
  expect(tokens.shape).toEqual([batch, NEW_TOKENS]);
  const ids = Array.from({ length: batch }, (_, r) => Array.from(tokens.data.subarray(r * NEW_TOKENS, (r + 1) * NEW_TOKENS)));
  const x: Instance = {
    params,
    weightsPath: m.weightsPath,
    promptPath,
    weights: loadTensors(m.weightsPath).tensors,
    prompt: loadTensors(promptPath).tensors,
    ids,
    logits: ref.get('logits')!.data as Float32Array,
  };
  instances.set(key, x);
  return x;
}

let runtime: EngineRuntime;
beforeAll(async () => {
  runtime = await onnxruntime.load();
});

/** A CPU generation request, one thread. */
const requestOf = (x: Instance, mode = 'disabled', cache: Cache = 'kv', batch = 1): GenerateRequest => ({
  family: 'decoder',
  params: x.params,
  batchSize: batch,
  weights: x.weights,
  device: 'cpu',
  mode,
  threads: 1,
  generation: { promptLength: PROMPT, newTokens: NEW_TOKENS, cache },
});

const generator = (x: Instance, mode: string, cache: Cache, batch: number): Promise<BuiltGenerator> =>
  runtime.buildGenerator!(requestOf(x, mode, cache, batch));

/** One generation; `wantLogits(step)` says at which steps the logits are fetched. */
async function generate(gen: BuiltGenerator, x: Instance, wantLogits: (step: number) => boolean): Promise<GenerationStep[]> {
  const steps: GenerationStep[] = [];
  for (let s = 0; s < NEW_TOKENS; s++) steps.push(await (s === 0 ? gen.prefill(x.prompt, wantLogits(s)) : gen.decode(wantLogits(s))));
  return steps;
}

/** Row r's ids over the steps, as the reference lays them out. */
const idsOf = (steps: GenerationStep[], batch: number): number[][] => Array.from({ length: batch }, (_, r) => steps.map((s) => s.tokens[r]!));

/** The worst per-step, per-row relL2 of the steps' logits against the reference's, and where. */
function worstRelL2(steps: GenerationStep[], x: Instance, batch: number): { e: number; at: string } {
  const vocab = int(x.params, 'vocab');
  let worst = { e: 0, at: '' };
  steps.forEach((s, i) => {
    expect(s.logits, `step ${i} logits`).toBeInstanceOf(Float32Array);
    expect(s.logits!.length).toBe(batch * vocab);
    for (let r = 0; r < batch; r++) {
      const e = relL2(s.logits!.subarray(r * vocab, (r + 1) * vocab), x.logits.subarray((i * batch + r) * vocab, (i * batch + r + 1) * vocab));
      if (e >= worst.e) worst = { e, at: `step ${i} row ${r}` };
    }
  });
  return worst;
}

describe.each(MODES)('onnxruntime generator, mode %s', (mode) => {
  /** Each batch's ids by cache, to check kv and none agree with each other as well as with the reference. */
  const idsByCache = new Map<string, number[][]>();

  describe.each(BATCHES)('batch %s', (batch) => {
    it.each(CACHES)('cache %s: the reference ids and logits; a second generation reproduces the first; compile count', async (cache) => {
      const x = instance('tied', batch);
      const gen = await generator(x, mode, cache, batch);
      try {
        const first = await generate(gen, x, () => true);
        expect(idsOf(first, batch)).toEqual(x.ids);
        const worst = worstRelL2(first, x, batch);
        console.log(
          `onnxruntime ${mode} cache ${cache} batch ${batch}: ids ${JSON.stringify(x.ids)}; worst logits relL2 ${worst.e.toExponential(2)} (${worst.at})`,
        );
        expect(worst.e).toBeLessThan(FP32_REL_L2_TOLERANCE);
        idsByCache.set(`${batch}/${cache}`, idsOf(first, batch));

        // Prefill again: the earlier generation is forgotten. Logits fetched at the last step only, the others return ids alone.
        const second = await generate(gen, x, (s) => s === NEW_TOKENS - 1);
        expect(idsOf(second, batch)).toEqual(idsOf(first, batch));
        second.slice(0, -1).forEach((s, i) => expect(s.logits, `second generation, step ${i}`).toBeUndefined());
        expect(second.at(-1)!.logits).toEqual(first.at(-1)!.logits);
        expect(gen.compileCount?.()).toBe(1);
        expect(gen.settings.graphOptimizationLevel).toBe(mode);
      } finally {
        await gen.dispose();
      }
    });

    it('kv and none choose the same ids', () => {
      const kv = idsByCache.get(`${batch}/kv`);
      const none = idsByCache.get(`${batch}/none`);
      expect(kv && none, 'both caches generated above').toBeTruthy();
      expect(kv).toEqual(none);
    });
  });
});

describe('onnxruntime generator: untied head', () => {
  it.each(CACHES)('cache %s, batch 3, modes disabled and all: the lm_head.weight head matches the reference', async (cache) => {
    const x = instance('untied', 3);
    const tied = instance('tied', 3);
    // The untied head changes the model: a test that ignored lm_head.weight would generate the tied ids.
    expect(x.logits).not.toEqual(tied.logits);
    for (const mode of MODES) {
      const gen = await generator(x, mode, cache, 3);
      try {
        const steps = await generate(gen, x, () => true);
        expect(idsOf(steps, 3)).toEqual(x.ids);
        const worst = worstRelL2(steps, x, 3);
        console.log(`onnxruntime untied ${mode} cache ${cache} batch 3: worst logits relL2 ${worst.e.toExponential(2)} (${worst.at})`);
        expect(worst.e).toBeLessThan(FP32_REL_L2_TOLERANCE);
      } finally {
        await gen.dispose();
      }
    }
  });
});

describe('onnxruntime generator: bad requests', () => {
  it('a decode before any prefill, an unknown mode, and another family are refused with one line', async () => {
    const x = instance('tied', 1);
    const gen = await generator(x, 'disabled', 'kv', 1);
    try {
      await expect(gen.decode(false)).rejects.toThrow(/^onnxruntime: decode\(\) before prefill\(\)$/);
    } finally {
      await gen.dispose();
    }
    await expect(generator(x, 'fast', 'kv', 1)).rejects.toThrow("onnxruntime: unknown mode 'fast'; valid modes: all, extended, basic, disabled");
    await expect(runtime.buildGenerator!({ ...requestOf(x), family: 'transformer' })).rejects.toThrow(/generates with the decoder family; got transformer/);
  });
});

describe('Node worker: a generate job (real worker, onnxruntime, decoder/tiny)', () => {
  const MEASURE: MeasureSettings = { ...DEFAULT_MEASURE, warmupMinMs: 0, warmupMaxMs: 50, minSamples: 3, minTimeMs: 10, maxTimeMs: 200 };
  const PASSES = { minPasses: 2, maxPasses: 3 };

  it.each(CACHES)('cache %s: generate-parity (the reference ids), passes, memory, done; the logits file holds what the parity said', async (cache) => {
    const batch = 3;
    const x = instance('tied', batch);
    const logitsPath = join(dir, `worker-logits-${cache}.safetensors`);
    const job: ToWorker = {
      type: 'job',
      protocol: PROTOCOL_VERSION,
      cell: {
        engine: 'onnxruntime',
        mode: 'disabled',
        device: 'cpu',
        family: 'decoder',
        params: x.params,
        batchSize: batch,
        threads: 1,
        task: 'generate',
        generation: { promptLength: PROMPT, newTokens: NEW_TOKENS, cache },
      },
      weightsPath: x.weightsPath,
      inputsPath: materialize(family, x.params, SEED, batch, dir).inputsPath,
      measure: MEASURE,
      generate: { promptPath: x.promptPath, logitsPath, ...PASSES },
    };
    const msgs = await converseWithWorker(job, 'continue');
    const kinds = msgs.filter((m) => m.type !== 'phase').map((m) => m.type);
    const phases = msgs.flatMap((m) => (m.type === 'phase' ? [m.phase] : []));
    console.log(`onnxruntime generate job (${cache}): ${kinds.join(' -> ')}; phases ${phases.join(' -> ')}`);
    expect(kinds).toEqual(['hello', 'built', 'generate-parity', 'passes', 'memory', 'done']);
    expect(phases).toEqual(['load', 'build', 'parity', 'measure', 'memory']);

    const built = msgs.find((m) => m.type === 'built')!;
    if (built.type !== 'built') throw new Error('unreachable');
    expect(built.settings.sessions).toMatch(/^one InferenceSession /);

    const parity = msgs.find((m) => m.type === 'generate-parity')!;
    if (parity.type !== 'generate-parity') throw new Error('unreachable');
    expect(parity.tokens).toEqual(x.ids);
    expect(parity.passNs).toHaveLength(NEW_TOKENS);
    expect(parity.passNs.every((ns) => Number.isInteger(ns) && ns > 0)).toBe(true);
    expect(parity.compiles).toBe(1);

    // The file's logits are the steps' logits: each row's argmax is the id the parity reported, and they are the reference's.
    const file = loadTensors(logitsPath).tensors.get('logits')!;
    const vocab = int(x.params, 'vocab');
    expect(file.shape).toEqual([NEW_TOKENS, batch, vocab]);
    for (let s = 0; s < NEW_TOKENS; s++) {
      for (let r = 0; r < batch; r++) {
        const row = Array.from(file.data.subarray((s * batch + r) * vocab, (s * batch + r + 1) * vocab));
        expect(row.indexOf(Math.max(...row)), `step ${s} row ${r}`).toBe(parity.tokens[r]![s]);
      }
    }
    const e = relL2(file.data, x.logits);
    console.log(`onnxruntime generate job (${cache}): logits file vs reference relL2 ${e.toExponential(2)}`);
    expect(e).toBeLessThan(FP32_REL_L2_TOLERANCE);

    const warm = msgs.find((m) => m.type === 'passes')!;
    if (warm.type !== 'passes') throw new Error('unreachable');
    expect(warm.passesNs.length).toBeGreaterThanOrEqual(PASSES.minPasses);
    expect(warm.passesNs.length).toBeLessThanOrEqual(PASSES.maxPasses);
    for (const g of warm.passesNs) expect(g).toHaveLength(NEW_TOKENS);
    expect(warm.compiles).toBe(1);
    const memory = msgs.find((m) => m.type === 'memory')!;
    if (memory.type !== 'memory') throw new Error('unreachable');
    expect(memory.peakHostBytes).toBeGreaterThan(0);
  });
});

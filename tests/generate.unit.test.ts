import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planCells, skipReason } from '../harness/run/plan.js';
import { runSettings } from '../harness/run/config.js';
import { compareGeneration, generationFigures, type GenerationReference } from '../harness/stats/generate.js';
import { generationFlops, materializePrompt } from '../workloads/generate.js';
import { getFamily, resolveParams } from '../workloads/index.js';
import { loadTensors } from '../workloads/safetensors.js';
import { planConfig } from './plan-config.js';

/**
 * The generation axis without an engine: what a run plans (the decoder family, kv and no-cache
 * cells, the skip reasons), the prompt files, the FLOP counts, and the judge of a generation's
 * parity and its figures, each on inputs where the answer is known.
 */

const decoder = getFamily('decoder');
const tiny = resolveParams(decoder, 'tiny');
const up = { available: true, framework: 'x', devices: ['cpu' as const] };

describe('planning a generation run', () => {
  it('--tasks generate alone runs the decoder family; inference alone runs the others', async () => {
    const settings = async (...args: string[]) => {
      const given = new Set(args.filter((a) => a.startsWith('--')).map((a) => a.slice(2)));
      const flags: Record<string, unknown> = {};
      for (let i = 0; i < args.length; i += 2) flags[args[i]!.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase())] = args[i + 1]!.split(',');
      return runSettings({ workloads: ['cnn', 'rnn', 'transformer', 'decoder'], tasks: ['inference'], out: join(tmpdir(), 'fwbench-plan'), ...flags }, (k) =>
        given.has(k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)),
      );
    };
    expect((await settings('--tasks', 'generate')).config.workloads).toEqual(['decoder']);
    expect((await settings()).config.workloads).toEqual(['cnn', 'rnn', 'transformer']);
    expect((await settings('--tasks', 'inference,generate')).config.workloads).toEqual(['cnn', 'rnn', 'transformer', 'decoder']);
  });

  it('plans each prompt length with each cache, named in the id; the engines\u2019 generate modes', () => {
    const cells = planCells(
      planConfig({
        engines: ['onnxruntime', 'torch'],
        workloads: ['decoder'],
        preset: { decoder: 'tiny' },
        tasks: ['generate'],
        promptLengths: [8, 32],
        newTokens: 4,
      }),
    );
    expect(cells.map((c) => c.id)).toEqual([
      'onnxruntime/all/cpu/decoder/tiny/b1/t1/generate/p8n4',
      'torch/eager/cpu/decoder/tiny/b1/t1/generate/p8n4',
      'torch/compile-static/cpu/decoder/tiny/b1/t1/generate/p8n4',
      'onnxruntime/all/cpu/decoder/tiny/b1/t1/generate/p8n4/nocache',
      'torch/eager/cpu/decoder/tiny/b1/t1/generate/p8n4/nocache',
      'torch/compile-static/cpu/decoder/tiny/b1/t1/generate/p8n4/nocache',
      'onnxruntime/all/cpu/decoder/tiny/b1/t1/generate/p32n4',
      'torch/eager/cpu/decoder/tiny/b1/t1/generate/p32n4',
      'torch/compile-static/cpu/decoder/tiny/b1/t1/generate/p32n4',
      'onnxruntime/all/cpu/decoder/tiny/b1/t1/generate/p32n4/nocache',
      'torch/eager/cpu/decoder/tiny/b1/t1/generate/p32n4/nocache',
      'torch/compile-static/cpu/decoder/tiny/b1/t1/generate/p32n4/nocache',
    ]);
    for (const c of cells) expect(skipReason(c, up)).toBeUndefined();
  });

  it('skips, with the reason and the fix: a family that does not generate, a decoder asked for inference, a prompt past the context, torchscript', () => {
    const plan = (over: Parameters<typeof planConfig>[0]) => planCells(planConfig(over));
    const [cnn] = plan({ engines: ['onnxruntime'], workloads: ['cnn'], preset: { cnn: 'tiny' }, tasks: ['generate'] });
    expect(skipReason(cnn!, up)).toEqual({
      reason: 'the cnn family does not do generate; its models do inference and training',
      fix: '--workloads decoder with --tasks generate, or --tasks inference,training for cnn',
    });
    const [dec] = plan({ engines: ['onnxruntime'], workloads: ['decoder'], preset: { decoder: 'tiny' }, tasks: ['inference'] });
    expect(skipReason(dec!, up)?.reason).toBe('the decoder family does not do inference; its models do generate');
    const [long] = plan({
      engines: ['onnxruntime'],
      workloads: ['decoder'],
      preset: { decoder: 'tiny' },
      tasks: ['generate'],
      promptLengths: [200],
      newTokens: 100,
    });
    expect(skipReason(long!, up)).toEqual({
      reason: "a prompt of 200 tokens and 100 new tokens need 300 positions; the model's context (ctx) holds 288",
      fix: 'a shorter --prompt-len or --new-tokens, or --set ctx=300',
    });
    const [ts] = plan({ engines: ['torch'], modes: ['torchscript'], workloads: ['decoder'], preset: { decoder: 'tiny' }, tasks: ['generate'] });
    expect(skipReason(ts!, up)?.reason).toMatch(/^torch mode torchscript cannot do generate: fwbench's torchscript mode is torch.jit.trace/);
    expect(skipReason(ts!, up)?.fix).toBe('--modes eager,compile,compile-static,compile-dynamic');
  });
});

describe('prompts and FLOPs', () => {
  it('a shorter prompt is the start of a longer one, and a smaller batch the first rows of a larger one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwbench-prompt-'));
    const read = (batch: number, len: number) => loadTensors(materializePrompt(decoder, tiny, 0, batch, len, dir)).tensors.get('tokens')!;
    const long = read(3, 16);
    const short = read(2, 5);
    expect(long.shape).toEqual([3, 16]);
    for (let r = 0; r < 2; r++) expect(Array.from(short.data.subarray(r * 5, r * 5 + 5))).toEqual(Array.from(long.data.subarray(r * 16, r * 16 + 5)));
    expect(Array.from(long.data).every((t) => t >= 0 && t < 128)).toBe(true);
    expect(Array.from(read(3, 16).data)).not.toEqual(Array.from(loadTensors(materializePrompt(decoder, tiny, 1, 3, 16, dir)).tensors.get('tokens')!.data));
  });

  it('without a cache each decode step recomputes the prefix: decode FLOPs grow with the square of the length instead of linearly', () => {
    const kv = generationFlops(tiny, { promptLength: 8, newTokens: 9, cache: 'kv' });
    const none = generationFlops(tiny, { promptLength: 8, newTokens: 9, cache: 'none' });
    expect(kv.prefill).toBe(none.prefill);
    expect(none.decode / kv.decode).toBeGreaterThan(8);
    const kv2 = generationFlops(tiny, { promptLength: 8, newTokens: 17, cache: 'kv' });
    expect(kv2.decode / kv.decode).toBeGreaterThan(2);
    expect(kv2.decode / kv.decode).toBeLessThan(2.3);
  });
});

/** A reference of 2 rows, 3 steps, vocabulary 4: row r at step s prefers token (r + s) % 4 by `margin`. */
function reference(margin = 1): GenerationReference {
  const V = 4;
  const logits = new Float32Array(3 * 2 * V);
  const tokens = [[], []] as number[][];
  for (let s = 0; s < 3; s++)
    for (let r = 0; r < 2; r++) {
      const best = (r + s) % V;
      for (let v = 0; v < V; v++) logits[(s * 2 + r) * V + v] = v === best ? 2 + margin : v === (best + 1) % V ? 2 : -1 - v * 0.1;
      tokens[r]!.push(best);
    }
  return { tokens, logits, vocab: V };
}

describe('the parity of a generation', () => {
  it('passes identical ids and logits, and fails logits off by more than the tolerance, naming the step', () => {
    const ref = reference();
    expect(compareGeneration(ref, ref.tokens, ref.logits)).toMatchObject({ pass: true, relL2: 0, rowsMatching: 2, ties: 0, steps: 3 });
    const off = Float32Array.from(ref.logits);
    off[2 * 2 * 4 + 1] = off[2 * 2 * 4 + 1]! + 0.05;
    const f = compareGeneration(ref, ref.tokens, off);
    expect(f.pass).toBe(false);
    expect(f.worstStep).toBe(2);
    expect(f.problem).toMatch(/^the logits of step 2 differ by relative L2 /);
  });

  it('fails a row that chose another token where the reference was sure, and accepts one at a near tie, comparing that row only up to it', () => {
    const ref = reference();
    const wrong = [[...ref.tokens[0]!], [ref.tokens[1]![0]!, (ref.tokens[1]![1]! + 1) % 4, 0]];
    const f = compareGeneration(ref, wrong, ref.logits);
    expect(f.pass).toBe(false);
    expect(f.problem).toBe('row 1 chose token 3 at step 1 where the reference chose 2 (its logit 1.00 higher: not a near tie)');
    // A tie: the runner-up within 1e-6 of the best; after it the row's logits are another context's, not compared.
    const tie = reference(1e-6);
    const other = Float32Array.from(tie.logits);
    for (let v = 0; v < 4; v++) other[(2 * 2 + 1) * 4 + v] = 7;
    const g = compareGeneration(tie, wrong, other);
    expect(g).toMatchObject({ pass: true, rowsMatching: 1, ties: 1, firstTieStep: 1 });
  });

  it('refuses outputs of another shape', () => {
    const ref = reference();
    expect(compareGeneration(ref, [ref.tokens[0]!], ref.logits).problem).toBe('generated 1 rows of 3 tokens; the reference has 2 rows of 3');
    expect(compareGeneration(ref, ref.tokens, ref.logits.subarray(4)).pass).toBe(false);
  });
});

describe('the figures of a generation', () => {
  it('TTFT is the prefill step, TPOT every decode step, the rates per token of the batch', () => {
    const runs = [
      {
        coldPassMs: [50, 30, 3, 3],
        passesMs: [
          [10, 2, 2, 4],
          [12, 2, 3, 3],
          [11, 2, 2, 2],
        ],
        compiles: { afterCold: 2, afterWarm: 2 },
      },
    ];
    const g = generationFigures({ promptLength: 8, newTokens: 4, cache: 'kv' }, 2, runs, { prefill: 100, decode: 30 });
    expect(g.ttftMs?.medianMs).toBe(11);
    expect(g.tpotMs?.medianMs).toBe(2);
    expect(g.tpotMs?.p90Ms).toBeCloseTo(3.2, 6);
    expect(g.e2eMs?.medianMs).toBe(18);
    expect(g.prefillTokensPerS).toBeCloseTo((2 * 8) / 0.011, 6);
    // Decode totals 8, 8, 6: median 8 ms for 2 x 3 tokens.
    expect(g.decodeTokensPerS).toBeCloseTo(6 / 0.008, 6);
    expect(g.cold).toEqual({ ttftMs: 50, firstDecodeMs: 30, e2eMs: 86 });
    expect(g.flops).toEqual({ prefill: 200, decode: 60 });
    expect(
      generationFigures(
        { promptLength: 8, newTokens: 1, cache: 'kv' },
        1,
        [{ coldPassMs: [5], passesMs: [[4], [5]], compiles: { afterCold: null, afterWarm: null } }],
        { prefill: 1, decode: 0 },
      ).tpotMs,
    ).toBeNull();
  });
});

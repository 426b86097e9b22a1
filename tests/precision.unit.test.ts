import { describe, expect, it } from 'vitest';
import { ENGINES, precisionProblem } from '../harness/engines/registry.js';
import { ENGINE_IDS } from '../harness/engines/types.js';
import { planCells, skipReason } from '../harness/run/plan.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { argmaxAgreement, comparePrecision } from '../harness/stats/precision.js';
import { planConfig } from './plan-config.js';
import { PRECISION, PRECISIONS } from '../workloads/precision.js';

/** The precision axis without any engine: the plan, the skip reasons and the gates. */
const available = { available: true, framework: 'x', devices: ['cpu' as const, 'cuda' as const] };
const config = planConfig({
  engines: ['onnxruntime', 'tfjs-cpu', 'torch', 'tensorflow'],
  workloads: ['cnn' as const, 'transformer' as const],
  preset: { cnn: 'tiny', transformer: 'tiny' },
  batchSizes: [2],
});

describe('planning precision cells', () => {
  it('plans each precision for every engine, ids ending in /<precision> (fp32 ids unchanged)', () => {
    const fp32 = planCells(config);
    expect(fp32.every((c) => c.precision === 'fp32' && !/\/(bf16|int8)$/.test(c.id))).toBe(true);
    const cells = planCells({ ...config, precisions: ['fp32', 'bf16', 'int8'] });
    expect(cells).toHaveLength(3 * fp32.length);
    expect(cells.filter((c) => c.precision === 'bf16').every((c) => c.id.endsWith('/bf16'))).toBe(true);
    expect(new Set(cells.map((c) => c.id)).size).toBe(cells.length);
  });

  it('every engine declares every reduced precision: a mechanism or the reason it cannot', () => {
    for (const id of ENGINE_IDS)
      for (const p of PRECISIONS.filter((x) => x !== 'fp32')) {
        const way = ENGINES[id].precisions[p];
        expect(typeof way === 'string' ? way.length : way.mechanism.length, `${id} ${p}`).toBeGreaterThan(20);
      }
  });

  it('skips what an engine cannot run with its exact reason and names the engines that can', () => {
    const cells = planCells({ ...config, precisions: ['bf16', 'int8', 'fp16'] });
    const find = (id: string) => cells.find((c) => c.id === id)!;
    const tfjs = skipReason(find('tfjs-cpu/eager/cpu/transformer/tiny/b2/t1/bf16'), available)!;
    expect(tfjs.reason).toMatch(/^tfjs-cpu cannot run bf16 on transformer\/cpu: TensorFlow.js has no bfloat16 dtype/);
    expect(tfjs.fix).toMatch(/--engines .*torch/);
    const torchCnn = skipReason(find('torch/eager/cpu/cnn/tiny/b2/t1/int8'), available)!;
    expect(torchCnn.reason).toMatch(/its int8 applies to rnn, transformer only: dynamic quantization covers Linear and LSTM/);
    expect(skipReason(find('torch/eager/cpu/transformer/tiny/b2/t1/int8'), available)).toBeUndefined();
    expect(skipReason(find('torch/eager/cpu/transformer/tiny/b2/t1/bf16'), available)).toBeUndefined();
    expect(skipReason(find('tensorflow/eager/cpu/transformer/tiny/b2/t1/int8'), available)!.reason).toMatch(
      /^tensorflow cannot run int8 on transformer\/cpu: .*TensorFlow Lite/,
    );
    // A limit of one mode names the mode and the engine's modes that can.
    const [xla] = planCells({ ...config, engines: ['tensorflow'], workloads: ['transformer'], modes: ['xla'], precisions: ['bf16'] });
    expect(skipReason(xla!, available)).toMatchObject({
      reason: expect.stringMatching(/^tensorflow mode xla cannot run bf16 on transformer\/cpu: its bf16 works in modes eager, function/),
      fix: expect.stringMatching(/^--modes eager,function.* run bf16 on tensorflow$/),
    });
    // fp16 is a CUDA path on every engine that has one: on the CPU it is skipped, saying where it runs.
    expect(skipReason(find('torch/eager/cpu/transformer/tiny/b2/t1/fp16'), available)!.reason).toMatch(/it runs fp16 on cuda only/);
  });

  it('runs reduced precisions on fixed-shape inference only, saying so', () => {
    const [train] = planCells({ ...config, engines: ['torch'], workloads: ['transformer'], tasks: ['training'], precisions: ['bf16'] });
    expect(skipReason(train!, available)?.reason).toMatch(/bf16 cells time fixed-shape inference; a training cell runs fp32/);
    const [stream] = planCells({ ...config, engines: ['torch'], workloads: ['transformer'], shapes: ['stream'], paddings: ['max'], precisions: ['int8'] });
    expect(skipReason(stream!, available)?.reason).toMatch(/a shape-stream cell runs fp32/);
  });

  it('reads limits of a declared way: device, family and mode', () => {
    const way = { mechanism: 'x', devices: ['cpu' as const], families: ['rnn' as const], modes: ['eager'], limits: 'because' };
    const e = { ...ENGINES.torch, precisions: { ...ENGINES.torch.precisions, int8: way } };
    expect(precisionProblem(e, 'int8', { device: 'cuda', family: 'rnn', mode: 'eager' })).toBe('it runs int8 on cpu only: because');
    expect(precisionProblem(e, 'int8', { device: 'cpu', family: 'cnn', mode: 'eager' })).toBe('its int8 applies to rnn only: because');
    expect(precisionProblem(e, 'int8', { device: 'cpu', family: 'rnn', mode: 'compile' })).toBe('its int8 works in mode eager only: because');
    expect(precisionProblem(e, 'int8', { device: 'cpu', family: 'rnn', mode: 'eager' })).toBeUndefined();
    expect(precisionProblem(e, 'fp32', { device: 'cuda', family: 'cnn', mode: 'x' })).toBeUndefined();
  });
});

describe('the precision gates', () => {
  // Two rows of four classes; the reference's top-1 classes are 3 and 0.
  const ref = [0.1, 0.2, 0.3, 0.9, 0.8, 0.1, 0.2, 0.3];
  const shape = [2, 4];
  const noisy = (scale: number): number[] => ref.map((v, i) => v + scale * (i % 2 === 0 ? 1 : -1));

  it('counts rows whose top-1 class matches, leaving out near ties of the reference resolved the other way', () => {
    expect(argmaxAgreement(ref, ref, shape)).toEqual({ agreement: 1, ties: 0 });
    expect(argmaxAgreement(ref, [0.1, 0.2, 0.3, 0.9, 0.1, 0.8, 0.2, 0.3], shape)).toEqual({ agreement: 0.5, ties: 0 });
    // Row 2's top two differ by 0.1 in the reference: within 0.25 x its RMS logit (0.67), a tie; not within 0.1 x it.
    const near = [0.1, 0.2, 0.3, 0.9, 1.0, 0.9, 0, 0];
    expect(argmaxAgreement(near, [0.1, 0.2, 0.3, 0.9, 0.9, 1.0, 0, 0], shape, 0.25)).toEqual({ agreement: 1, ties: 1 });
    expect(argmaxAgreement(near, [0.1, 0.2, 0.3, 0.9, 0.9, 1.0, 0, 0], shape, 0.1)).toEqual({ agreement: 0.5, ties: 0 });
  });

  it('fp32 keeps the fp32 tolerance', () => {
    expect(comparePrecision('fp32', undefined, ref, shape, noisy(1e-6), shape)).toMatchObject({
      pass: true,
      tolerance: FP32_REL_L2_TOLERANCE,
      argmaxAgreement: 1,
    });
    expect(comparePrecision('fp32', undefined, ref, shape, noisy(1e-3), shape).pass).toBe(false);
  });

  it('a reduced precision passes within its own tolerance, once the worker showed it computed in it', () => {
    const out = noisy(1e-3);
    const f = comparePrecision('bf16', { used: 'bf16', evidence: 'logits bfloat16' }, ref, shape, out, shape);
    expect(f).toMatchObject({
      pass: true,
      tolerance: PRECISION.bf16.relL2Tolerance,
      argmaxAgreement: 1,
      minArgmaxAgreement: PRECISION.bf16.minArgmaxAgreement,
    });
    expect(f.relL2).toBeGreaterThan(FP32_REL_L2_TOLERANCE);
  });

  it('a silent fallback fails before any figure counts: fp32 observed, or nothing reported', () => {
    const exact = comparePrecision('bf16', { used: 'fp32', evidence: 'logits float32; 0 of 6 Linear outputs bfloat16' }, ref, shape, ref, shape);
    expect(exact.pass).toBe(false);
    expect(exact.problem).toBe('asked for bf16, but the engine computed in fp32 (logits float32; 0 of 6 Linear outputs bfloat16)');
    const silent = comparePrecision('int8', undefined, ref, shape, ref, shape);
    expect(silent).toMatchObject({ pass: false, problem: 'asked for int8, but the engine did not report the precision it computed in' });
  });

  it('the top-1 gate fails a cell whose relative error is within tolerance but whose decided classes flip', () => {
    // Ten rows decided by a margin of 2 (above 0.25 x their RMS logit of 6.4); the output flips two of them.
    const rows = 10;
    const decided = Array.from({ length: rows }, () => [10, 8, 0, 0]).flat();
    const flipped = decided.map((v, i) => (i < 8 && i % 4 < 2 ? (i % 4 === 0 ? 8 : 10) : v));
    const f = comparePrecision('int8', { used: 'int8', evidence: 'x' }, decided, [rows, 4], flipped, [rows, 4]);
    expect(f.relL2).toBeLessThan(PRECISION.int8.relL2Tolerance!);
    expect(f).toMatchObject({ pass: false, argmaxAgreement: 0.8, ties: 0 });
    expect(f.problem).toMatch(/top-1 agrees with the fp32 reference on 80 % of the rows it decides, below the int8 gate of 90 %/);
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planCells, skipReason } from '../harness/run/plan.js';
import { passesOutcome, type WorkerOutcome } from '../harness/run/outcome.js';
import { compareStream, streamFigures, type StreamRun } from '../harness/stats/stream.js';
import { planConfig } from './plan-config.js';
import { getFamily, resolveParams } from '../workloads/index.js';
import { loadTensors } from '../workloads/safetensors.js';
import { materializeStream, paddedLength, shapeStream, STREAM } from '../workloads/shapes.js';

/** The shapes axis without any engine: the stream, its files, the plan, the figures and the parity rule. */
const transformer = getFamily('transformer');
const tiny = resolveParams(transformer, 'tiny');
const mini = resolveParams(transformer, 'bert-mini');

describe('the shape stream', () => {
  it('is seeded: the same for the same seed, another for another seed, rows within [minLength, maxLength]', () => {
    const a = shapeStream(transformer, mini, 0, 4);
    expect(shapeStream(transformer, mini, 0, 4)).toEqual(a);
    expect(shapeStream(transformer, mini, 1, 4).lengths).not.toEqual(a.lengths);
    expect(a.lengths).toHaveLength(STREAM.batches);
    expect(a.minLength).toBe(8);
    expect(a.buckets).toEqual([8, 16, 32, 64, 128]);
    for (const rows of a.lengths) for (const l of rows) expect(l >= 8 && l <= 128).toBe(true);
    // Realistic traffic: many distinct lengths, most of them well below the maximum.
    const all = a.lengths.flat();
    expect(new Set(all).size).toBeGreaterThan(20);
    expect(all.filter((l) => l < 64).length).toBeGreaterThan(all.length / 2);
  });

  it('pads a batch by the strategy: exact to its longest row, bucket to the next bucket, max to the preset', () => {
    const s = { buckets: [8, 16, 32, 64, 128], maxLength: 128 };
    expect(paddedLength('exact', [20, 33, 9], s)).toBe(33);
    expect(paddedLength('bucket', [20, 33, 9], s)).toBe(64);
    expect(paddedLength('bucket', [64], s)).toBe(64);
    expect(paddedLength('max', [9], s)).toBe(128);
  });

  it('writes each row with the same tokens whatever it is padded to, padding with the pad token, and the reference file row by row', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwbench-stream-'));
    const exact = materializeStream(transformer, mini, 0, 2, 'exact', dir);
    const max = loadTensors(materializeStream(transformer, mini, 0, 2, 'max', dir).path).tensors;
    const rows = loadTensors(materializeStream(transformer, mini, 0, 2, 'rows', dir).path).tensors;
    const ex = loadTensors(exact.path).tensors;
    for (let i = 0; i < STREAM.batches; i++) {
      const lengths = Array.from(ex.get(`lengths.${i}`)!.data);
      expect(lengths).toEqual(exact.stream.lengths[i]);
      const L = ex.get(`tokens.${i}`)!.shape[1]!;
      expect(L).toBe(Math.max(...lengths));
      expect(max.get(`tokens.${i}`)!.shape).toEqual([2, 128]);
      lengths.forEach((len, r) => {
        const real = Array.from(ex.get(`tokens.${i}`)!.data.subarray(r * L, r * L + len));
        expect(Array.from(max.get(`tokens.${i}`)!.data.subarray(r * 128, r * 128 + len))).toEqual(real);
        expect(Array.from(rows.get(`tokens.${i * 2 + r}`)!.data)).toEqual(real);
        expect(rows.get(`tokens.${i * 2 + r}`)!.shape).toEqual([1, len]);
        expect(Array.from(max.get(`tokens.${i}`)!.data.subarray(r * 128 + len, (r + 1) * 128)).every((t) => t === STREAM.padToken)).toBe(true);
      });
    }
    expect(max.get('fixed.tokens')!.shape).toEqual([2, 128]);
    expect(Array.from(max.get('fixed.lengths')!.data)).toEqual([128, 128]);
    expect(rows.has('fixed.tokens')).toBe(false);
  });
});

describe('planning stream cells', () => {
  const config = planConfig({
    engines: ['onnxruntime', 'torch', 'tensorflow'],
    workloads: ['cnn' as const, 'transformer' as const],
    preset: { cnn: 'tiny', transformer: 'tiny' },
    batchSizes: [2],
  });
  it('plans every padding, the engines stream modes, ids ending in /stream-<padding>; fixed runs are unchanged', () => {
    const fixed = planCells(config);
    expect(fixed.every((c) => c.shapes === 'fixed' && !c.padding && !c.id.includes('stream'))).toBe(true);
    const cells = planCells({ ...config, shapes: ['stream'], paddings: ['exact', 'max'] });
    const tr = cells.filter((c) => c.family.name === 'transformer');
    expect(new Set(tr.map((c) => c.padding))).toEqual(new Set(['exact', 'max']));
    expect(tr.filter((c) => c.padding === 'exact').map((c) => `${c.engine}/${c.mode}`)).toEqual([
      'onnxruntime/all',
      'torch/eager',
      'torch/torchscript',
      'torch/compile',
      'torch/compile-static',
      'torch/compile-dynamic',
      'tensorflow/eager',
      'tensorflow/function',
      'tensorflow/xla',
      'tensorflow/function-signature',
      'tensorflow/function-relaxed',
    ]);
    expect(tr[0]!.id).toBe('onnxruntime/all/cpu/transformer/tiny/b2/t1/stream-exact');
    expect(new Set(cells.map((c) => c.id)).size).toBe(cells.length);
  });
  it('skips a stream of a family without a sequence length, and training on a stream, saying why and what works', () => {
    const [cnn] = planCells({ ...config, workloads: ['cnn'], shapes: ['stream'] });
    expect(skipReason(cnn!, { available: true, framework: 'x', devices: ['cpu'] })).toEqual({
      reason: 'the cnn family has no sequence length to vary (a shape stream varies the length of token sequences)',
      fix: '--workloads rnn,transformer with --shapes stream',
    });
    const [train] = planCells({ ...config, workloads: ['transformer'], shapes: ['stream'], tasks: ['training'] });
    expect(skipReason(train!, { available: true, framework: 'x', devices: ['cpu'] })?.reason).toMatch(/shape stream times inference/);
  });
});

describe('stream figures and parity', () => {
  const s = shapeStream(transformer, tiny, 0, 1);
  it('splits the cold pass into compiling and running, and divides by the same batches at one fixed shape', () => {
    const n = s.lengths.length;
    // Every batch takes 1 ms warm; the first sight of each exact shape took 10 ms more in the cold pass.
    const padded = s.lengths.map((r) => paddedLength('exact', r, s));
    const first = new Set<number>();
    const cold = padded.map((l) => (first.has(l) ? 1 : (first.add(l), 11)));
    const run: StreamRun = {
      compileSegmentMs: 5,
      coldPassMs: cold,
      passesMs: [Array(n).fill(1), Array(n).fill(1), Array(n).fill(1.2)],
      compiles: { afterCold: first.size, afterWarm: first.size },
      fixedMs: Array(30).fill(2),
    };
    const f = streamFigures(s, 'exact', [run], { useful: 10, padded: 12 });
    expect(f.distinctShapes).toBe(first.size);
    expect(f.coldMs).toBeCloseTo(5 + n + 10 * first.size, 9);
    expect(f.compileMs).toBeCloseTo(5 + 10 * first.size, 9);
    expect(f.runMs).toBeCloseTo(n, 9);
    expect(f.firstSightMs).toBe(11);
    expect(f.repeatMs).toBe(1);
    expect(f.fixed.medianMs).toBe(2);
    expect(f.dynamicPenalty).toBeCloseTo(f.coldMs / (n * 2), 12);
    expect(f.warmPenalty).toBeCloseTo(n / (n * 2), 12);
    expect(f.realTokens).toBe(s.lengths.flat().reduce((a, b) => a + b, 0));
  });
  it('passes a stream whose rows match the unpadded reference, and names the batch of the first that does not', () => {
    const rows = s.lengths.flat().map((_, j) => [Math.sin(j) + 2, Math.cos(j) - 2]);
    const outputs = rows.map((r) => [...r]);
    expect(compareStream(rows, outputs, s, 'exact').pass).toBe(true);
    outputs[5]![0]! += 0.01;
    const bad = compareStream(rows, outputs, s, 'exact');
    expect(bad.pass).toBe(false);
    expect(bad.worstBatch).toBe(5);
    expect(compareStream(rows, outputs.slice(1), s, 'exact').pass).toBe(false);
  });
  it("records a stream cell's samples as its warm passes' totals and keeps the fixed loop beside them", () => {
    const samples = {
      type: 'samples' as const,
      warmupNs: [1],
      samplesNs: [5, 6],
      stopReason: 'max-time' as const,
      warmupStopReason: 'stable' as const,
      interval: { medianNs: 5, loNs: 5, hiNs: 6, halfWidthPct: 10 },
      clockResolutionNs: 1,
    };
    const o: WorkerOutcome = {
      done: true,
      exitCode: 0,
      signal: null,
      timedOut: false,
      logTail: [],
      parity: { type: 'stream-parity', passNs: [1, 2], outputs: [[0], [0]], compiles: null },
      passes: {
        type: 'passes',
        passesNs: [
          [1, 2],
          [3, 4],
          [2, 2],
        ],
        compiles: null,
      },
      samples,
    };
    const v = passesOutcome(o, 0.01, STREAM.maxPasses);
    expect(v.samples!.samplesNs).toEqual([3, 7, 4]);
    expect(v.samples!.interval.medianNs).toBe(4);
    expect(v.fixedSamples).toBe(samples);
  });
});

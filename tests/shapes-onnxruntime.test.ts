import { describe, expect, it } from 'vitest';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import type { BuiltModel, EngineRuntime } from '../harness/engines/types.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { DEFAULT_MEASURE, measurePasses } from '../harness/worker/measure.js';
import { PROTOCOL_VERSION, type FromWorker, type MeasureSettings, type ToWorker } from '../harness/worker/protocol.js';
import { getFamily, int, resolveParams, STREAM, type FamilyName, type Padding } from '../workloads/index.js';
import { materialize } from '../workloads/materialize.js';
import type { TensorMap } from '../workloads/safetensors.js';
import { materializeStream } from '../workloads/shapes.js';
import { converseWithWorker, relL2, tempDir, workloadInstance, type WorkloadInstance } from './helpers.js';

/**
 * ONNX Runtime's stream graphs (BuildRequest.stream): a padded batch with each row's length gives
 * every row the logits it has when run alone, unpadded, at its own length (transformer: the -1e9
 * key bias computed in the graph from `lengths`; rnn: ONNX LSTM's own sequence_lens), at the
 * reference's level (`disabled`) and the most optimized one (`all`); one session serves every shape.
 */

const SEED = 11;
/** Two layers, so the rnn's lower LSTM hands its masked Y to the next one and the transformer stacks masked attention. */
const SETS: Array<[string, string]> = [['layers', '2']];
const MODES = ['all', 'disabled'] as const;
const FAMILIES: FamilyName[] = ['transformer', 'rnn'];

/** A batch padded on the right to `length` (pad token 7, any id: the mask must hide it) with the given rows' lengths. */
function batchOf(rows: number[][], length: number, lengths: number[] = rows.map((r) => r.length)): TensorMap {
  const tokens = new Int32Array(rows.length * length).fill(7);
  rows.forEach((r, i) => tokens.set(r, i * length));
  return new Map([
    ['tokens', { dtype: 'I32', shape: [rows.length, length], data: tokens }],
    ['lengths', { dtype: 'I32', shape: [rows.length], data: Int32Array.from(lengths) }],
  ]);
}

/** Row r of the instance's canonical token batch, cut to `len` tokens. */
const rowTokens = (x: WorkloadInstance, r: number, len: number): number[] => {
  const t = x.inputs.get('tokens')!;
  const seq = t.shape[1]!;
  return Array.from(t.data.subarray(r * seq, r * seq + len));
};

let runtime: EngineRuntime | undefined;
async function build(x: WorkloadInstance, mode: string, stream: boolean, batch: number): Promise<BuiltModel> {
  runtime ??= await onnxruntime.load();
  return runtime.build({
    family: x.family,
    params: x.params,
    batchSize: batch,
    weights: x.weights,
    device: 'cpu',
    mode,
    threads: 1,
    ...(stream ? { stream } : {}),
  });
}

describe.each(FAMILIES)('onnxruntime stream graph: %s', (family) => {
  const x = workloadInstance(family, SETS, { seed: SEED, batch: 4 });
  const seq = x.params.seq as number;
  const C = x.classes;

  it.each(MODES)('mode %s: each padded row equals the row run alone at its own length; lengths = L differs; one session', async (mode) => {
    const model = await build(x, mode, true, 4);
    try {
      // Two padded lengths: the preset's (max padding) and a shorter one (exact / bucket padding slices positions).
      for (const [L, lens] of [
        [seq, [seq, 3, 5, 1]],
        [6, [2, 6, 4, 5]],
      ] as Array<[number, number[]]>) {
        const rows = lens.map((len, r) => rowTokens(x, r, len));
        const padded = await model.run(batchOf(rows, L));
        const unmasked = await model.run(
          batchOf(
            rows,
            L,
            lens.map(() => L),
          ),
        );
        const figures: string[] = [];
        for (let r = 0; r < rows.length; r++) {
          const alone = await model.run(batchOf([rows[r]!], lens[r]!));
          const e = relL2(padded.subarray(r * C, (r + 1) * C), alone);
          figures.push(`len ${lens[r]}: ${e.toExponential(2)}`);
          expect(e, `${family} ${mode} L=${L} row ${r} (length ${lens[r]})`).toBeLessThan(FP32_REL_L2_TOLERANCE);
          // Mask off: padding counts as real tokens, so a shorter row's logits move.
          if (lens[r]! < L) expect(relL2(unmasked.subarray(r * C, (r + 1) * C), alone), `${family} ${mode} row ${r} unmasked`).toBeGreaterThan(1e-3);
        }
        console.log(`${family} ${mode} padded to ${L}: relL2 vs alone ${figures.join(', ')}`);
      }
      expect(model.compileCount?.()).toBe(1);
    } finally {
      await model.dispose();
    }
  });

  it("at full length with every row real, the stream graph gives the fixed graph's logits", async () => {
    const fixed = await build(x, 'disabled', false, 4);
    const stream = await build(x, 'all', true, 4);
    try {
      const want = await fixed.run(x.inputs);
      const got = await stream.run(new Map([...x.inputs, ['lengths', { dtype: 'I32', shape: [4], data: new Int32Array(4).fill(seq) }]]));
      const e = relL2(got, want);
      console.log(`${family} stream (all) vs fixed (disabled) at full length: relL2 ${e.toExponential(2)}`);
      expect(e).toBeLessThan(FP32_REL_L2_TOLERANCE);
    } finally {
      await fixed.dispose();
      await stream.dispose();
    }
  });
});

describe('onnxruntime stream graph inputs', () => {
  it('a fixed-shape model takes no lengths, a stream model takes them; a cnn has no stream graph', async () => {
    const r = workloadInstance('rnn', [], { seed: SEED, batch: 2 });
    const s = await build(r, 'all', true, 2);
    try {
      const native = s.native!;
      if (native.kind !== 'onnxruntime') throw new Error('expected an onnxruntime model');
      expect((native.session as { inputNames: string[] }).inputNames).toEqual(['tokens', 'lengths']);
    } finally {
      await s.dispose();
    }
    const x = workloadInstance('rnn', [], { seed: SEED, batch: 2 });
    const model = await build(x, 'all', false, 2);
    try {
      const native = model.native!;
      if (native.kind !== 'onnxruntime') throw new Error('expected an onnxruntime model');
      expect((native.session as { inputNames: string[] }).inputNames).toEqual(['tokens']);
    } finally {
      await model.dispose();
    }
    const c = workloadInstance('cnn', [], { seed: SEED, batch: 1 });
    await expect(build(c, 'all', true, 1)).rejects.toThrow(/the cnn family has no sequence length to vary/);
  });
});

/** Short measure settings: the point is the order of the messages, not the figures. */
const MEASURE: MeasureSettings = { ...DEFAULT_MEASURE, warmupMinMs: 0, warmupMaxMs: 50, minSamples: 3, minTimeMs: 10, maxTimeMs: 100 };
const PASSES = { minPasses: 2, maxPasses: 4 };

describe.each(FAMILIES)('Node worker: a stream job (real worker, onnxruntime, %s/tiny)', (name) => {
  const dir = tempDir('fwbench-stream-');
  const family = getFamily(name);
  const params = resolveParams(family, 'tiny', [['layers', '2']]);
  const batch = 3;
  const files = materialize(family, params, SEED, batch, dir);
  const jobOf = (padding: Padding | 'rows', mode: string, rowsPerBatch: number): ToWorker => {
    const s = materializeStream(family, params, SEED, batch, padding, dir);
    return {
      type: 'job',
      protocol: PROTOCOL_VERSION,
      cell: {
        engine: 'onnxruntime',
        mode,
        device: 'cpu',
        family: name,
        params,
        batchSize: rowsPerBatch,
        threads: 1,
        shapes: 'stream',
        ...(padding === 'rows' ? {} : { padding }),
      },
      weightsPath: files.weightsPath,
      inputsPath: files.inputsPath,
      measure: MEASURE,
      stream: { path: s.path, batches: s.batches, ...PASSES },
    };
  };
  const kinds = (msgs: FromWorker[]): string[] => msgs.filter((m) => m.type !== 'phase').map((m) => m.type);
  const phases = (msgs: FromWorker[]): string[] => msgs.flatMap((m) => (m.type === 'phase' ? [m.phase] : []));

  it('continue: stream-parity (one output per batch), passes, samples, memory, done; the outputs match the reference rows', async () => {
    const msgs = await converseWithWorker(jobOf('bucket', 'all', batch), 'continue');
    console.log(`${name} stream job (continue): ${kinds(msgs).join(' -> ')}; phases ${phases(msgs).join(' -> ')}`);
    expect(kinds(msgs)).toEqual(['hello', 'built', 'stream-parity', 'passes', 'samples', 'memory', 'done']);
    expect(phases(msgs)).toEqual(['load', 'build', 'parity', 'measure', 'warmup', 'measure', 'memory']);
    const parity = msgs.find((m) => m.type === 'stream-parity')!;
    if (parity.type !== 'stream-parity') throw new Error('unreachable');
    expect(parity.passNs).toHaveLength(STREAM.batches);
    expect(parity.outputs).toHaveLength(STREAM.batches);
    for (const o of parity.outputs) expect(o).toHaveLength(batch * int(params, 'classes'));
    expect(parity.passNs.every((ns) => Number.isInteger(ns) && ns > 0)).toBe(true);
    expect(parity.compiles).toBe(1);
    const warm = msgs.find((m) => m.type === 'passes')!;
    if (warm.type !== 'passes') throw new Error('unreachable');
    expect(warm.passesNs.length).toBeGreaterThanOrEqual(PASSES.minPasses);
    expect(warm.passesNs.length).toBeLessThanOrEqual(PASSES.maxPasses);
    for (const p of warm.passesNs) expect(p).toHaveLength(STREAM.batches);
    expect(warm.compiles).toBe(1);
    expect(warm.load!.wallMs).toBeGreaterThan(0);
    const samples = msgs.find((m) => m.type === 'samples')!;
    if (samples.type !== 'samples') throw new Error('unreachable');
    expect(samples.samplesNs.length).toBeGreaterThanOrEqual(MEASURE.minSamples);

    // The reference's job (padding `rows`: every row alone, unpadded, mode disabled) is asked for its cold pass only.
    const ref = await converseWithWorker(jobOf('rows', 'disabled', 1), 'stop');
    console.log(`${name} reference job (stop): ${kinds(ref).join(' -> ')}; phases ${phases(ref).join(' -> ')}`);
    expect(kinds(ref)).toEqual(['hello', 'built', 'stream-parity', 'memory', 'done']);
    expect(phases(ref)).toEqual(['load', 'build', 'parity', 'memory']);
    const rows = ref.find((m) => m.type === 'stream-parity')!;
    if (rows.type !== 'stream-parity') throw new Error('unreachable');
    expect(rows.outputs).toHaveLength(STREAM.batches * batch);
    let worst = 0;
    for (let i = 0; i < STREAM.batches; i++) {
      worst = Math.max(worst, relL2(parity.outputs[i]!, rows.outputs.slice(i * batch, (i + 1) * batch).flat()));
    }
    console.log(`${name} stream (all, bucket) vs reference rows (disabled): worst batch relL2 ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(FP32_REL_L2_TOLERANCE);
  });

  it("continue on a file without fixed.* (the reference's): a one-line error in phase measure, before any warm pass", async () => {
    const msgs = await converseWithWorker(jobOf('rows', 'disabled', 1), 'continue', true);
    expect(kinds(msgs)).toEqual(['hello', 'built', 'stream-parity', 'error']);
    const err = msgs.at(-1)!;
    if (err.type !== 'error') throw new Error('unreachable');
    expect(err.phase).toBe('measure');
    expect(err.message).toMatch(/: expected an I32 tensor 'fixed\.tokens'$/);
  });
});

describe('measurePasses: when the warm passes stop', () => {
  /** A clock that advances `stepMs` per batch run. */
  const fake = (stepMs: number): { clock: () => bigint; run: () => Promise<void> } => {
    let now = 0n;
    return { clock: () => now, run: async () => void (now += BigInt(Math.round(stepMs * 1e6))) };
  };
  const s = { minPasses: 3, maxPasses: 20, minTimeMs: 100, maxTimeMs: 1000 };
  it.each([
    // 4 batches of 3 ms: 3 passes are 36 ms, so the minimum time (100 ms) decides: 9 passes (108 ms).
    [3, 9],
    // 4 batches of 10 ms: 3 passes (120 ms) meet both minimums.
    [10, 3],
    // 4 batches of 0.01 ms: the pass cap stops it first.
    [0.01, 20],
    // 4 batches of 400 ms: one pass (1.6 s) is past the maximum time, and one pass is always made.
    [400, 1],
  ])('batches of %s ms -> %s passes', async (stepMs, passes) => {
    const f = fake(stepMs);
    const load = { wallMs: 1, ownCpuMs: 2, involuntarySwitches: 3 };
    let watching = 0;
    const r = await measurePasses(f.run, 4, s, f.clock, () => {
      watching++;
      return () => load;
    });
    expect(r.passesNs).toHaveLength(passes);
    expect(r.passesNs.every((p) => p.length === 4 && p.every((ns) => ns === Math.round(stepMs * 1e6)))).toBe(true);
    // The load is watched once, over all the passes.
    expect(watching).toBe(1);
    expect(r.load).toEqual(load);
  });
});

import { describe, expect, it } from 'vitest';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import type { BuiltModel, EngineRuntime } from '../harness/engines/types.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import type { FamilyName } from '../workloads/index.js';
import type { TensorMap } from '../workloads/safetensors.js';
import { workloadInstance, type WorkloadInstance } from './helpers.js';

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

function relL2(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

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

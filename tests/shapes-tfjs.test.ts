import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { tfjsCpu, tfjsNode, tfjsWasm } from '../harness/engines/tfjs/index.js';
import type { BuiltModel, NodeEngineDescriptor } from '../harness/engines/types.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { int, type FamilyName } from '../workloads/index.js';
import type { TensorMap } from '../workloads/safetensors.js';
import { installed, workloadInstance } from './helpers.js';

/**
 * TF.js models on shape streams (BuildRequest.stream), on every CPU backend: a padded batch with
 * its rows' lengths gives each row's logits as that row run alone, unpadded; the same batch with
 * the mask off (every length = L) does not; at the full length the stream model agrees with the
 * fixed-shape model; and a stream of batches leaves no tensors behind.
 */

const SETS: Array<[string, string]> = [['layers', '2']];
const engines = [tfjsCpu, tfjsWasm, ...(installed('@tensorflow/tfjs-node') ? [tfjsNode] : [])];
const built: BuiltModel[] = [];
afterAll(async () => {
  for (const m of built) await m.dispose();
});

async function build(
  engine: NodeEngineDescriptor,
  family: FamilyName,
  stream: boolean,
): Promise<{ model: BuiltModel; L: number; vocab: number; classes: number; fixed: TensorMap }> {
  const inst = workloadInstance(family, SETS, { seed: 0, batch: 3 });
  const model = await (
    await engine.load()
  ).build({ family, params: inst.params, batchSize: 3, weights: inst.weights, device: 'cpu', mode: 'eager', threads: 1, stream });
  built.push(model);
  return { model, L: int(inst.params, 'seq'), vocab: int(inst.params, 'vocab'), classes: int(inst.params, 'classes'), fixed: inst.inputs };
}

/** A batch of rows padded on the right to `L` with token 0. */
function padded(rows: number[][], L: number, lengths = rows.map((r) => r.length)): TensorMap {
  const tokens = new Int32Array(rows.length * L);
  rows.forEach((r, i) => tokens.set(r, i * L));
  return new Map([
    ['tokens', { dtype: 'I32', shape: [rows.length, L], data: tokens }],
    ['lengths', { dtype: 'I32', shape: [rows.length], data: Int32Array.from(lengths) }],
  ]);
}

const relL2 = (out: ArrayLike<number>, ref: ArrayLike<number>): number => compareOutputs(ref, [ref.length], out, [out.length]).relL2;

for (const engine of engines) {
  describe(`${engine.id} on shape streams`, () => {
    for (const family of ['transformer', 'rnn'] as const) {
      it(`${family}: padded rows with lengths = each row alone; mask off differs; full length = the fixed model`, async () => {
        const { model, L, vocab, classes } = await build(engine, family, true);
        const rows = [3, L, 1].map((len, r) => Array.from({ length: len }, (_, i) => (7 * i + 13 * r + 1) % vocab));
        const out = await model.run(padded(rows, L));
        const alone = (await Promise.all(rows.map((r) => model.run(padded([r], r.length))))).flatMap((x) => Array.from(x));
        expect(out).toHaveLength(3 * classes);
        const err = relL2(out, alone);
        expect(err, `${engine.id} ${family}`).toBeLessThan(FP32_REL_L2_TOLERANCE);
        console.log(`${engine.id} ${family}: padded vs alone relL2 ${err.toExponential(1)}`);
        // The mask matters: the padding read as real tokens changes the short rows.
        expect(relL2(await model.run(padded(rows, L, [L, L, L])), alone)).toBeGreaterThan(1e-3);
        // At the full length the stream model is the fixed one.
        const fixed = await build(engine, family, false);
        const full = padded([rows[1]!, rows[1]!, rows[1]!], L);
        expect(relL2(await model.run(full), await fixed.model.run(new Map([['tokens', full.get('tokens')!]])))).toBeLessThan(FP32_REL_L2_TOLERANCE);
      });
    }

    it('runs a stream of different lengths without leaking tensors', async () => {
      const { model, L } = await build(engine, 'transformer', true);
      await model.run(padded([[1, 2]], 2));
      const before = tf.memory().numTensors;
      for (let len = 1; len <= L; len++) await model.run(padded([Array(len).fill(5), [1]], len));
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

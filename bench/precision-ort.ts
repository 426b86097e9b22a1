import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import type { BuiltModel, EngineRuntime } from '../harness/engines/types.js';
import { compareOutputs } from '../harness/stats/parity.js';
import { medianCi } from '../harness/worker/measure.js';
import { getFamily, int, resolveParams, type FamilyName } from '../workloads/index.js';
import { generateInput, generateWeight } from '../workloads/materialize.js';
import type { TensorMap } from '../workloads/safetensors.js';

/**
 * ONNX Runtime int8 (dynamic quantization, harness/engines/onnx/precision.ts) against fp32 on this
 * machine, through the engine itself (BuiltModel.run, mode `all`):
 *
 * - accuracy: relative L2 of the int8 logits against the fp32 session's, and the fraction of rows
 *   whose argmax agrees, on one batch (--accuracy family:preset:batch,...);
 * - speed: fp32 and int8 models of a case built side by side in one process, --blocks blocks of
 *   --block-ms each, alternating (order flipped every block) so a drift of the machine hits both;
 *   each side's figure is the median of all its forward times with its 95 % interval
 *   (--timing family:preset:batch,...).
 *
 * Usage: npm run build && node dist/bench/precision-ort.js [--threads 2] [--blocks 10] [--block-ms 1000]
 *        [--accuracy transformer:tiny:8,...] [--timing transformer:bert-mini:1,...] (an empty list skips that part)
 */

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    blocks: { type: 'string', default: '10' },
    'block-ms': { type: 'string', default: '1000' },
    seed: { type: 'string', default: '7' },
    accuracy: { type: 'string', default: 'transformer:tiny:8,transformer:bert-mini:8,cnn:resnet18:8,rnn:small:8' },
    timing: { type: 'string', default: 'transformer:bert-mini:1,transformer:bert-mini:8,cnn:resnet18:1' },
  },
});

interface Case {
  family: FamilyName;
  preset: string;
  batch: number;
}
const cases = (list: string): Case[] =>
  list
    .split(',')
    .filter(Boolean)
    .map((c) => {
      const [family, preset, batch] = c.split(':');
      return { family: family as FamilyName, preset: preset!, batch: Number(batch) };
    });

const threads = Number(args.threads);
const seed = Number(args.seed);

function instance(c: Case): { weights: TensorMap; inputs: TensorMap; params: ReturnType<typeof resolveParams>; classes: number } {
  const f = getFamily(c.family);
  const params = resolveParams(f, c.preset, []);
  const weights: TensorMap = new Map(f.weights(params).map((s) => [s.name, { dtype: 'F32', shape: s.shape, data: generateWeight(s, seed) }]));
  const inputs: TensorMap = new Map(f.inputs(params, c.batch).map((s) => [s.name, { dtype: s.dtype, shape: s.shape, data: generateInput(s, seed) }]));
  return { weights, inputs, params, classes: int(params, 'classes') };
}

function argmaxAgreement(out: Float32Array, ref: Float32Array, classes: number): number {
  const argmax = (a: Float32Array, r: number): number => {
    let best = 0;
    for (let k = 1; k < classes; k++) if (a[r * classes + k]! > a[r * classes + best]!) best = k;
    return best;
  };
  const rows = ref.length / classes;
  let same = 0;
  for (let r = 0; r < rows; r++) if (argmax(out, r) === argmax(ref, r)) same++;
  return same / rows;
}

async function build(runtime: EngineRuntime, c: Case, x: ReturnType<typeof instance>, precision: 'fp32' | 'int8'): Promise<BuiltModel> {
  return runtime.build({
    family: c.family,
    params: x.params,
    batchSize: c.batch,
    weights: x.weights,
    device: 'cpu',
    mode: 'all',
    threads,
    ...(precision === 'int8' ? { precision } : {}),
  });
}

const label = (c: Case): string => `${c.family} ${c.preset} batch ${c.batch}`;

async function main(): Promise<void> {
  const runtime = await onnxruntime.load();
  console.log(`# onnxruntime int8 vs fp32 — ${cpus()[0]?.model} (${cpus().length} CPUs), threads ${threads}, mode all, load ${loadavg()[0]!.toFixed(2)}`);

  const accuracy = cases(args.accuracy);
  if (accuracy.length) {
    console.log('\n| case | relL2 int8 vs fp32 | argmax agreement | int8 evidence |\n|---|---|---|---|');
    for (const c of accuracy) {
      const x = instance(c);
      const [fp32, int8] = [await build(runtime, c, x, 'fp32'), await build(runtime, c, x, 'int8')];
      const ref = await fp32.run(x.inputs);
      const out = await int8.run(x.inputs);
      const { relL2 } = compareOutputs(ref, [ref.length], out, [out.length]);
      console.log(`| ${label(c)} | ${relL2.toExponential(2)} | ${argmaxAgreement(out, ref, x.classes)} | ${int8.precisionUsed?.().evidence} |`);
      await fp32.dispose();
      await int8.dispose();
    }
  }

  const timing = cases(args.timing);
  if (timing.length) {
    const blocks = Number(args.blocks);
    const blockMs = Number(args['block-ms']);
    console.log(
      `\n${blocks} alternating blocks of ${blockMs} ms per side\n\n| case | fp32 median ms [95 % CI] | int8 median ms [95 % CI] | int8 speed-up | samples fp32 / int8 |\n|---|---|---|---|---|`,
    );
    for (const c of timing) {
      const x = instance(c);
      const models = { fp32: await build(runtime, c, x, 'fp32'), int8: await build(runtime, c, x, 'int8') };
      /** Forward times, ns. */
      const times: Record<'fp32' | 'int8', number[]> = { fp32: [], int8: [] };
      // Warm both before the first timed block.
      for (const m of Object.values(models)) for (let i = 0; i < 3; i++) await m.run(x.inputs);
      for (let b = 0; b < blocks; b++) {
        for (const side of (b % 2 === 0 ? ['fp32', 'int8'] : ['int8', 'fp32']) as Array<'fp32' | 'int8'>) {
          const end = performance.now() + blockMs;
          do {
            const t = process.hrtime.bigint();
            await models[side].run(x.inputs);
            times[side].push(Number(process.hrtime.bigint() - t));
          } while (performance.now() < end);
        }
      }
      const f = medianCi(times.fp32);
      const q = medianCi(times.int8);
      const ms = (ns: number): string => (ns / 1e6).toFixed(3);
      const fmt = (m: ReturnType<typeof medianCi>): string => `${ms(m.medianNs)} [${ms(m.loNs)}, ${ms(m.hiNs)}]`;
      console.log(`| ${label(c)} | ${fmt(f)} | ${fmt(q)} | ${(f.medianNs / q.medianNs).toFixed(2)}x | ${times.fp32.length} / ${times.int8.length} |`);
      await models.fp32.dispose();
      await models.int8.dispose();
    }
  }
}

await main();

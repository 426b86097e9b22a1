import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCnn } from '../harness/engines/tfjs/cnn.js';
import { compareOutputs } from '../harness/stats/parity.js';
import { tfjsCpu, tfjsNode, tfjsNodeGpu, tfjsWasm } from '../harness/engines/tfjs/index.js';
import type { TfjsModel } from '../harness/engines/tfjs/model.js';
import { KERAS_MAPPING, lstmToKeras, nchwToNhwc, oihwToHwio, transpose2d, type KerasMapping } from '../harness/engines/keras-layout.js';
import { buildRnn } from '../harness/engines/tfjs/rnn.js';
import { EngineUnavailable, type BuiltModel, type NodeEngineDescriptor } from '../harness/engines/types.js';
import { int, type FamilyName } from '../workloads/index.js';
import type { Tensor, TensorMap } from '../workloads/safetensors.js';
import { installed, swapBlocks, workloadInstance, type WorkloadInstance } from './helpers.js';

const BATCH = 2;
const SEED = 0;

type Instance = WorkloadInstance;

/** Canonical weights and inputs of a workload at preset `tiny` with overrides, in memory. */
const instance = (family: FamilyName, sets: Array<[string, string]> = []): Instance => workloadInstance(family, sets, { seed: SEED, batch: BATCH });

const built: BuiltModel[] = [];
afterAll(async () => {
  for (const m of built) await m.dispose();
});

async function build(engine: NodeEngineDescriptor, inst: Instance): Promise<BuiltModel> {
  const runtime = await engine.load();
  return runtime.build({ family: inst.family, params: inst.params, batchSize: BATCH, weights: inst.weights, device: 'cpu', mode: 'eager', threads: 2 });
}

/** Builds a model that is disposed after the file's tests. */
async function buildOn(engine: NodeEngineDescriptor, inst: Instance): Promise<BuiltModel> {
  const model = await build(engine, inst);
  built.push(model);
  return model;
}

/** Runs a builder's model directly (for planted mappings) on the cpu backend. */
async function runDirect(model: TfjsModel, inputs: TensorMap): Promise<Float32Array> {
  await tf.setBackend('cpu');
  const out = tf.tidy(() => model.predict(inputs));
  const data = (await out.data()) as Float32Array;
  out.dispose();
  model.dispose();
  return data;
}

/** The harness's own parity check (the one a run applies), on flat outputs. */
const verdict = (out: ArrayLike<number>, ref: ArrayLike<number>) => compareOutputs(ref, [ref.length], out, [out.length]);
const relL2 = (out: ArrayLike<number>, ref: ArrayLike<number>): number => verdict(out, ref).relL2;

function std(a: ArrayLike<number>): number {
  const mean = Array.from(a).reduce((s, v) => s + v, 0) / a.length;
  return Math.sqrt(Array.from(a).reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
}

const classes = (inst: Instance): number => int(inst.params, 'classes');

/** Builds and runs a workload on tfjs-cpu and tfjs-wasm and checks shape, range and agreement. */
async function checkCpuWasm(inst: Instance): Promise<void> {
  const cpu = await (await buildOn(tfjsCpu, inst)).run(inst.inputs);
  const wasm = await (await buildOn(tfjsWasm, inst)).run(inst.inputs);
  for (const out of [cpu, wasm]) {
    expect(out).toBeInstanceOf(Float32Array);
    expect(out.length).toBe(BATCH * classes(inst));
    expect(out.every(Number.isFinite)).toBe(true);
    expect(std(out)).toBeGreaterThan(0.05);
    expect(std(out)).toBeLessThan(20);
  }
  expect(relL2(wasm, cpu)).toBeLessThan(1e-5);
}

describe('keras layout helpers', () => {
  it('transposes 2-D and OIHW -> HWIO element by element', () => {
    const m: Tensor = { dtype: 'F32', shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) };
    expect(transpose2d(m)).toEqual({ dtype: 'F32', shape: [3, 2], data: Float32Array.from([0, 3, 1, 4, 2, 5]) });
    const [O, I, KH, KW] = [3, 2, 2, 3];
    const k: Tensor = { dtype: 'F32', shape: [O, I, KH, KW], data: Float32Array.from({ length: O * I * KH * KW }, (_, i) => i) };
    const h = oihwToHwio(k);
    expect(h.shape).toEqual([KH, KW, I, O]);
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++)
        for (let y = 0; y < KH; y++)
          for (let x = 0; x < KW; x++) {
            expect(h.data[((y * KW + x) * I + i) * O + o]).toBe(k.data[((o * I + i) * KH + y) * KW + x]);
          }
  });
  it('moves channels last and sums the two LSTM biases', () => {
    const img: Tensor = { dtype: 'F32', shape: [1, 2, 1, 2], data: Float32Array.from([1, 2, 3, 4]) };
    expect(Array.from(nchwToNhwc(img).data)).toEqual([1, 3, 2, 4]);
    const t = (shape: number[], v: number): Tensor => ({ dtype: 'F32', shape, data: new Float32Array(shape[0]! * (shape[1] ?? 1)).fill(v) });
    const [kernel, recurrent, bias] = lstmToKeras(t([8, 3], 1), t([8, 2], 2), t([8], 0.25), t([8], 0.5));
    expect(kernel!.shape).toEqual([3, 8]);
    expect(recurrent!.shape).toEqual([2, 8]);
    expect(Array.from(bias!.data)).toEqual(new Array(8).fill(0.75));
  });
  it('rejects weights of other parameters', () => {
    const inst = instance('rnn');
    expect(() => buildRnn(inst.weights, { ...inst.params, hidden: 12 })).toThrow(/lstm.0.weight_ih' has shape \[64,16\], expected \[48,16\]/);
  });
});

describe.each(['cnn', 'rnn', 'transformer'] as const)('%s on tfjs-cpu and tfjs-wasm', (name) => {
  it('tiny: runs, finite, right shape, sane spread, backends agree', async () => {
    await checkCpuWasm(instance(name));
  });
  it('does not leak tensors across runs, and dispose frees the weights', async () => {
    const inst = instance(name);
    for (const engine of [tfjsCpu, tfjsWasm]) {
      const start = tf.memory().numTensors;
      const model = await build(engine, inst);
      await model.run(inst.inputs);
      const steady = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        await model.run(inst.inputs);
        expect(tf.memory().numTensors).toBe(steady);
      }
      await model.dispose();
      expect(tf.memory().numTensors).toBe(start);
    }
  });
});

describe('odd sizes', () => {
  it('cnn with a 37-pixel image', async () => {
    await checkCpuWasm(instance('cnn', [['image', '37']]));
  });
  it('cnn with bottleneck blocks and a 40-pixel image', async () => {
    await checkCpuWasm(
      instance('cnn', [
        ['block', 'bottleneck'],
        ['depths', '1,2,1,1'],
        ['image', '40'],
      ]),
    );
  });
  it('rnn with seq 5, hidden 12, 2 layers', async () => {
    await checkCpuWasm(
      instance('rnn', [
        ['seq', '5'],
        ['hidden', '12'],
        ['layers', '2'],
      ]),
    );
  });
  it('transformer with seq 7, hidden 24, 3 heads', async () => {
    await checkCpuWasm(
      instance('transformer', [
        ['seq', '7'],
        ['hidden', '24'],
        ['heads', '3'],
      ]),
    );
  });
});

describe('settings and probes', () => {
  it('records backend, version and effective threads', async () => {
    const inst = instance('rnn');
    const cpu = await buildOn(tfjsCpu, inst);
    expect(cpu.settings).toMatchObject({ backend: 'cpu', tfjsVersion: '4.22.0', threads: 1, requestedThreads: 2 });
    const wasm = await buildOn(tfjsWasm, inst);
    // Node has no wasm threads: the effective count is what the backend reports, not what was asked.
    expect(wasm.settings).toMatchObject({ backend: 'wasm', tfjsVersion: '4.22.0', threads: 1, requestedThreads: 2 });
    const probe = await (await tfjsWasm.load()).probe();
    expect(probe).toMatchObject({ version: '4.22.0', devices: ['cpu'], details: { backend: 'wasm', threads: '1' } });
  });

  it.skipIf(installed('@tensorflow/tfjs-node'))('tfjs-node reports why it is unavailable and how to fix it', async () => {
    const err = await (await tfjsNode.load()).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailable);
    expect((err as EngineUnavailable).message).toBe(
      '@tensorflow/tfjs-node is not installed: its install script downloads libtensorflow from storage.googleapis.com, which failed, so npm dropped this optional dependency',
    );
    expect((err as EngineUnavailable).fix).toBe(
      'npm install @tensorflow/tfjs-node@4.22.0 on a machine that can reach storage.googleapis.com (or set TFJS_NODE_CDN_STORAGE to a mirror)',
    );
  });
  it.skipIf(installed('@tensorflow/tfjs-node-gpu'))('tfjs-node-gpu names its CUDA needs', async () => {
    const err = await (await tfjsNodeGpu.load()).probe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailable);
    expect((err as EngineUnavailable).message).toMatch(/^@tensorflow\/tfjs-node-gpu is not installed/);
    expect((err as EngineUnavailable).fix).toMatch(/CUDA 11\.2 \+ cuDNN 8\.1 and an NVIDIA GPU/);
  });
});

/** Float64 LSTM classifier straight from the canonical weights: gates (i, f, g, o), last step. */
function lstmReference(inst: Instance): Float64Array {
  const w = (name: string): Float32Array => inst.weights.get(name)!.data as Float32Array;
  const [E, H, L, S, C] = ['embed', 'hidden', 'layers', 'seq', 'classes'].map((k) => int(inst.params, k)) as [number, number, number, number, number];
  const tokens = inst.inputs.get('tokens')!.data;
  const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
  const out = new Float64Array(BATCH * C);
  for (let b = 0; b < BATCH; b++) {
    let seq: Float64Array[] = [];
    for (let t = 0; t < S; t++) seq.push(Float64Array.from(w('embedding.weight').subarray(tokens[b * S + t]! * E, (tokens[b * S + t]! + 1) * E)));
    for (let l = 0; l < L; l++) {
      const [wih, whh, bih, bhh] = ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'].map((k) => w(`lstm.${l}.${k}`)) as [
        Float32Array,
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      const inSize = seq[0]!.length;
      let h = new Float64Array(H);
      const c = new Float64Array(H);
      const next: Float64Array[] = [];
      for (const x of seq) {
        const z = new Float64Array(4 * H);
        for (let r = 0; r < 4 * H; r++) {
          let s = bih[r]! + bhh[r]!;
          for (let k = 0; k < inSize; k++) s += wih[r * inSize + k]! * x[k]!;
          for (let k = 0; k < H; k++) s += whh[r * H + k]! * h[k]!;
          z[r] = s;
        }
        h = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const [i, f, g, o] = [sigmoid(z[j]!), sigmoid(z[H + j]!), Math.tanh(z[2 * H + j]!), sigmoid(z[3 * H + j]!)];
          c[j] = f * c[j]! + i * g;
          h[j] = o * Math.tanh(c[j]!);
        }
        next.push(h);
      }
      seq = next;
    }
    const last = seq[S - 1]!;
    for (let k = 0; k < C; k++) {
      let s = w('fc.bias')[k]!;
      for (let j = 0; j < H; j++) s += w('fc.weight')[k * H + j]! * last[j]!;
      out[b * C + k] = s;
    }
  }
  return out;
}

describe('mapping correctness', () => {
  it('rnn on tfjs-cpu equals a float64 reference; swapping the f and o gate blocks does not', async () => {
    for (const inst of [
      instance('rnn'),
      instance('rnn', [
        ['seq', '5'],
        ['hidden', '12'],
        ['layers', '2'],
      ]),
    ]) {
      const reference = lstmReference(inst);
      const cpu = await (await buildOn(tfjsCpu, inst)).run(inst.inputs);
      expect(relL2(cpu, reference)).toBeLessThan(1e-5);
      const H = int(inst.params, 'hidden');
      const swapped: KerasMapping = { ...KERAS_MAPPING, lstm: (...args) => KERAS_MAPPING.lstm(...args).map((t) => swapBlocks(t, H, 1, 3)) };
      const wrong = await runDirect(buildRnn(inst.weights, inst.params, swapped), inst.inputs);
      expect(relL2(wrong, reference)).toBeGreaterThan(1e-2);
      expect(verdict(wrong, reference).pass).toBe(false);
    }
  });
  it('a conv kernel reshaped OIHW -> HWIO without transposing gives a large error', async () => {
    const inst = instance('cnn');
    const right = await runDirect(buildCnn(inst.weights, inst.params), inst.inputs);
    const reshaped: KerasMapping = { ...KERAS_MAPPING, conv: (k) => [{ ...k, shape: [k.shape[2]!, k.shape[3]!, k.shape[1]!, k.shape[0]!] }] };
    const wrong = await runDirect(buildCnn(inst.weights, inst.params, reshaped), inst.inputs);
    expect(relL2(wrong, right)).toBeGreaterThan(0.1);
    expect(verdict(wrong, right).pass).toBe(false);
    expect(verdict(right, right).pass).toBe(true);
  });
});

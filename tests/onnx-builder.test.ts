/* eslint-disable @typescript-eslint/no-explicit-any -- the decoded ONNX protobuf messages checked here are untyped */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { relL2, workloadInstance, type WorkloadInstance } from './helpers.js';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, float, floats } from '../harness/engines/onnx/graph.js';
import { buildOnnxModel } from '../harness/engines/onnx/index.js';
import { DataType, decodeModel } from '../harness/engines/onnx/proto.js';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import { EngineUnavailable, type EngineRuntime } from '../harness/engines/types.js';
import { resnetLayout, type ConvLayer } from '../workloads/cnn.js';
import { int, type FamilyName } from '../workloads/index.js';
import { LAYER_NORM_EPS } from '../workloads/transformer.js';

const BATCH = 2;
const SEED = 7;

type Instance = WorkloadInstance;

/** Canonical weights and inputs of a workload at preset `tiny` with overrides, in memory. */
const instance = (family: FamilyName, sets: Array<[string, string]> = []): Instance => workloadInstance(family, sets, { seed: SEED, batch: BATCH });

let runtime: EngineRuntime | undefined;
async function ortRun(x: Instance, mode = 'disabled'): Promise<Float32Array> {
  runtime ??= await onnxruntime.load();
  const model = await runtime.build({ family: x.family, params: x.params, batchSize: BATCH, weights: x.weights, device: 'cpu', mode, threads: 1 });
  try {
    return await model.run(x.inputs);
  } finally {
    await model.dispose();
  }
}

describe('onnxruntime engine run', () => {
  it("returns logits the next run does not overwrite (onnxruntime-node's outputs are fresh buffers, so run copies nothing)", async () => {
    runtime ??= await onnxruntime.load();
    const x = instance('cnn');
    const model = await runtime.build({ family: x.family, params: x.params, batchSize: BATCH, weights: x.weights, device: 'cpu', mode: 'all', threads: 1 });
    try {
      const first = await model.run(x.inputs);
      const kept = Float32Array.from(first);
      const images = x.inputs.get('images')!;
      const negated = new Map([['images', { ...images, data: Float32Array.from(images.data, (v) => -v) }]]);
      const second = await model.run(negated as typeof x.inputs);
      expect(second.buffer).not.toBe(first.buffer);
      expect(Array.from(second)).not.toEqual(Array.from(kept));
      expect(Array.from(first)).toEqual(Array.from(kept));
    } finally {
      await model.dispose();
    }
  });
});

function std(a: ArrayLike<number>): number {
  const xs = Array.from(a);
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
}

// ---- float64 references, written from the canonical layouts in workloads/ ----

type Vec = Float64Array;
const w = (x: Instance, name: string): Float32Array => x.weights.get(name)!.data as Float32Array;
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** y = W x + b for canonical W [out, in]. */
function linear(W: Float32Array, b: Float32Array, x: Vec): Vec {
  const out = new Float64Array(b.length);
  const n = x.length;
  for (let o = 0; o < out.length; o++) {
    let s = b[o]!;
    for (let i = 0; i < n; i++) s += W[o * n + i]! * x[i]!;
    out[o] = s;
  }
  return out;
}

function lstmReference(x: Instance): Float64Array {
  const [S, H, E, L] = ['seq', 'hidden', 'embed', 'layers'].map((k) => int(x.params, k)) as [number, number, number, number];
  const tokens = x.inputs.get('tokens')!.data;
  const out: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    let seq: Vec[] = Array.from({ length: S }, (_, t) =>
      Float64Array.from(w(x, 'embedding.weight').subarray(tokens[b * S + t]! * E, tokens[b * S + t]! * E + E)),
    );
    for (let l = 0; l < L; l++) {
      const p = `lstm.${l}`;
      let h: Vec = new Float64Array(H);
      const c: Vec = new Float64Array(H);
      seq = seq.map((xt) => {
        const gi = linear(w(x, `${p}.weight_ih`), w(x, `${p}.bias_ih`), xt);
        const gh = linear(w(x, `${p}.weight_hh`), w(x, `${p}.bias_hh`), h);
        const next = new Float64Array(H);
        // Canonical gate blocks: input, forget, cell (g), output.
        for (let j = 0; j < H; j++) {
          const gate = (k: number): number => gi[k * H + j]! + gh[k * H + j]!;
          c[j] = sigmoid(gate(1)) * c[j]! + sigmoid(gate(0)) * Math.tanh(gate(2));
          next[j] = sigmoid(gate(3)) * Math.tanh(c[j]!);
        }
        h = next;
        return h;
      });
    }
    out.push(...linear(w(x, 'fc.weight'), w(x, 'fc.bias'), seq[S - 1]!));
  }
  return Float64Array.from(out);
}

/** erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, far below the test tolerance). */
function erf(v: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(v));
  const y = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-v * v);
  return v < 0 ? -y : y;
}

function transformerReference(x: Instance): Float64Array {
  const [S, H, heads, L] = ['seq', 'hidden', 'heads', 'layers'].map((k) => int(x.params, k)) as [number, number, number, number];
  const d = H / heads;
  const tokens = x.inputs.get('tokens')!.data;
  const lin = (name: string, rows: Vec[]): Vec[] => rows.map((r) => linear(w(x, `${name}.weight`), w(x, `${name}.bias`), r));
  const norm = (name: string, rows: Vec[]): Vec[] =>
    rows.map((r) => {
      const mean = r.reduce((s, v) => s + v, 0) / H;
      const variance = r.reduce((s, v) => s + (v - mean) ** 2, 0) / H;
      return r.map((v, i) => ((v - mean) / Math.sqrt(variance + LAYER_NORM_EPS)) * w(x, `${name}.weight`)[i]! + w(x, `${name}.bias`)[i]!);
    });
  const add = (a: Vec[], b: Vec[]): Vec[] => a.map((r, i) => r.map((v, j) => v + b[i]![j]!));
  const out: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    let xs: Vec[] = Array.from({ length: S }, (_, s) => {
      const tok = tokens[b * S + s]!;
      return Float64Array.from({ length: H }, (_, j) => w(x, 'embeddings.word')[tok * H + j]! + w(x, 'embeddings.position')[s * H + j]!);
    });
    xs = norm('embeddings.norm', xs);
    for (let l = 0; l < L; l++) {
      const a = `layers.${l}.attention`;
      const [q, k, v] = [lin(`${a}.query`, xs), lin(`${a}.key`, xs), lin(`${a}.value`, xs)];
      const ctx: Vec[] = Array.from({ length: S }, () => new Float64Array(H));
      for (let hd = 0; hd < heads; hd++) {
        for (let i = 0; i < S; i++) {
          const scores = Array.from({ length: S }, (_, j) => {
            let s = 0;
            for (let e = hd * d; e < hd * d + d; e++) s += q[i]![e]! * k[j]![e]!;
            return s / Math.sqrt(d);
          });
          const max = Math.max(...scores);
          const exps = scores.map((s) => Math.exp(s - max));
          const total = exps.reduce((s, e) => s + e, 0);
          for (let j = 0; j < S; j++) for (let e = hd * d; e < hd * d + d; e++) ctx[i]![e]! += (exps[j]! / total) * v[j]![e]!;
        }
      }
      xs = norm(`${a}.norm`, add(lin(`${a}.output`, ctx), xs));
      const f = `layers.${l}.ffn`;
      const inner = lin(`${f}.intermediate`, xs).map((r) => r.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))));
      xs = norm(`${f}.norm`, add(lin(`${f}.output`, inner), xs));
    }
    const pooled = linear(w(x, 'pooler.weight'), w(x, 'pooler.bias'), xs[0]!).map(Math.tanh);
    out.push(...linear(w(x, 'classifier.weight'), w(x, 'classifier.bias'), pooled));
  }
  return Float64Array.from(out);
}

/** Feature maps [C][H*W] of one sample. */
type Maps = { c: number; size: number; data: Float64Array };

function cnnReference(x: Instance): Float64Array {
  const l = resnetLayout(x.params);
  const convBn = (m: Maps, cv: ConvLayer, relu: boolean): Maps => {
    const K = w(x, cv.weight);
    const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => w(x, `${cv.bn}.${p}`)) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const n = cv.outSize;
    const out = new Float64Array(cv.cout * n * n);
    for (let o = 0; o < cv.cout; o++) {
      for (let oy = 0; oy < n; oy++) {
        for (let ox = 0; ox < n; ox++) {
          let s = 0;
          for (let ci = 0; ci < cv.cin; ci++) {
            for (let ky = 0; ky < cv.k; ky++) {
              const iy = oy * cv.stride - cv.pad + ky;
              if (iy < 0 || iy >= m.size) continue;
              for (let kx = 0; kx < cv.k; kx++) {
                const ix = ox * cv.stride - cv.pad + kx;
                if (ix < 0 || ix >= m.size) continue;
                s += K[((o * cv.cin + ci) * cv.k + ky) * cv.k + kx]! * m.data[(ci * m.size + iy) * m.size + ix]!;
              }
            }
          }
          const y = ((s - mean[o]!) / Math.sqrt(variance[o]! + 1e-5)) * gamma[o]! + beta[o]!;
          out[(o * n + oy) * n + ox] = relu ? Math.max(0, y) : y;
        }
      }
    }
    return { c: cv.cout, size: n, data: out };
  };
  const images = x.inputs.get('images')!.data;
  const perSample = l.channels * l.image * l.image;
  const out: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    let m = convBn({ c: l.channels, size: l.image, data: Float64Array.from(images.subarray(b * perSample, (b + 1) * perSample)) }, l.stem, true);
    const pooled = new Float64Array(m.c * l.poolOut * l.poolOut).fill(-Infinity);
    for (let c = 0; c < m.c; c++) {
      for (let oy = 0; oy < l.poolOut; oy++) {
        for (let ox = 0; ox < l.poolOut; ox++) {
          for (let iy = oy * 2 - 1; iy <= oy * 2 + 1; iy++) {
            for (let ix = ox * 2 - 1; ix <= ox * 2 + 1; ix++) {
              if (iy < 0 || ix < 0 || iy >= m.size || ix >= m.size) continue;
              const at = (c * l.poolOut + oy) * l.poolOut + ox;
              pooled[at] = Math.max(pooled[at]!, m.data[(c * m.size + iy) * m.size + ix]!);
            }
          }
        }
      }
    }
    m = { c: m.c, size: l.poolOut, data: pooled };
    for (const blk of l.blocks) {
      let y = m;
      blk.convs.forEach((cv, i) => (y = convBn(y, cv, i < blk.convs.length - 1)));
      const shortcut = blk.downsample ? convBn(m, blk.downsample, false) : m;
      m = { c: y.c, size: y.size, data: y.data.map((v, i) => Math.max(0, v + shortcut.data[i]!)) };
    }
    const area = m.size * m.size;
    const features = Float64Array.from({ length: m.c }, (_, c) => m.data.subarray(c * area, (c + 1) * area).reduce((s, v) => s + v, 0) / area);
    out.push(...linear(w(x, 'fc.weight'), w(x, 'fc.bias'), features));
  }
  return Float64Array.from(out);
}

// ---- tests ----

describe('ONNX protobuf encoding', () => {
  it('round-trips op types, attributes, initializer bytes and symbolic dims', () => {
    const g = new GraphBuilder('roundtrip');
    const x = g.input('x', 'float32', ['batch', 3]);
    const weights = { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1.5, -2, 0.25, 3, 1e-8, -7]) };
    const wName = g.initializer('fc.weight', weights);
    const y = g.node('Gemm', [x, wName], ['y'], { alpha: float(1), transB: 1 })[0]!;
    g.node('Custom', [y, g.int64Const([0, -1], [2])], 1, { perm: [0, 2, 1], scales: floats([0.5, 2]), mode: 'forward' });
    g.output('y', 'float32', ['batch', 2]);
    const m = decodeModel(g.toModel()) as any;

    expect(m.ir_version).toBe(8);
    expect(m.opset_import).toEqual([{ domain: '', version: 17 }]);
    expect(m.producer_name).toBe('fwbench');
    expect(m.graph.node.map((n: any) => n.op_type)).toEqual(['Gemm', 'Custom']);
    const [gemm, custom] = m.graph.node;
    expect(gemm.input).toEqual(['x', 'fc.weight']);
    expect(gemm.output).toEqual(['y']);
    // A float attribute holding a whole number stays FLOAT (type 1), an int stays INT (type 2).
    expect(gemm.attribute).toEqual([
      { name: 'alpha', type: 1, f: 1 },
      { name: 'transB', type: 2, i: 1 },
    ]);
    expect(custom.attribute[0]).toEqual({ name: 'perm', type: 7, ints: [0, 2, 1] });
    expect(custom.attribute[1]).toEqual({ name: 'scales', type: 6, floats: [0.5, 2] });
    expect(custom.attribute[2].type).toBe(3);
    expect(new TextDecoder().decode(custom.attribute[2].s)).toBe('forward');

    const [wInit, shapeInit] = m.graph.initializer;
    expect(wInit.name).toBe('fc.weight');
    expect(wInit.dims).toEqual([2, 3]);
    expect(wInit.data_type).toBe(DataType.FLOAT);
    expect(Array.from(new Float32Array(new Uint8Array(wInit.raw_data).buffer))).toEqual(Array.from(weights.data));
    expect(shapeInit.data_type).toBe(DataType.INT64);
    expect(Array.from(new BigInt64Array(new Uint8Array(shapeInit.raw_data).buffer))).toEqual([0n, -1n]);
    expect(m.graph.input[0].type.tensor_type.shape.dim).toEqual([{ dim_param: 'batch' }, { dim_value: 3 }]);
  });

  it('rejects wiring mistakes and untagged non-integer attributes with the name', () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float32', [1]);
    expect(() => g.op('Relu', ['nope'])).toThrow(/'nope'/);
    expect(() => g.op('LeakyRelu', [x], { alpha: 0.1 })).toThrow(/float\(\)/);
    expect(() => g.input('x', 'float32', [1])).toThrow(/defined twice/);
  });

  it('decodes every family with a symbolic batch input and a logits output', () => {
    for (const family of ['cnn', 'rnn', 'transformer'] as const) {
      const x = instance(family);
      const m = decodeModel(buildOnnxModel(family, x.params, x.weights)) as any;
      expect(m.graph.output[0].name).toBe('logits');
      expect(m.graph.input[0].type.tensor_type.shape.dim[0]).toEqual({ dim_param: 'batch' });
    }
  });
});

describe('onnxruntime engine', () => {
  it('probes the runtime version and devices', async () => {
    runtime ??= await onnxruntime.load();
    const p = await runtime.probe();
    const require = createRequire(import.meta.url);
    expect(p.version).toBe((require('onnxruntime-node/package.json') as { version: string }).version);
    expect(p.devices).toContain('cpu');
    expect(p.details.providers).toContain('cpu');
  });

  const cudaInstalled = existsSync(
    join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'),
  );
  it.skipIf(cudaInstalled)('refuses cuda without the CUDA provider, naming the fix', async () => {
    runtime ??= await onnxruntime.load();
    const x = instance('rnn');
    const err = await runtime
      .build({ family: 'rnn', params: x.params, batchSize: BATCH, weights: x.weights, device: 'cuda', mode: 'all', threads: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailable);
    expect((err as EngineUnavailable).fix).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/);
    expect((await runtime.probe()).devices).toEqual(['cpu']);
  });

  for (const family of ['cnn', 'rnn', 'transformer'] as const) {
    it(`${family}/tiny runs, is well conditioned, and optimization levels agree`, async () => {
      const x = instance(family);
      const disabled = await ortRun(x, 'disabled');
      const all = await ortRun(x, 'all');
      expect(disabled.length).toBe(BATCH * x.classes);
      expect(disabled.every(Number.isFinite)).toBe(true);
      expect(std(disabled)).toBeGreaterThan(0.05);
      expect(std(disabled)).toBeLessThan(20);
      expect(relL2(all, disabled)).toBeLessThan(1e-5);
    });
  }

  it('cnn/tiny matches a float64 reference', async () => {
    const x = instance('cnn');
    expect(relL2(await ortRun(x, 'all'), cnnReference(x))).toBeLessThan(1e-5);
  });

  it('rnn/tiny (1 layer) matches a float64 LSTM reference: gate order i,f,g,o maps to ONNX i,o,f,c', async () => {
    const x = instance('rnn');
    expect(int(x.params, 'layers')).toBe(1);
    expect(relL2(await ortRun(x), lstmReference(x))).toBeLessThan(1e-5);
  });

  it('rnn with odd sizes (seq 5, hidden 12, 2 layers) matches the reference', async () => {
    const x = instance('rnn', [
      ['seq', '5'],
      ['hidden', '12'],
      ['layers', '2'],
    ]);
    const out = await ortRun(x, 'all');
    expect(out.length).toBe(BATCH * x.classes);
    expect(relL2(out, lstmReference(x))).toBeLessThan(1e-5);
  });

  it('transformer/tiny matches a float64 reference', async () => {
    const x = instance('transformer');
    expect(relL2(await ortRun(x), transformerReference(x))).toBeLessThan(1e-5);
  });

  it('transformer with odd sizes (seq 7, hidden 24, 3 heads) matches the reference', async () => {
    const x = instance('transformer', [
      ['seq', '7'],
      ['hidden', '24'],
      ['heads', '3'],
    ]);
    const out = await ortRun(x, 'all');
    expect(out.length).toBe(BATCH * x.classes);
    expect(relL2(out, transformerReference(x))).toBeLessThan(1e-5);
  });

  it('keeps the batch symbolic: one model serves batch 1 and 2 with equal rows', async () => {
    const x = instance('transformer');
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(buildOnnxModel('transformer', x.params, x.weights));
    const tokens = BigInt64Array.from(x.inputs.get('tokens')!.data, (v) => BigInt(v));
    const S = int(x.params, 'seq');
    const two = (await session.run({ tokens: new ort.Tensor('int64', tokens, [2, S]) })).logits!;
    const one = (await session.run({ tokens: new ort.Tensor('int64', tokens.slice(0, S), [1, S]) })).logits!;
    expect(two.dims).toEqual([2, x.classes]);
    expect(relL2(one.data as Float32Array, (two.data as Float32Array).subarray(0, x.classes))).toBeLessThan(1e-6);
    await session.release();
  });
});

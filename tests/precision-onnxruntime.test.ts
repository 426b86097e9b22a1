/* eslint-disable @typescript-eslint/no-explicit-any -- the decoded ONNX protobuf messages read here are untyped */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../harness/engines/onnx/graph.js';
import { buildOnnxModel, sessionPrecision } from '../harness/engines/onnx/index.js';
import { float16Bits, float16Value, quantizeWeight } from '../harness/engines/onnx/precision.js';
import { decodeModel } from '../harness/engines/onnx/proto.js';
import { onnxruntime } from '../harness/engines/onnxruntime.js';
import type { BuildRequest, EngineRuntime, PrecisionUsed } from '../harness/engines/types.js';
import { runEngineWorker } from '../harness/run/workers.js';
import { compareOutputs } from '../harness/stats/parity.js';
import { PROTOCOL_VERSION, type ToWorker } from '../harness/worker/protocol.js';
import { PRECISION } from '../workloads/precision.js';
import { saveTensors } from '../workloads/safetensors.js';
import type { FamilyName } from '../workloads/types.js';
import { workloadInstance, type WorkloadInstance } from './helpers.js';

/**
 * ONNX Runtime at reduced precision, on the real onnxruntime-node: int8 (dynamic quantization
 * written into fwbench's graphs) on the CPU in every optimization level, the evidence read back
 * from each session's own optimized graph, the planted silent fallback caught by that evidence,
 * and the precisions this CPU provider cannot run refused in one line with their checked reason.
 * fp16 and TF32 run on the CUDA provider only: their tests run where it is usable.
 */

const BATCH = 8;
const SEED = 11;
const MODES = ['all', 'extended', 'basic', 'disabled'];
const FAMILIES: FamilyName[] = ['transformer', 'cnn', 'rnn'];

let runtime: EngineRuntime;
beforeAll(async () => {
  runtime = await onnxruntime.load();
});

const request = (x: WorkloadInstance, extra: Partial<BuildRequest> = {}): BuildRequest => ({
  family: x.family,
  params: x.params,
  batchSize: BATCH,
  weights: x.weights,
  device: 'cpu',
  mode: 'all',
  threads: 1,
  ...extra,
});

async function logits(req: BuildRequest, inputs: WorkloadInstance['inputs']): Promise<{ out: Float32Array; used?: PrecisionUsed }> {
  const model = await runtime.build(req);
  try {
    const out = await model.run(inputs);
    return { out, ...(model.precisionUsed ? { used: model.precisionUsed() } : {}) };
  } finally {
    await model.dispose();
  }
}

/** Fraction of rows whose argmax equals the reference's. */
function argmaxAgreement(out: Float32Array, ref: Float32Array, classes: number): number {
  const argmax = (a: Float32Array, r: number): number => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (a[r * classes + c]! > a[r * classes + best]!) best = c;
    return best;
  };
  const rows = ref.length / classes;
  let same = 0;
  for (let r = 0; r < rows; r++) if (argmax(out, r) === argmax(ref, r)) same++;
  return same / rows;
}

/** The matrix products dynamic quantization turns into integer ones: MatMul by a constant, Conv, LSTM, counted in the float32 graph. */
function quantizableProducts(x: WorkloadInstance): number {
  const m = decodeModel(buildOnnxModel(x.family, x.params, x.weights)) as any;
  const constants = new Set(m.graph.initializer.map((t: any) => t.name));
  return m.graph.node.filter((n: any) => (n.op_type === 'MatMul' && constants.has(n.input[1])) || n.op_type === 'Conv' || n.op_type === 'LSTM').length;
}

describe('onnxruntime int8 on the CPU (dynamic quantization in the graph)', () => {
  for (const family of FAMILIES) {
    it(`${family}: int8 logits near the fp32 session's in every mode, the session graph shows integer products`, async () => {
      const x = workloadInstance(family, [], { seed: SEED, batch: BATCH });
      const products = quantizableProducts(x);
      expect(products).toBeGreaterThan(0);
      for (const mode of MODES) {
        const ref = (await logits(request(x, { mode }), x.inputs)).out;
        const { out, used } = await logits(request(x, { mode, precision: 'int8' }), x.inputs);
        const parity = compareOutputs(ref, [BATCH, x.classes], out, [BATCH, x.classes], PRECISION.int8.relL2Tolerance);
        const agreement = argmaxAgreement(out, ref, x.classes);
        console.log(
          `${family} tiny int8 mode ${mode}: relL2 ${parity.relL2.toExponential(2)}, argmax agreement ${agreement} (batch ${BATCH}); ${used?.evidence}`,
        );
        expect(parity.pass, parity.problem).toBe(true);
        // Quantization changes the numbers: identical logits would mean fp32 ran.
        expect(parity.relL2).toBeGreaterThan(1e-4);
        expect(agreement).toBeGreaterThanOrEqual(PRECISION.int8.minArgmaxAgreement!);
        expect(used?.used).toBe('int8');
        // Every quantizable product of the float graph runs as an integer one, fused or not.
        expect(used?.evidence).toContain(`${products} of ${products} integer products with 8-bit weights`);
      }
    });
  }

  it('stream graphs (symbolic length, lengths input) quantize too: transformer and rnn run int8 on a padded batch', async () => {
    for (const family of ['transformer', 'rnn'] as const) {
      const x = workloadInstance(family, [], { seed: SEED, batch: 2 });
      const seq = x.inputs.get('tokens')!.shape[1]!;
      const inputs = new Map(x.inputs);
      inputs.set('lengths', { dtype: 'I32', shape: [2], data: Int32Array.of(seq, seq - 3) });
      const req = { ...request(x, { stream: true }), batchSize: 2 };
      const ref = (await logits(req, inputs)).out;
      const { out, used } = await logits({ ...req, precision: 'int8' }, inputs);
      const parity = compareOutputs(ref, [2, x.classes], out, [2, x.classes], PRECISION.int8.relL2Tolerance);
      expect(parity.pass, parity.problem).toBe(true);
      expect(used?.used).toBe('int8');
    }
  });

  it('the planted fallback (plantPrecisionFallback) builds float32 and the evidence says fp32', async () => {
    for (const family of FAMILIES) {
      const x = workloadInstance(family, [], { seed: SEED, batch: BATCH });
      const ref = (await logits(request(x), x.inputs)).out;
      const { out, used } = await logits(request(x, { precision: 'int8', plantPrecisionFallback: true }), x.inputs);
      console.log(`${family} planted int8 fallback: ${used?.used}; ${used?.evidence}`);
      expect(used?.used).toBe('fp32');
      expect(used?.evidence).toMatch(/integer ops none; 0 of 0 integer products/);
      // It really is the float32 model: the same logits, bit for bit.
      expect(Array.from(out)).toEqual(Array.from(ref));
    }
  });

  it('weights are quantized symmetrically per tensor: scale max|w|/127, values in [-127, 127], half to even', () => {
    // max|w| = 254: scale 2, so w/scale is exact and the halves are real ties.
    const { q, scale } = quantizeWeight(Float32Array.of(-254, 127, 1, 3, 5, 0));
    expect(scale).toBe(2);
    // -127; 63.5 -> 64 (even); 0.5 -> 0 (even); 1.5 -> 2; 2.5 -> 2 (even).
    expect(Array.from(q)).toEqual([-127, 64, 0, 2, 2, 0]);
    // reduce_range: 7 bits, scale max|w|/64 = 4; 31.75 -> 32, 0.25 -> 0, 0.75 -> 1, 1.25 -> 1.
    const reduced = quantizeWeight(Float32Array.of(-256, 127, 1, 3, 5, 0), true);
    expect(reduced.scale).toBe(4);
    expect(Array.from(reduced.q)).toEqual([-64, 32, 0, 1, 1, 0]);
  });
});

describe('the worker plants the fallback (FWBENCH_FAULT=precision-fallback@build:onnxruntime)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwbench-precision-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('an int8 cell reports int8 from a real worker, and fp32 when the fault plants the fallback', async () => {
    const x = workloadInstance('transformer', [], { seed: SEED, batch: 2 });
    saveTensors(join(dir, 'weights.safetensors'), x.weights);
    saveTensors(join(dir, 'inputs.safetensors'), x.inputs);
    const job: ToWorker = {
      type: 'job',
      protocol: PROTOCOL_VERSION,
      cell: {
        engine: 'onnxruntime',
        mode: 'all',
        device: 'cpu' as const,
        family: x.family,
        params: x.params,
        batchSize: 2,
        threads: 1,
        precision: 'int8' as const,
      },
      weightsPath: join(dir, 'weights.safetensors'),
      inputsPath: join(dir, 'inputs.safetensors'),
      measure: {
        warmupMinIters: 1,
        warmupMaxIters: 1,
        warmupMaxMs: 100,
        warmupTolerance: 1,
        warmupWindow: 2,
        minSamples: 1,
        minTimeMs: 0,
        maxTimeMs: 100,
        maxSamples: 1,
        targetInterval: 0,
      },
    };
    const seen: Record<string, unknown> = {};
    for (const fault of [undefined, 'precision-fallback@build:onnxruntime']) {
      const outcome = await runEngineWorker(onnxruntime, job, { timeoutMs: 60_000, env: fault ? { FWBENCH_FAULT: fault } : {}, onParity: () => 'stop' });
      expect(outcome.error, outcome.error?.message).toBeUndefined();
      const parity = outcome.parity;
      if (parity?.type !== 'parity') throw new Error(`expected a parity message, got ${parity?.type}`);
      seen[fault ?? 'none'] = parity.precision?.used;
      if (!fault) {
        // The weights' range follows this CPU (ONNX Runtime's advice): 7 bits on x86 without VNNI.
        const vnni = /\b(avx512_vnni|avx_vnni)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
        expect(outcome.built?.settings.int8Weights).toMatch(vnni || process.arch !== 'x64' ? /^8-bit/ : /^7-bit, \[-64, 64\]/);
      }
      console.log(`worker, fault ${fault ?? 'none'}: ${JSON.stringify(parity.precision)}`);
    }
    expect(seen).toEqual({ none: 'int8', 'precision-fallback@build:onnxruntime': 'fp32' });
  });
});

describe('precisions the CPU provider cannot run are refused in one line, with the checked reason', () => {
  it("bf16: ORT's CPU provider has no bfloat16 MatMul (the declared reason quotes the session error, checked here)", async () => {
    // A bfloat16 MatMul fed from float32 through a Cast (onnxruntime-common has no bfloat16 Tensor).
    const g = new GraphBuilder('bf16-probe');
    const xIn = g.input('x', 'float32', [2, 4]);
    const w = g.initializer('w', { type: 'bfloat16', dims: [4, 4], data: Uint16Array.from({ length: 16 }, () => 0x3f80) });
    const y = g.op('MatMul', [g.op('Cast', [xIn], { to: 16 }), w]);
    g.node('Cast', [y], ['y'], { to: 1 });
    g.output('y', 'float32', [2, 4]);
    const error = await ort.InferenceSession.create(g.toModel(), { executionProviders: ['cpu'] }).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(error).toBeDefined();
    const declared = onnxruntime.precisions.bf16;
    expect(typeof declared).toBe('string');
    expect(declared).toContain(error!.replace(/^.*(Could not find an implementation for MatMul\(\d+\) node with name '\w+').*$/s, '$1'));
    expect(() => new ort.Tensor('bfloat16' as 'float32', new Float32Array(4), [4])).toThrow(/bfloat16/);

    const x = workloadInstance('transformer', [], { seed: SEED, batch: 2 });
    const refused = await runtime.build({ ...request(x), precision: 'bf16' }).then(
      () => 'built',
      (e: Error) => e.message,
    );
    expect(refused).toBe(`onnxruntime cannot run bf16 on cpu (transformer, mode all): ${declared}`);
    expect(refused.split('\n')).toHaveLength(1);
  });

  it('fp16 and tf32 on cpu, int8 on cuda: refused before anything is built', async () => {
    const x = workloadInstance('cnn', [], { seed: SEED, batch: 2 });
    for (const [precision, device, why] of [
      ['fp16', 'cpu', /^onnxruntime cannot run fp16 on cpu \(cnn, mode all\): it runs fp16 on cuda only: ORT's CPU execution provider has no float16/],
      ['tf32', 'cpu', /^onnxruntime cannot run tf32 on cpu \(cnn, mode all\): it runs tf32 on cuda only: TF32 is a mode of NVIDIA tensor cores/],
      ['int8', 'cuda', /^onnxruntime cannot run int8 on cuda \(cnn, mode all\): it runs int8 on cpu only: ORT's CUDA execution provider has no kernels/],
    ] as const) {
      const refused = await runtime.build({ ...request(x), precision, device }).then(
        () => 'built',
        (e: Error) => e.message,
      );
      expect(refused).toMatch(why);
      expect(refused.split('\n')).toHaveLength(1);
    }
  });

  it('fp16 on the CPU provider (why it is declared cuda-only): ORT runs the float16 graph but computes its products in float32, and the evidence says fp32', async () => {
    for (const family of FAMILIES) {
      const x = workloadInstance(family, [], { seed: SEED, batch: BATCH });
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of x.inputs) {
        feeds[name] =
          t.dtype === 'F32' ? new ort.Tensor('float32', t.data as Float32Array, t.shape) : new ort.Tensor('int64', BigInt64Array.from(t.data, BigInt), t.shape);
      }
      const reference = await ort.InferenceSession.create(buildOnnxModel(family, x.params, x.weights), { graphOptimizationLevel: 'disabled' });
      const ref = (await reference.run(feeds)).logits!.data as Float32Array;
      for (const mode of ['all', 'disabled'] as const) {
        const dir = mkdtempSync(join(tmpdir(), 'fwbench-fp16-'));
        try {
          const path = join(dir, 'session.onnx');
          const session = await ort.InferenceSession.create(buildOnnxModel(family, x.params, x.weights, { precision: 'fp16' }), {
            graphOptimizationLevel: mode,
            optimizedModelFilePath: path,
          });
          const out = (await session.run(feeds)).logits!;
          const used = sessionPrecision(readFileSync(path), 'fp16');
          const parity = compareOutputs(ref, [BATCH, x.classes], out.data as Float32Array, [BATCH, x.classes], PRECISION.fp16.relL2Tolerance);
          console.log(`${family} fp16 graph on the CPU provider, mode ${mode}: relL2 ${parity.relL2.toExponential(2)}; ${used.used}: ${used.evidence}`);
          // The graph is right (its weights were rounded to float16)...
          expect(out.type).toBe('float32');
          expect(parity.pass, parity.problem).toBe(true);
          expect(parity.relL2).toBeGreaterThan(1e-6);
          // ...but no product reads float16 weights, so this would be fp32 labelled fp16.
          expect(used.used).toBe('fp32');
          expect(used.evidence).toMatch(/session graph: 0 of \d+ matrix products read float16 weights/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  });

  it('float16 conversion rounds to nearest even and clamps to the float16 range (a -1e9 mask stays finite)', () => {
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(-2)).toBe(0xc000);
    expect(float16Bits(65504)).toBe(0x7bff);
    expect(float16Bits(-1e9)).toBe(0xfbff);
    expect(float16Value(float16Bits(-1e9))).toBe(-65504);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even (1).
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    // Subnormals: 2^-24 is the smallest.
    expect(float16Bits(2 ** -24)).toBe(0x0001);
    expect(float16Value(0x0001)).toBe(2 ** -24);
    for (const v of [0.1, -3.14159, 1234.5, 6.1e-5, 1e-7])
      expect(Math.abs(float16Value(float16Bits(v)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25);
  });
});

// ---- the CUDA provider: fp16 and TF32 (run where it is usable) ---------------------------------

const probe = await (await onnxruntime.load()).probe();
const cudaProblem = probe.devices.includes('cuda') ? undefined : String(probe.details.cuda);

describe.skipIf(cudaProblem !== undefined)(
  `onnxruntime fp16 and tf32 on cuda (skipped without a usable CUDA execution provider: ${cudaProblem ?? 'present'})`,
  () => {
    const cuda = (x: WorkloadInstance, extra: Partial<BuildRequest> = {}): BuildRequest => request(x, { device: 'cuda', ...extra });

    // tf32 first: an fp32 cuda build sets NVIDIA_TF32_OVERRIDE=0 for the rest of this process.
    it('tf32: the session runs with TF32 allowed and says so; logits within the tf32 gate of the CPU fp32 reference', async () => {
      for (const family of FAMILIES) {
        const x = workloadInstance(family, [], { seed: SEED, batch: BATCH });
        const ref = (await logits(request(x), x.inputs)).out;
        const { out, used } = await logits(cuda(x, { precision: 'tf32' }), x.inputs);
        const parity = compareOutputs(ref, [BATCH, x.classes], out, [BATCH, x.classes], PRECISION.tf32.relL2Tolerance);
        console.log(`${family} tf32 on cuda: relL2 ${parity.relL2.toExponential(2)}, argmax ${argmaxAgreement(out, ref, x.classes)}; ${used?.evidence}`);
        expect(used?.used).toBe('tf32');
        expect(parity.pass, parity.problem).toBe(true);
      }
    });

    it('fp16: float16 weights in the session graph, logits within the fp16 gate of fp32; the planted fallback reports fp32', async () => {
      for (const family of FAMILIES) {
        const x = workloadInstance(family, [], { seed: SEED, batch: BATCH });
        const ref = (await logits(request(x), x.inputs)).out;
        const { out, used } = await logits(cuda(x, { precision: 'fp16' }), x.inputs);
        const parity = compareOutputs(ref, [BATCH, x.classes], out, [BATCH, x.classes], PRECISION.fp16.relL2Tolerance);
        const agreement = argmaxAgreement(out, ref, x.classes);
        console.log(`${family} fp16 on cuda: relL2 ${parity.relL2.toExponential(2)}, argmax ${agreement}; ${used?.evidence}`);
        expect(used?.used).toBe('fp16');
        expect(parity.pass, parity.problem).toBe(true);
        expect(parity.relL2).toBeGreaterThan(1e-6);
        expect(agreement).toBeGreaterThanOrEqual(PRECISION.fp16.minArgmaxAgreement!);
        const planted = await logits(cuda(x, { precision: 'fp16', plantPrecisionFallback: true }), x.inputs);
        expect(planted.used?.used).toBe('fp32');
      }
    });

    it('fp32 on cuda sets NVIDIA_TF32_OVERRIDE=0 (onnxruntime-node cannot pass use_tf32=0) and records it', async () => {
      const x = workloadInstance('transformer', [], { seed: SEED, batch: BATCH });
      const model = await runtime.build(cuda(x));
      try {
        expect(process.env.NVIDIA_TF32_OVERRIDE).toBe('0');
        expect(model.settings.nvidiaTf32Override).toMatch(/^0 \(set by fwbench/);
        const ref = (await logits(request(x), x.inputs)).out;
        const parity = compareOutputs(ref, [BATCH, x.classes], await model.run(x.inputs), [BATCH, x.classes]);
        expect(parity.pass, parity.problem).toBe(true);
      } finally {
        await model.dispose();
      }
    });
  },
);

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { cacheNames } from '../harness/engines/onnx/index.js';
import { compareOutputs } from '../harness/stats/parity.js';
import { publishedFiles } from '../harness/results/json-schemas.js';
import { getFamily, resolveParams } from '../workloads/index.js';
import { cacheDir, materialize } from '../workloads/materialize.js';
import { loadTensors } from '../workloads/safetensors.js';
import { fwbench, QUICK, tempDir } from './helpers.js';

describe('fwbench detect', () => {
  it('--json describes this host and says why the engines that cannot run here cannot, with a fix', async () => {
    const r = await fwbench(['detect', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as {
      host: {
        cpu: { logicalCores: number; physicalCores: number; simd: string[] };
        memory: { totalBytes: number };
        gpus: { gpus: unknown[]; reason?: string };
        tpu: { present: boolean };
      };
      engines: Record<string, { available: boolean; reason?: string; fix?: string; devices?: string[]; details?: Record<string, string> }>;
    };
    expect(d.host.cpu.logicalCores).toBeGreaterThan(0);
    expect(d.host.memory.totalBytes).toBeGreaterThan(0);
    expect(d.host.tpu.present).toBe(false);
    expect(Object.keys(d.engines).sort()).toEqual(['onnxruntime', 'tensorflow', 'tfjs-cpu', 'tfjs-node', 'tfjs-node-gpu', 'tfjs-wasm', 'torch']);
    for (const id of ['onnxruntime', 'tfjs-wasm', 'tfjs-cpu']) expect(d.engines[id]!.available, id).toBe(true);
    // No GPU and no libtensorflow download on these machines: the reasons must say so exactly.
    if (d.host.gpus.gpus.length === 0) {
      expect(d.host.gpus.reason).toMatch(/nvidia-smi/);
      expect(d.engines.onnxruntime!.devices).toEqual(['cpu']);
      expect(d.engines.onnxruntime!.details!.cuda).toMatch(/CUDA execution provider not installed/);
      expect(d.engines.onnxruntime!.details!.cudaFix).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
    }
    for (const id of ['tfjs-node', 'tfjs-node-gpu']) {
      const e = d.engines[id]!;
      if (!e.available) {
        expect(e.reason).toMatch(/not installed|failed to load/);
        expect(e.fix).toMatch(/npm install @tensorflow\/tfjs-node/);
      }
    }
  });
  it('prints a readable summary without --json', async () => {
    const r = await fwbench(['detect']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^CPU\s+.+cores/m);
    expect(r.stdout).toMatch(/onnxruntime\s+available/);
    expect(r.stdout).toMatch(/tfjs-node\s+(available|unavailable)/);
  });
});

describe('fwbench list', () => {
  it('lists workloads with presets, parameters and FLOPs, and engines', async () => {
    const r = await fwbench(['list', '--json']);
    const l = JSON.parse(r.stdout) as {
      workloads: Array<{ name: string; presets: Record<string, { flopsPerSample: number }>; params: Array<{ name: string }> }>;
      engines: Array<{ id: string; modes: string[] }>;
    };
    expect(l.workloads.map((w) => w.name)).toEqual(['cnn', 'rnn', 'transformer', 'decoder']);
    expect(l.workloads[2]!.presets['bert-base']!.flopsPerSample).toBeCloseTo(22.35e9, -8);
    expect(l.workloads[1]!.params.map((p) => p.name)).toEqual(expect.arrayContaining(['seq', 'hidden', 'layers', 'vocab', 'classes']));
    expect(l.engines.find((e) => e.id === 'onnxruntime')!.modes[0]).toBe('all');
    const text = await fwbench(['list']);
    expect(text.stdout).toMatch(/preset resnet50 .*block=bottleneck depths=3,4,6,3/);
    // Every engine's way with each reduced precision, or why it has none.
    expect(text.stdout).toMatch(/^ {4}bf16 {2}torch\.autocast\(device, dtype=torch\.bfloat16\).* \[cpu,cuda\]$/m);
    expect(text.stdout).toMatch(/^ {4}bf16 {2}no: TensorFlow\.js has no bfloat16 dtype/m);
    // Each family's tasks, and each engine's generate modes with the reason for those that cannot.
    expect(text.stdout).toMatch(/^ {2}decoder: GPT-2-style decoder LM .* \[tasks generate\]$/m);
    expect(text.stdout).toMatch(/^ {4}generate modes eager,compile,compile-static,compile-dynamic \(by default eager,compile-static\); torchscript: no: /m);
  });
});

describe('fwbench export', () => {
  it('writes the exact ONNX model, weights and inputs of a run; the model reproduces the reference output', async () => {
    const dir = tempDir();
    const args = ['--workload', 'transformer', '--preset', 'tiny', '--set', 'seq=9', '--seed', '3'];
    for (const format of ['onnx', 'weights', 'inputs']) {
      const r = await fwbench(['export', ...args, '--format', format, '--batch-size', '2', '--out', join(dir, format)]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const family = getFamily('transformer');
    const m = materialize(family, resolveParams(family, 'tiny', [['seq', '9']]), 3, 2);
    expect(readFileSync(join(dir, 'weights')).equals(readFileSync(m.weightsPath))).toBe(true);
    expect(readFileSync(join(dir, 'inputs')).equals(readFileSync(m.inputsPath))).toBe(true);
    const tokens = loadTensors(join(dir, 'inputs')).tensors.get('tokens')!;
    expect(tokens.shape).toEqual([2, 9]);
    const session = await ort.InferenceSession.create(join(dir, 'onnx'));
    const out = await session.run({
      tokens: new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens.data, (v) => BigInt(v)),
        tokens.shape,
      ),
    });
    expect(out.logits!.dims).toEqual([2, 2]);
    // A run of the same cell caches the reference logits; plain ORT on the exported files must give them.
    const run = await fwbench([
      'run',
      '--engines',
      'onnxruntime',
      '--workloads',
      'transformer',
      '--set',
      'seq=9',
      '--seed',
      '3',
      '--batch-sizes',
      '2',
      '--out',
      dir,
      ...QUICK,
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
    const refFile = readdirSync(cacheDir()).find((f) => f.startsWith(`transformer-${m.key}.reference-b2-`))!;
    const ref = loadTensors(join(cacheDir(), refFile)).tensors.get('logits')!;
    expect(compareOutputs(ref.data, ref.shape, out.logits!.data as Float32Array, [...out.logits!.dims]).relL2).toBeLessThan(1e-5);
  });
});

describe('fwbench export, the decoder', () => {
  it('writes its generation graph: an empty past on the prompt, then one token against the presents, gives the logits of the whole sequence at once', async () => {
    const dir = tempDir();
    for (const format of ['onnx', 'inputs']) {
      const r = await fwbench(['export', '--workload', 'decoder', '--preset', 'tiny', '--format', format, '--batch-size', '2', '--out', join(dir, format)]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const params = resolveParams(getFamily('decoder'), 'tiny', []);
    const [layers, heads, hidden, vocab] = (['layers', 'heads', 'hidden', 'vocab'] as const).map((k) => Number(params[k]));
    const d = hidden! / heads!;
    const all = loadTensors(join(dir, 'inputs')).tensors.get('tokens')!;
    const ctx = all.shape[1]!;
    const P = 5;
    const columns = (n: number, extra?: Int32Array): ort.Tensor => {
      const t = new Int32Array(2 * n);
      for (let r = 0; r < 2; r++) for (let c = 0; c < n; c++) t[r * n + c] = c < P ? all.data[r * ctx + c]! : extra![r]!;
      return new ort.Tensor('int32', t, [2, n]);
    };
    /** Each past input with the present output it is fed from. */
    const carried = Array.from({ length: layers! }, (_, l) => cacheNames(l)).flatMap((n) => [
      [n.pastKey, n.presentKey],
      [n.pastValue, n.presentValue],
    ]);
    const empty = Object.fromEntries(carried.map(([past]) => [past!, new ort.Tensor('float32', new Float32Array(0), [2, heads!, 0, d])]));
    const session = await ort.InferenceSession.create(join(dir, 'onnx'));
    const prefill = await session.run({ tokens: columns(P), ...empty });
    expect(prefill[cacheNames(0).presentKey]!.dims).toEqual([2, heads, P, d]);
    const logits = prefill.logits!.data as Float32Array;
    const next = prefill.next!.data as Int32Array;
    for (let r = 0; r < 2; r++) {
      const row = logits.subarray(r * vocab!, (r + 1) * vocab!);
      expect(next[r]).toBe(row.indexOf(Math.max(...row)));
    }
    const past = Object.fromEntries(carried.map(([pastName, present]) => [pastName!, prefill[present!]!]));
    const step = await session.run({ tokens: new ort.Tensor('int32', next, [2, 1]), ...past });
    expect(step[cacheNames(0).presentKey]!.dims).toEqual([2, heads, P + 1, d]);
    const whole = await session.run({ tokens: columns(P + 1, next), ...empty });
    const a = step.logits!.data as Float32Array;
    expect(compareOutputs(whole.logits!.data as Float32Array, [2, vocab!], a, [2, vocab!]).relL2).toBeLessThan(1e-5);
  });
});

describe('published JSON Schemas', () => {
  it('results/schema/ (the schemas and manifest.json) matches the zod definitions and the declared lists (run `npm run schemas` after changing them)', () => {
    for (const [name, schema] of Object.entries(publishedFiles())) {
      const onDisk = JSON.parse(readFileSync(join('results/schema', name), 'utf8')) as unknown;
      expect(onDisk, name).toEqual(JSON.parse(JSON.stringify(schema)));
    }
  });
});

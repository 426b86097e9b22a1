import * as tf from '@tensorflow/tfjs';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { allConvs, resnetLayout } from '../workloads/cnn.js';
import { materialize } from '../workloads/materialize.js';
import { loadTensors, type Tensor, type TensorMap } from '../workloads/safetensors.js';
import { generateLabels, materializeLabels, TRAINING, type TrainingRecipe } from '../workloads/training.js';
import { getFamily, resolveParams, type FamilyName } from '../workloads/index.js';
import { cnnKerasWeights, kerasName, rnnKerasWeights, transformerKerasWeights, type KerasLayerWeights } from '../harness/engines/keras-layout.js';
import { tfjsCpu, tfjsNode, tfjsWasm } from '../harness/engines/tfjs/index.js';
import { trainableRnn } from '../harness/engines/tfjs/rnn.js';
import { tfjsTrainer } from '../harness/engines/tfjs/train.js';
import { EngineUnavailable, type BuiltTrainer, type NodeEngineDescriptor, type TrainRequest } from '../harness/engines/types.js';
import { QUICK_MEASURE } from '../harness/worker/measure.js';
import { FromWorkerSchema, PROTOCOL_VERSION, TRAIN_PARITY_TENSORS, type FromWorker, type ToWorker } from '../harness/worker/protocol.js';
import { nodeWorkerScript } from '../harness/run/workers.js';
import { installed, relL2, tempDir, workloadInstance } from './helpers.js';

/**
 * TF.js trainers (harness/engines/tfjs/train.ts) on the tiny presets: the three families on the
 * native backend (tfjs-node), the JavaScript cpu backend and wasm, checked against each other and
 * against the recipe's update formula computed here from the gradients they return.
 */

const SEED = 0;
type TrainingFamily = Exclude<FamilyName, 'decoder'>;
const FAMILIES: TrainingFamily[] = ['cnn', 'rnn', 'transformer'];
// The tiny ResNet's last stage is 1x1: at batch 2 its BatchNorms normalize two values each, and the
// step is so ill-conditioned that fp32 round-off alone moves the loss by 8 % after three steps.
const BATCH: Record<TrainingFamily, number> = { cnn: 8, rnn: 4, transformer: 4 };
const hasNode = installed('@tensorflow/tfjs-node');

const trainers: BuiltTrainer[] = [];
afterAll(async () => {
  for (const t of trainers.splice(0)) await t.dispose();
});

function request(family: TrainingFamily, recipe: TrainingRecipe = TRAINING): TrainRequest {
  const batch = BATCH[family];
  const inst = workloadInstance(family, [], { seed: SEED, batch });
  return {
    family,
    params: inst.params,
    batchSize: batch,
    weights: inst.weights,
    device: 'cpu',
    mode: 'eager',
    threads: 1,
    recipe,
    inputs: inst.inputs,
    labels: generateLabels(SEED, batch, inst.classes),
  };
}

/** A trainer disposed after the file's tests (or by the test itself). */
async function trainer(engine: NodeEngineDescriptor, family: TrainingFamily, recipe?: TrainingRecipe): Promise<BuiltTrainer> {
  const t = await (await engine.load()).buildTrainer!(request(family, recipe));
  trainers.push(t);
  return t;
}

async function dispose(t: BuiltTrainer): Promise<void> {
  trainers.splice(trainers.indexOf(t), 1);
  await t.dispose();
}

/** The mapped Keras list of a family (what state() must name and shape). */
function mapped(family: TrainingFamily): KerasLayerWeights[] {
  const r = request(family);
  const list = { cnn: cnnKerasWeights, rnn: rnnKerasWeights, transformer: transformerKerasWeights }[family];
  return list(r.weights, r.params);
}

/** Names of the tensors that are not trained: BatchNormalization's moving mean and variance. */
function statistics(family: TrainingFamily): Set<string> {
  if (family !== 'cnn') return new Set();
  return new Set(allConvs(resnetLayout(request('cnn').params)).flatMap((c) => [`${kerasName(c.bn)}/2`, `${kerasName(c.bn)}/3`]));
}

const norm = (a: ArrayLike<number>): number => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

/** Element-wise a - b, in float64. */
const minus = (a: Tensor, b: Tensor): Float64Array => Float64Array.from(a.data, (v, i) => v - b.data[i]!);

/** The losses of three steps, the first step's gradients and the state after the third, on one engine. */
async function threeSteps(engine: NodeEngineDescriptor, family: TrainingFamily): Promise<{ losses: number[]; grads: TensorMap; state: TensorMap }> {
  const t = await trainer(engine, family);
  const first = await t.step(true);
  const losses = [first.loss, (await t.step(false)).loss, (await t.step(false)).loss];
  const state = await t.state();
  await dispose(t);
  return { losses, grads: first.grads!, state };
}

describe.skipIf(!hasNode).each(FAMILIES)('TF.js training: %s', (family) => {
  it('names state and gradients <keras layer>/<index> with the mapped shapes; the state starts as the mapped weights', async () => {
    const list = mapped(family);
    const t = await trainer(tfjsNode, family);
    const state = await t.state();
    const want = list.flatMap(({ layer, weights }) => weights.map((w, i) => [`${layer}/${i}`, w] as const));
    expect([...state.keys()]).toEqual(want.map(([n]) => n));
    for (const [name, w] of want) {
      expect(state.get(name)!.shape, name).toEqual(w.shape);
      expect(state.get(name)!.data, name).toEqual(w.data);
    }
    const { grads } = await t.step(true);
    const stats = statistics(family);
    expect(stats.size).toBe(family === 'cnn' ? 2 * allConvs(resnetLayout(request('cnn').params)).length : 0);
    expect([...grads!.keys()]).toEqual(want.map(([n]) => n).filter((n) => !stats.has(n)));
    for (const [name, g] of grads!) expect(g.shape, name).toEqual(state.get(name)!.shape);
    await dispose(t);
  });

  it('agrees between tfjs-node and tfjs-cpu over three steps (losses, first gradients, final state within 1e-4)', async () => {
    const node = await threeSteps(tfjsNode, family);
    const cpu = await threeSteps(tfjsCpu, family);
    node.losses.forEach((l, k) => expect(Math.abs(l - cpu.losses[k]!) / Math.abs(cpu.losses[k]!), `loss ${k + 1}`).toBeLessThan(1e-4));
    // The loss falls: the step trains.
    expect(node.losses[2]!).toBeLessThan(node.losses[0]!);
    // Relative to the tensor's own norm, or to 1e-3 of the whole gradient's for a gradient that is
    // zero in exact arithmetic (the attention key bias: softmax ignores a shift shared by all keys).
    const whole = norm([...cpu.grads.values()].flatMap((g) => Array.from(g.data)));
    for (const [name, g] of node.grads) {
      const ref = cpu.grads.get(name)!.data;
      expect(norm(minus(g, cpu.grads.get(name)!)) / Math.max(norm(ref), 1e-3 * whole), `grad ${name}`).toBeLessThan(1e-4);
    }
    if (family === 'transformer') expect(norm(node.grads.get('layers_0_attention_key/1')!.data)).toBeLessThan(1e-6 * whole);
    for (const [name, w] of node.state) expect(relL2(w.data, cpu.state.get(name)!.data), `state ${name}`).toBeLessThan(1e-4);
  });

  it('tfjs-wasm reports the backward kernel it lacks', async () => {
    const op = family === 'cnn' ? 'Conv2DBackpropFilter' : 'UnsortedSegmentSum';
    const err = await (await tfjsWasm.load()).buildTrainer!(request(family)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineUnavailable);
    expect((err as EngineUnavailable).message).toMatch(
      new RegExp(`^tfjs-wasm cannot train ${family}: the wasm backend has no kernel for ${op} \\(needed by the gradient of `),
    );
    expect((err as EngineUnavailable).fix).toMatch(/tfjs-node/);
  });

  it('adds weight decay to the gradient: without it the first update differs by lr * wd * w', async () => {
    const { learningRate: lr, weightDecay: wd } = TRAINING;
    const decayed = await trainer(tfjsNode, family);
    const plain = await trainer(tfjsNode, family, { ...TRAINING, weightDecay: 0 });
    const w0 = await decayed.state();
    const { grads } = await decayed.step(true);
    await plain.step(false);
    const [a, b] = [await decayed.state(), await plain.state()];
    const stats = statistics(family);
    for (const [name, w] of w0) {
      const diff = minus(b.get(name)!, a.get(name)!);
      const g = grads!.get(name)?.data;
      // fp32 round-off of the two updates (g + wd w, lr v, w - lr v): a few units of 2^-23 (|w| + lr |g|).
      diff.forEach((d, i) => {
        const expected = stats.has(name) ? 0 : lr * wd * w.data[i]!;
        const bound = 4 * 2 ** -23 * (Math.abs(w.data[i]!) + lr * Math.abs(g?.[i] ?? 0)) + 1e-12;
        expect(Math.abs(d - expected), `${name}[${i}]`).toBeLessThanOrEqual(bound);
      });
    }
    // The BatchNorm statistics are state, not trained: no decay (checked above: expected 0).
    expect(stats.size > 0).toBe(family === 'cnn');
    await dispose(decayed);
    await dispose(plain);
  });

  it('applies momentum as torch.optim.SGD: first update lr * g1, third lr * (m (m g1 + g2) + g3), g including weight decay', async () => {
    const { learningRate: lr, momentum: m, weightDecay: wd } = TRAINING;
    const t = await trainer(tfjsNode, family);
    const states = [await t.state()];
    const grads: TensorMap[] = [];
    for (let k = 0; k < 3; k++) {
      grads.push((await t.step(true)).grads!);
      states.push(await t.state());
    }
    // g_k' = g_k + wd * w_{k-1}: the gradient the optimizer is given.
    const decayed = (k: number, name: string): Float64Array => Float64Array.from(grads[k]!.get(name)!.data, (g, i) => g + wd * states[k]!.get(name)!.data[i]!);
    const update = (k: number, name: string): Float64Array => minus(states[k]!.get(name)!, states[k + 1]!.get(name)!);
    const all = (f: (name: string) => ArrayLike<number>): number[] => [...grads[0]!.keys()].flatMap((n) => Array.from(f(n)));
    const first = all((n) => decayed(0, n).map((g) => lr * g));
    const third = all((n) => {
      const [g1, g2, g3] = [decayed(0, n), decayed(1, n), decayed(2, n)];
      return g3.map((g, i) => lr * (m * (m * g1[i]! + g2[i]!) + g));
    });
    expect(
      relL2(
        all((n) => update(0, n)),
        first,
      ),
    ).toBeLessThan(1e-3);
    expect(
      relL2(
        all((n) => update(2, n)),
        third,
      ),
    ).toBeLessThan(1e-3);
    // Without momentum the third update would be lr * g3': far from what happened.
    expect(
      relL2(
        all((n) => decayed(2, n).map((g) => lr * g)),
        third,
      ),
    ).toBeGreaterThan(0.1);
    await dispose(t);
  });

  it('leaks no tensors: the count is flat across steps and back to where it was after dispose', async () => {
    await (
      await tfjsNode.load()
    ).init!({ device: 'cpu', threads: 1 });
    const before = tf.memory().numTensors;
    const t = await trainer(tfjsNode, family);
    // The first step creates the optimizer's accumulators (one per trainable tensor).
    await t.step(true);
    const counts: number[] = [];
    for (let k = 0; k < 4; k++) {
      await t.step(k % 2 === 0);
      await t.state();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size, `tensors after each step: ${counts}`).toBe(1);
    await dispose(t);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.skipIf(!hasNode)('TF.js training: BatchNorm and missing kernels', () => {
  it('moves BatchNorm statistics by the recipe momentum (PyTorch convention): running <- (1 - m) running + m batch', async () => {
    const m = TRAINING.batchNormMomentum;
    const recipe = await trainer(tfjsNode, 'cnn');
    // With momentum 1 the statistics become the batch's own; the step is otherwise the same.
    const batchOnly = await trainer(tfjsNode, 'cnn', { ...TRAINING, batchNormMomentum: 1 });
    const s0 = await recipe.state();
    await recipe.step(false);
    await batchOnly.step(false);
    const [a, b] = [await recipe.state(), await batchOnly.state()];
    for (const name of statistics('cnn')) {
      const expected = Float64Array.from(s0.get(name)!.data, (r, i) => (1 - m) * r + m * b.get(name)!.data[i]!);
      expect(relL2(a.get(name)!.data, expected), name).toBeLessThan(1e-5);
      expect(relL2(a.get(name)!.data, s0.get(name)!.data), `${name} moved`).toBeGreaterThan(1e-3);
    }
    await dispose(recipe);
    await dispose(batchOnly);
  });

  it("turns TF.js' missing-kernel error in a step into EngineUnavailable naming the op", async () => {
    await (
      await tfjsWasm.load()
    ).init!({ device: 'cpu', threads: 1 });
    const req = request('rnn');
    // The rnn model built on wasm without the up-front kernel check: the gradient of its embedding lookup fails.
    const t = tfjsTrainer(trainableRnn(req.weights, req.params), req, {
      engine: 'tfjs-wasm',
      backend: 'wasm',
      settings: {},
      select: async () => {
        await tf.setBackend('wasm');
      },
    });
    const err = await t.step(false).catch((e: unknown) => e);
    await t.dispose();
    expect(err).toBeInstanceOf(EngineUnavailable);
    expect((err as EngineUnavailable).message).toBe(
      'tfjs-wasm cannot train rnn: the wasm backend has no kernel for UnsortedSegmentSum (needed by the gradient of the training step)',
    );
  });
});

/** Runs the compiled Node worker on one job, answering `continue` to its parity message; returns what it said. */
async function runWorker(job: ToWorker): Promise<FromWorker[]> {
  const child = execa(process.execPath, [nodeWorkerScript()], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env: { TF_NUM_INTRAOP_THREADS: '1', TF_CPP_MIN_LOG_LEVEL: '2' },
    reject: false,
    timeout: 120_000,
  });
  const channel = child.stdio[3] as unknown as NodeJS.ReadWriteStream;
  channel.write(`${JSON.stringify(job)}\n`);
  const messages: FromWorker[] = [];
  for await (const line of readline.createInterface({ input: channel })) {
    const msg = FromWorkerSchema.parse(JSON.parse(line));
    messages.push(msg);
    if (msg.type === 'train-parity' || msg.type === 'parity') channel.write(`${JSON.stringify({ type: 'continue' })}\n`);
    if (msg.type === 'done' || msg.type === 'error') break;
  }
  await child;
  return messages;
}

function trainingJob(engine: string, family: TrainingFamily, parityPath: string): ToWorker {
  const f = getFamily(family);
  const params = resolveParams(f, 'tiny', []);
  const batch = BATCH[family];
  const m = materialize(f, params, SEED, batch);
  return {
    type: 'job',
    protocol: PROTOCOL_VERSION,
    cell: { engine, mode: 'eager', device: 'cpu', family, params, batchSize: batch, threads: 1, task: 'training' },
    weightsPath: m.weightsPath,
    inputsPath: m.inputsPath,
    measure: { ...QUICK_MEASURE, minSamples: 5, maxSamples: 20, maxTimeMs: 300, warmupMaxMs: 100, warmupMinMs: 0 },
    training: { ...TRAINING, labelsPath: materializeLabels(f, params, SEED, batch), parityPath },
  };
}

describe.skipIf(!hasNode)('Node worker: training cells', () => {
  it("runs the parity steps, writes every step's gradients and state (grad<k>/, step<k>/), then times steps", async () => {
    const parityPath = join(tempDir(), 'parity.safetensors');
    const messages = await runWorker(trainingJob('tfjs-node', 'rnn', parityPath));
    const types = messages.filter((m) => m.type !== 'phase').map((m) => m.type);
    expect(types).toEqual(['hello', 'built', 'train-parity', 'samples', 'memory', 'done']);
    const built = messages.find((m) => m.type === 'built')!;
    for (const ms of Object.values(built.phases)) expect(ms).toBeGreaterThan(0);
    expect(built.settings.optimizer).toBe('tf.train.momentum');
    const parity = messages.find((m) => m.type === 'train-parity')!;
    expect(parity.losses).toHaveLength(TRAINING.paritySteps);
    expect(parity.firstStepMs).toBeGreaterThan(0);
    const phases = messages.flatMap((m) => (m.type === 'phase' ? [m.phase] : []));
    expect(phases).toEqual(['load', 'build', 'parity', 'warmup', 'measure', 'memory']);
    expect((messages.find((m) => m.type === 'samples') as Extract<FromWorker, { type: 'samples' }>).samplesNs.length).toBeGreaterThan(0);

    // The file: each step's gradients of the trainable tensors and the whole state after it, named as state() names them.
    const names = mapped('rnn').flatMap(({ layer, weights }) => weights.map((_, i) => `${layer}/${i}`));
    const { tensors } = loadTensors(parityPath);
    const { grad, state } = TRAIN_PARITY_TENSORS;
    const K = TRAINING.paritySteps;
    const steps = Array.from({ length: K }, (_, i) => i + 1);
    expect([...tensors.keys()]).toEqual(steps.flatMap((k) => [...names.map((n) => grad(k) + n), ...names.map((n) => state(k) + n)]));
    // Step K's state differs from step 1's (the steps trained).
    expect(relL2(tensors.get(`${state(K)}fc/0`)!.data, tensors.get(`${state(1)}fc/0`)!.data)).toBeGreaterThan(0);
  });

  it('reports a backend without the backward kernel as unavailable, in the build phase', async () => {
    const parityPath = join(tempDir(), 'parity.safetensors');
    const messages = await runWorker(trainingJob('tfjs-wasm', 'transformer', parityPath));
    const error = messages.find((m) => m.type === 'error');
    expect(error).toMatchObject({ phase: 'build', unavailable: true });
    expect((error as { message: string }).message).toMatch(/^tfjs-wasm cannot train transformer: the wasm backend has no kernel for UnsortedSegmentSum/);
    expect(existsSync(parityPath)).toBe(false);
  });

  it.skipIf(!installed('onnxruntime-node'))('names an engine that cannot train', async () => {
    const messages = await runWorker(trainingJob('onnxruntime', 'rnn', join(tempDir(), 'parity.safetensors')));
    expect(messages.find((m) => m.type === 'error')).toMatchObject({
      phase: 'build',
      message: "engine 'onnxruntime' cannot train: its runtime has no buildTrainer",
    });
  });
});

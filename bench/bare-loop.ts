import { getNodeEngine } from '../harness/engines/registry.js';
import { DEFAULT_MEASURE, measure, medianCi } from '../harness/worker/measure.js';
import { loadTensors, type Tensor, type TensorMap } from '../workloads/safetensors.js';
import type { FamilyName, Params } from '../workloads/types.js';

/**
 * The bare side of bench/overhead.ts for the Node engines: the model and inputs a harness cell
 * uses, timed by a plain loop written directly against onnxruntime-node or TensorFlow.js, with
 * none of the harness's code (stopping rule, protocol, worker) in or around the loop.
 *
 * - onnxruntime: loads the file `fwbench export --format onnx` wrote, with the session options the
 *   onnxruntime engine uses, and reads the logits' host array each iteration.
 * - tfjs-*: builds the model with the engine's own tf.layers / tf-ops builder (building is not
 *   measured), then each iteration runs `predict` under tf.tidy and awaits `data()`.
 *
 * With `blocks`, one process alternates blocks of the harness's own timed loop (the engine's
 * BuiltModel.run under harness/worker/measure.ts, stopping rule included) with blocks of the bare loop
 * written against the framework objects of that same built model (BuiltModel.native) and the
 * same inputs, so both meet the same machine state, process and memory layout; this isolates
 * the loop's cost from process-to-process variation.
 *
 * Usage: node dist/bench/bare-loop.js '<JSON job>'; prints one JSON line: the per-iteration times.
 */
export interface BareJob {
  /** onnxruntime, tfjs-wasm, tfjs-node or tfjs-cpu. */
  engine: string;
  family: FamilyName;
  params: Params;
  /** ONNX file from `fwbench export --format onnx` (onnxruntime only). */
  onnxPath?: string;
  /** Canonical weights from `fwbench export --format weights` (tfjs only). */
  weightsPath?: string;
  /** Inputs from `fwbench export --format inputs`. */
  inputsPath: string;
  threads: number;
  /** Warm-up time before timing (ms; at least 3 iterations). */
  warmupMs: number;
  /** Timed iterations. */
  samples: number;
  /** Same-process mode: this many harness blocks and as many bare blocks, alternating (order flips each pair). */
  blocks?: number;
  /** Engine mode for the harness's model (same-process mode). */
  mode?: string;
}

/** What one bare process measured. */
export interface BareResult {
  samplesNs: number[];
  warmupIters: number;
  /** Same-process mode: the median of each harness block and of each bare block (ns), in run order. */
  harnessBlocksNs?: number[];
  bareBlocksNs?: number[];
}

/** Measurement settings of a harness block in same-process mode: the default rule with shorter bounds. */
export const BLOCK_MEASURE = { ...DEFAULT_MEASURE, warmupMinMs: 1000, minSamples: 10, minTimeMs: 200, maxTimeMs: 600, targetInterval: 0.01 };

type Ort = typeof import('onnxruntime-node');
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;
type Tf = typeof import('@tensorflow/tfjs');
type TfjsModel = import('../harness/engines/tfjs/model.js').TfjsModel;

/** One bare iteration against ONNX Runtime: `session.run` on feeds made once, then the logits' host array. */
async function ortIteration(session: Session, inputs: TensorMap): Promise<() => Promise<unknown>> {
  const ort = await import('onnxruntime-node');
  const feeds: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const name of session.inputNames) {
    const t: Tensor = inputs.get(name)!;
    feeds[name] =
      t.dtype === 'F32'
        ? new ort.Tensor('float32', t.data as Float32Array, t.shape)
        : new ort.Tensor(
            'int64',
            BigInt64Array.from(t.data, (v) => BigInt(v)),
            t.shape,
          );
  }
  return async () => (await session.run(feeds)).logits!.data;
}

/** One bare iteration against TensorFlow.js: `predict` under `tf.tidy`, then `await data()`. */
function tfjsIteration(tf: Tf, model: TfjsModel, inputs: TensorMap): () => Promise<unknown> {
  return async () => {
    const y = tf.tidy(() => model.predict(inputs));
    const data = await y.data();
    y.dispose();
    return data;
  };
}

/** Separate-process mode: the bare side's own model, from the exported files. */
async function ownIteration(job: BareJob, inputs: TensorMap): Promise<() => Promise<unknown>> {
  if (job.engine === 'onnxruntime') {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(job.onnxPath!, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: job.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      enableCpuMemArena: true,
      enableMemPattern: true,
      executionProviders: ['cpu'],
    });
    return ortIteration(session, inputs);
  }
  const tf = await import('@tensorflow/tfjs');
  if (job.engine === 'tfjs-wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount(job.threads);
    await tf.setBackend('wasm');
  } else if (job.engine === 'tfjs-node') {
    const specifier: string = '@tensorflow/tfjs-node';
    await import(specifier);
    await tf.setBackend('tensorflow');
  } else {
    await tf.setBackend('cpu');
  }
  const weights = loadTensors(job.weightsPath!).tensors;
  const builders = {
    cnn: async () => (await import('../harness/engines/tfjs/cnn.js')).buildCnn,
    rnn: async () => (await import('../harness/engines/tfjs/rnn.js')).buildRnn,
    transformer: async () => (await import('../harness/engines/tfjs/transformer.js')).buildTransformer,
  };
  if (job.family === 'decoder') throw new Error('bare-loop times inference; the decoder family generates (--tasks generate)');
  return tfjsIteration(tf, (await builders[job.family]())(weights, job.params), inputs);
}

/** The plain timed loop. */
async function bareLoop(iteration: () => Promise<unknown>, samples: number): Promise<number[]> {
  const clock = process.hrtime.bigint;
  const samplesNs = new Array<number>(samples);
  for (let i = 0; i < samples; i++) {
    const t0 = clock();
    await iteration();
    samplesNs[i] = Number(clock() - t0);
  }
  return samplesNs;
}

/**
 * Same-process mode: harness blocks (the engine's BuiltModel.run under harness/worker/measure.ts)
 * alternating with bare blocks, both on the one model the engine built, so neither the process
 * nor the model's place in memory differs between the two sides: only the loop around the forward pass.
 */
async function blocks(job: BareJob, inputs: TensorMap): Promise<Pick<BareResult, 'harnessBlocksNs' | 'bareBlocksNs' | 'warmupIters'>> {
  const runtime = await getNodeEngine(job.engine).load();
  const weights = loadTensors(job.weightsPath!).tensors;
  const model = await runtime.build({
    family: job.family,
    params: job.params,
    batchSize: inputs.values().next().value!.shape[0]!,
    weights,
    device: 'cpu',
    mode: job.mode!,
    threads: job.threads,
  });
  const native = model.native;
  if (!native) throw new Error(`${job.engine}: its BuiltModel exposes no framework objects (native) for a bare loop`);
  const iteration =
    native.kind === 'onnxruntime' ? await ortIteration(native.session as Session, inputs) : tfjsIteration(native.tf as Tf, native.model as TfjsModel, inputs);
  const warmupIters = await warmUp(iteration, job.warmupMs);
  const harnessBlocksNs: number[] = [];
  const bareBlocksNs: number[] = [];
  let n = job.samples;
  for (let b = 0; b < job.blocks!; b++) {
    const harness = async (): Promise<void> => {
      const r = await measure(() => model.run(inputs), BLOCK_MEASURE);
      n = r.samplesNs.length;
      harnessBlocksNs.push(medianCi(r.samplesNs).medianNs);
    };
    const bare = async (): Promise<void> => {
      bareBlocksNs.push(medianCi(await bareLoop(iteration, n)).medianNs);
    };
    if (b % 2 === 0) {
      await harness();
      await bare();
    } else {
      await bare();
      await harness();
    }
  }
  return { harnessBlocksNs, bareBlocksNs, warmupIters };
}

/** Runs `iteration` for at least `ms` and 3 iterations; returns the count. */
async function warmUp(iteration: () => Promise<unknown>, ms: number): Promise<number> {
  let iters = 0;
  const start = process.hrtime.bigint();
  while (iters < 3 || Number(process.hrtime.bigint() - start) < ms * 1e6) {
    await iteration();
    iters++;
  }
  return iters;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as BareJob;
  const inputs = loadTensors(job.inputsPath).tensors;
  let result: BareResult;
  if (job.blocks) {
    result = { samplesNs: [], ...(await blocks(job, inputs)) };
  } else {
    const iteration = await ownIteration(job, inputs);
    const warmupIters = await warmUp(iteration, job.warmupMs);
    result = { samplesNs: await bareLoop(iteration, job.samples), warmupIters };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Framework thread pools may keep the process alive; the result is written.
  process.exit(0);
}

await main();

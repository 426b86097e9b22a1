import net from 'node:net';
import readline from 'node:readline';
import { loadTensors, saveTensors, type Tensor, type TensorMap } from '../../workloads/safetensors.js';
import { measure, measurePasses, type PassSettings } from './measure.js';
import { FromWorker, PROTOCOL_VERSION, ToWorkerSchema, TRAIN_PARITY_TENSORS, type Phase, type ToWorker } from './protocol.js';
import { getNodeEngine } from '../engines/registry.js';
import { EngineUnavailable, type BuildRequest, type EngineRuntime, type EngineSettings, type GenerateRequest, type GenerationStep } from '../engines/types.js';
import { faultApplies, maybeFault, parseFault } from './fault.js';
import { peakHostBytes, watchWasmGrowth } from './memory.js';

/**
 * The Node worker: one process per cell (or per probe). Speaks the protocol on fd 3, leaving
 * stdout/stderr to the frameworks' own logging.
 */
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
const lines = readline.createInterface({ input: channel })[Symbol.asyncIterator]();
// The orchestrator is gone (even killed with kill -9) when its end of the channel closes: nobody
// will read this cell, and a worker left running would skew the cells of a resumed run.
channel.on('end', () => process.exit());
let phase: Phase = 'start';
const fault = parseFault(process.env.FWBENCH_FAULT);
const wasmGrowthFailure = watchWasmGrowth();

function send(msg: FromWorker): void {
  channel.write(`${JSON.stringify(msg)}\n`);
}

const writeRaw = (text: string): Promise<void> => new Promise((done) => channel.write(text, () => done()));

/** Announces a phase (so a worker that dies silently still leaves it) and fires an injected test fault there. */
async function enter(next: Phase, engine: string, batchSize?: number): Promise<void> {
  phase = next;
  send({ type: 'phase', phase });
  await maybeFault(fault, { phase, engine, ...(batchSize !== undefined ? { batchSize } : {}), writeRaw });
}

async function receive(): Promise<ToWorker> {
  const next = await lines.next();
  if (next.done) throw new Error('orchestrator closed the channel');
  return ToWorkerSchema.parse(JSON.parse(next.value));
}

async function main(): Promise<void> {
  const first = await receive();
  send({ type: 'hello', protocol: PROTOCOL_VERSION, pid: process.pid, language: 'node', runtime: `node ${process.version}` });
  if (first.type === 'probe') {
    await enter('probe', first.engine);
    const runtime = await getNodeEngine(first.engine).load();
    const p = await runtime.probe();
    send({ type: 'probe-result', version: p.version, devices: p.devices, details: p.details });
    return;
  }
  if (first.type === 'peak') {
    await enter('peak', first.engine);
    const runtime = await getNodeEngine(first.engine).load();
    if (!runtime.peak) throw new Error(`engine '${first.engine}' cannot measure peak figures`);
    const req = { device: first.device, threads: first.threads, gemmN: first.gemmN, copyElements: first.copyElements, maxMs: first.maxMs };
    send({ type: 'peak-result', ...(await runtime.peak(req)) });
    return;
  }
  if (first.type !== 'job') throw new Error(`expected a job or probe message, got '${first.type}'`);
  await runJob(first);
}

type Job = Extract<ToWorker, { type: 'job' }>;

/**
 * What a cell does once built, inference or training: its parity phase (first run, checked by the
 * orchestrator) and the iteration its timed loop repeats; a stream cell also has its warm passes.
 */
interface Subject {
  settings: EngineSettings;
  /** The first run(s) after build, with what the orchestrator checks; sends its message (a stream cell: its cold pass). */
  parity(): Promise<void>;
  /** Stream and generation cells, after `continue`: the warm passes over the stream or the warm generations (phase measure); sends `passes`. */
  warmPasses?(): Promise<void>;
  /** One iteration of the timed loop (absent: a generation cell, whose warm generations are its samples). */
  iterate?(): Promise<unknown>;
  dispose(): Promise<void>;
}

/** A stream cell's batches as read from its file (harness/worker/protocol.ts, job.stream). */
interface StreamInputs {
  /** Batch i's `tokens` and `lengths`, one map per batch (made once: engines keep what they derive from a map). */
  batches: TensorMap[];
  /** The fixed-shape baseline's `tokens` and `lengths` (the file's `fixed.*`), read when the timed loop needs them. */
  fixed(): TensorMap;
  /** The job's pass counts with its measure settings' times. */
  passes: PassSettings;
}

/** Reads a stream file: `tokens.<i>` I32 [rows, L_i] and `lengths.<i>` I32 [rows] for i < batches, and `fixed.*` on demand. */
function readStream(job: Job): StreamInputs {
  const { stream, measure: m } = job;
  if (!stream) throw new Error("a stream cell (shapes stream) needs the job's `stream` field");
  const tensors = loadTensors(stream.path).tensors;
  const pair = (tokensName: string, lengthsName: string): TensorMap => {
    const get = (name: string): Tensor => {
      const t = tensors.get(name);
      if (!t || t.dtype !== 'I32') throw new Error(`${stream.path}: expected an I32 tensor '${name}'`);
      return t;
    };
    const tokens = get(tokensName);
    const lengths = get(lengthsName);
    if (tokens.shape.length !== 2 || lengths.shape.length !== 1 || lengths.shape[0] !== tokens.shape[0]) {
      throw new Error(`${stream.path}: '${tokensName}' [${tokens.shape}] and '${lengthsName}' [${lengths.shape}] are not [rows, length] and [rows]`);
    }
    return new Map([
      ['tokens', tokens],
      ['lengths', lengths],
    ]);
  };
  const batches = Array.from({ length: stream.batches }, (_, i) => pair(`tokens.${i}`, `lengths.${i}`));
  let fixed: TensorMap | undefined;
  return {
    batches,
    fixed: () => (fixed ??= pair('fixed.tokens', 'fixed.lengths')),
    passes: { minPasses: stream.minPasses, maxPasses: stream.maxPasses, minTimeMs: m.minTimeMs, maxTimeMs: m.maxTimeMs },
  };
}

/** The cold start's segments, each on this process's monotonic clock. */
const msSince = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;

/** A job: load, build, parity, then (on the verdict) warm-up and the timed loop, then memory; the same steps for inference and training. */
async function runJob(first: Job): Promise<void> {
  const { cell } = first;
  const at = (p: Phase): Promise<void> => enter(p, cell.engine, cell.batchSize);
  const training = cell.task === 'training' ? first.training : undefined;
  if (cell.task === 'training' && !training) throw new Error('a training job needs its `training` fields (recipe, labelsPath, parityPath)');
  const streamed = cell.shapes === 'stream';
  if (streamed && training) throw new Error('a shape stream times inference: a training cell runs one fixed shape');
  const generating = cell.task === 'generate' ? { ...first.generate, ...cell.generation } : undefined;
  if (generating && !(first.generate && cell.generation))
    throw new Error("a generation job needs the cell's `generation` (prompt length, new tokens, cache) and the job's `generate` (prompt and logits files)");
  await at('load');
  let t = process.hrtime.bigint();
  const runtime = await getNodeEngine(cell.engine).load();
  await runtime.init?.({ device: cell.device, threads: cell.threads });
  const importMs = msSince(t);
  t = process.hrtime.bigint();
  const weights = loadTensors(first.weightsPath).tensors;
  const inputs = loadTensors(first.inputsPath).tensors;
  const labels = training ? readLabels(training.labelsPath) : undefined;
  const stream = streamed ? readStream(first) : undefined;
  const weightsMs = msSince(t);
  await at('build');
  const req: BuildRequest = {
    family: cell.family,
    params: cell.params,
    batchSize: cell.batchSize,
    weights,
    device: cell.device,
    mode: cell.mode,
    threads: cell.threads,
    ...(streamed ? { stream: true } : {}),
    ...(cell.precision && cell.precision !== 'fp32' ? { precision: cell.precision } : {}),
    // FWBENCH_FAULT=precision-fallback@build[:engine]: the engine builds without its precision mechanism (tests only).
    ...(cell.precision &&
    cell.precision !== 'fp32' &&
    fault?.kind === 'precision-fallback' &&
    faultApplies(fault, { phase: 'build', engine: cell.engine, batchSize: cell.batchSize })
      ? { plantPrecisionFallback: true }
      : {}),
  };
  t = process.hrtime.bigint();
  const subject = training
    ? await trainingSubject(cell.engine, runtime, req, training, inputs, labels!)
    : generating
      ? await generateSubject(cell.engine, runtime, { ...req, generation: cell.generation! }, first.generate!, first.measure, plantedSkip(cell))
      : await inferenceSubject(runtime, req, inputs, stream);
  const buildMs = msSince(t);
  weights.clear();
  // No compile segment: ORT optimizes the graph inside session creation (build), TensorFlow.js runs eagerly.
  send({ type: 'built', phases: { importMs, weightsMs, buildMs }, settings: subject.settings });
  await at('parity');
  await subject.parity();
  const verdict = await receive();
  if (verdict.type === 'continue') {
    if (subject.warmPasses) {
      await at('measure');
      await subject.warmPasses();
    }
    const iterate = subject.iterate;
    if (iterate) {
      await at('warmup');
      const r = await measure(iterate, first.measure, process.hrtime.bigint, () => at('measure'));
      send({ type: 'samples', ...r });
    }
  }
  await subject.dispose();
  await at('memory');
  send({ type: 'memory', peakHostBytes: peakHostBytes() });
}

/**
 * Inference: one forward pass with readback; parity sends its logits. A stream cell's parity is
 * its cold pass (every batch once, each timed with its readback: `stream-parity`), its warm passes
 * follow a `continue` (`passes`), and its timed loop runs the fixed-shape baseline.
 */
async function inferenceSubject(runtime: EngineRuntime, req: BuildRequest, inputs: TensorMap, stream?: StreamInputs): Promise<Subject> {
  const model = await runtime.build(req);
  if (!stream) {
    return {
      settings: model.settings,
      async parity() {
        const t = process.hrtime.bigint();
        const out = await model.run(inputs);
        const precision = model.precisionUsed?.();
        send({
          type: 'parity',
          firstRunMs: msSince(t),
          shape: [req.batchSize, out.length / req.batchSize],
          values: Array.from(out),
          ...(precision ? { precision } : {}),
        });
      },
      iterate: () => model.run(inputs),
      dispose: () => model.dispose(),
    };
  }
  const compiles = (): number | null => model.compileCount?.() ?? null;
  const { batches, passes } = stream;
  return {
    settings: model.settings,
    async parity() {
      const passNs: number[] = [];
      const outputs: number[][] = [];
      for (const batch of batches) {
        const t = process.hrtime.bigint();
        const out = await model.run(batch);
        passNs.push(Number(process.hrtime.bigint() - t));
        outputs.push(Array.from(out));
      }
      send({ type: 'stream-parity', passNs, outputs, compiles: compiles() });
    },
    async warmPasses() {
      // The baseline's inputs are checked before the passes spend their time.
      stream.fixed();
      const r = await measurePasses((i) => model.run(batches[i]!), batches.length, passes);
      send({ type: 'passes', passesNs: r.passesNs, compiles: compiles(), ...(r.load ? { load: r.load } : {}) });
    },
    iterate: () => model.run(stream.fixed()),
    dispose: () => model.dispose(),
  };
}

/**
 * Generation: the cold generation is the parity run (each step timed with the readback of its
 * token ids; every step's logits written to the job's logitsPath; `generate-parity`), and after a
 * `continue` the warm generations are the samples (`passes`: one pass = one generation, its steps
 * timed one by one). Step 0 is the prefill, every later step a decode.
 */
async function generateSubject(
  engine: string,
  runtime: EngineRuntime,
  req: GenerateRequest,
  files: NonNullable<Job['generate']>,
  settings: Job['measure'],
  skip = false,
): Promise<Subject> {
  if (!runtime.buildGenerator) throw new Error(`engine '${engine}' cannot generate: its runtime has no buildGenerator`);
  const t = loadTensors(files.promptPath).tensors.get('tokens');
  if (!t || t.dtype !== 'I32' || t.shape.length !== 2 || t.shape[0] !== req.batchSize || t.shape[1] !== req.generation.promptLength)
    throw new Error(`${files.promptPath}: expected an I32 tensor 'tokens' [${req.batchSize}, ${req.generation.promptLength}]`);
  const prompt: TensorMap = new Map([['tokens', t]]);
  const gen = await runtime.buildGenerator(req);
  const steps = req.generation.newTokens;
  const step = (i: number, wantLogits: boolean): Promise<GenerationStep> => (i === 0 ? gen.prefill(prompt, wantLogits) : gen.decode(wantLogits));
  const compiles = (): number | null => gen.compileCount?.() ?? null;
  return {
    settings: gen.settings,
    async parity() {
      const passNs: number[] = [];
      const chosen: Int32Array[] = [];
      const logits: Float32Array[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = process.hrtime.bigint();
        const s = await step(i, true);
        passNs.push(Number(process.hrtime.bigint() - t0));
        if (!s.logits) throw new Error(`${engine}: generation step ${i} returned no logits though the parity run asked for them`);
        chosen.push(s.tokens);
        logits.push(s.logits);
        // FWBENCH_FAULT=generation-skip@parity (tests only): a step made and dropped, as a loop off by one would.
        if (skip && i === 1) await step(2, false);
      }
      const vocab = logits[0]!.length / req.batchSize;
      const all = new Float32Array(steps * req.batchSize * vocab);
      logits.forEach((l, i) => all.set(l, i * l.length));
      saveTensors(files.logitsPath, new Map([['logits', { dtype: 'F32', shape: [steps, req.batchSize, vocab], data: all }]]), { engine, family: req.family });
      const tokens = Array.from({ length: req.batchSize }, (_, r) => chosen.map((c) => c[r]!));
      send({ type: 'generate-parity', passNs, tokens, compiles: compiles() });
    },
    async warmPasses() {
      const r = await measurePasses((i) => step(i, false), steps, {
        minPasses: files.minPasses,
        maxPasses: files.maxPasses,
        minTimeMs: settings.minTimeMs,
        maxTimeMs: settings.maxTimeMs,
      });
      send({ type: 'passes', passesNs: r.passesNs, compiles: compiles(), ...(r.load ? { load: r.load } : {}) });
    },
    dispose: () => gen.dispose(),
  };
}

/** Whether FWBENCH_FAULT plants a dropped step in this cell's parity generation (tests only). */
const plantedSkip = (cell: Job['cell']): boolean =>
  fault?.kind === 'generation-skip' && faultApplies(fault, { phase: 'parity', engine: cell.engine, batchSize: cell.batchSize });

/** The batch's labels (`labels` I32 [batch]). */
function readLabels(path: string): Int32Array {
  const t = loadTensors(path).tensors.get('labels');
  if (!t || t.dtype !== 'I32') throw new Error(`${path}: expected an I32 tensor 'labels'`);
  return t.data as Int32Array;
}

/**
 * Training: one step on the fixed batch. Parity runs the recipe's paritySteps steps (the first
 * timed: firstStepMs), writes each step's gradients and the state after it to the job's
 * parityPath, and sends the losses.
 */
async function trainingSubject(
  engine: string,
  runtime: EngineRuntime,
  req: BuildRequest,
  training: NonNullable<Job['training']>,
  inputs: TensorMap,
  labels: Int32Array,
): Promise<Subject> {
  if (!runtime.buildTrainer) throw new Error(`engine '${engine}' cannot train: its runtime has no buildTrainer`);
  const { learningRate, momentum, weightDecay, batchNormMomentum, paritySteps } = training;
  const trainer = await runtime.buildTrainer({ ...req, recipe: { learningRate, momentum, weightDecay, batchNormMomentum, paritySteps }, inputs, labels });
  return {
    settings: trainer.settings,
    async parity() {
      const tensors: TensorMap = new Map();
      const put = (prefix: string, map: TensorMap): void => {
        for (const [name, t] of map) tensors.set(`${prefix}${name}`, t);
      };
      const losses: number[] = [];
      let firstStepMs = 0;
      // Every parity step's gradients and the state after it: the orchestrator replays the
      // optimizer on them (harness/stats/training-parity.ts).
      for (let k = 1; k <= paritySteps; k++) {
        const t = process.hrtime.bigint();
        const step = await trainer.step(true);
        if (k === 1) firstStepMs = msSince(t);
        if (!step.grads) throw new Error(`the trainer returned no gradients for parity step ${k}`);
        losses.push(step.loss);
        put(TRAIN_PARITY_TENSORS.grad(k), step.grads);
        put(TRAIN_PARITY_TENSORS.state(k), await trainer.state());
      }
      saveTensors(training.parityPath, tensors, { engine, family: req.family, steps: String(paritySteps) });
      send({ type: 'train-parity', firstStepMs, losses });
    },
    iterate: () => trainer.step(false),
    dispose: () => trainer.dispose(),
  };
}

main()
  .then(() => send({ type: 'done' }))
  .catch((e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    const unavailable = err instanceof EngineUnavailable;
    // The class name says what kind of failure it was (RangeError, a framework's OOM error...).
    const grew = wasmGrowthFailure();
    const message = `${unavailable || err.name === 'Error' ? err.message : `${err.name}: ${err.message}`}${grew ? `, after ${grew}` : ''}`;
    send({ type: 'error', phase, message, ...(err.stack ? { stack: err.stack } : {}), ...(unavailable ? { unavailable: true, fix: err.fix } : {}) });
    process.exitCode = unavailable ? 0 : 1;
  })
  .finally(() => {
    channel.end();
    // Frameworks may keep handles (thread pools, timers) alive; the protocol is complete.
    channel.on('close', () => process.exit());
  });

import type { Materialized } from '../../workloads/materialize.js';
import type { TensorMap } from '../../workloads/safetensors.js';
import type { TrainingRecipe } from '../../workloads/training.js';
import type { Generation } from '../../workloads/generate.js';
import type { Precision, ReducedPrecision } from '../../workloads/precision.js';
import type { FamilyName, Params, Task, WorkloadFamily } from '../../workloads/types.js';

/** Engine ids: one per (framework, backend) pair, so results never mix backends. */
export const ENGINE_IDS = ['onnxruntime', 'tfjs-node', 'tfjs-node-gpu', 'tfjs-wasm', 'tfjs-cpu', 'torch', 'tensorflow'] as const;
/** An engine id. */
export type EngineId = (typeof ENGINE_IDS)[number];

/** Devices a cell can ask for. */
export const DEVICES = ['cpu', 'cuda'] as const;
/** A device kind. */
export type Device = (typeof DEVICES)[number];

/** Effective settings an engine reports for a built model (threads, providers, levels...). */
export type EngineSettings = Record<string, string | number | boolean>;

/** What an engine needs to build one model instance inside a worker process. */
export interface BuildRequest {
  /** Workload family. */
  family: FamilyName;
  /** Resolved workload parameters. */
  params: Params;
  /** Batch size the model will be run with. */
  batchSize: number;
  /** Canonical weights (see workloads/ for names and layouts). */
  weights: TensorMap;
  /** Device to run on. */
  device: Device;
  /** Execution mode (engine-specific, e.g. ORT graph optimization level). */
  mode: string;
  /** Intra-op threads requested (the engine reports what it actually uses). */
  threads: number;
  /**
   * Build for a shape stream (workloads/shapes.ts): `run` then gets `tokens` I32 [batch, L] with any
   * L up to the preset's seq, and `lengths` I32 [batch]; a row's positions at or beyond its length
   * are padding and must not change its logits (transformer: masked attention keys; rnn: the
   * output of the row's last real step). Absent: one fixed shape, no `lengths` (unchanged models).
   */
  stream?: boolean;
  /**
   * The number format to compute in (workloads/precision.ts; absent = fp32). The engine applies its
   * declared mechanism (EngineDescriptor.precisions) and says what it observed in
   * BuiltModel.precisionUsed; it never falls back to fp32 silently.
   */
  precision?: Precision;
  /**
   * Test-only (FWBENCH_FAULT=precision-fallback@build): build as if `precision` were fp32, without
   * its mechanism, and report precisionUsed from what the model really does; never set by a run.
   */
  plantPrecisionFallback?: boolean;
}

/**
 * What an engine needs to build a generator (task `generate`, the decoder family; workloads/
 * decoder.ts has the math, workloads/generate.ts the task): the model's request plus the
 * generation it runs. `cache` `kv` keeps each layer's keys and values of every position so far
 * the way the framework's users do (the mode decides: a growing cache, or one preallocated for
 * promptLength + newTokens positions so a compiled graph keeps its shape); `none` recomputes the
 * whole sequence so far at every step and takes its last position's logits.
 */
export interface GenerateRequest extends BuildRequest {
  generation: Generation;
}

/** One step of a greedy generation, read back to the host. */
export interface GenerationStep {
  /** The token chosen for each row (argmax of the step's logits, computed by the framework). */
  tokens: Int32Array;
  /** The step's logits, row-major [batch, vocab], when asked for (the cold generation's parity). */
  logits?: Float32Array;
}

/**
 * A decoder ready to generate (the Node twin of the Python runners' generators). The worker's
 * one loop (harness/worker/node-worker.ts) times each call: `prefill` is step 0, `decode` each
 * later step; the generator keeps the cache and the last chosen tokens between calls itself.
 */
export interface BuiltGenerator {
  /** Effective settings read back from the framework where it can tell. */
  settings: EngineSettings;
  /** Starts a generation: forgets any earlier one, runs the prompts (`tokens` I32 [batch, promptLength]) and returns the first new tokens. */
  prefill(prompt: TensorMap, wantLogits: boolean): Promise<GenerationStep>;
  /** One more step: feeds the tokens chosen last and returns the next ones. */
  decode(wantLogits: boolean): Promise<GenerationStep>;
  /** As BuiltModel.compileCount. */
  compileCount?(): number | null;
  /** Releases framework resources. */
  dispose(): Promise<void>;
}

/** What a worker observed about the precision a model really computes in, from the framework's own dtypes. */
export interface PrecisionUsed {
  /** The precision the evidence shows (a cell that asked for another fails). */
  used: Precision;
  /** What was looked at, in one line: e.g. `logits dtype bfloat16 under autocast; 4 of 4 Linear outputs bfloat16`. */
  evidence: string;
}

/** A model ready to run: one call = one forward pass including readback to host memory. */
export interface BuiltModel {
  /** Effective settings read back from the framework where it can tell. */
  settings: EngineSettings;
  /** Runs one forward pass on canonical inputs (`images` NCHW F32 or `tokens` I32) and returns the logits, row-major [batch, classes]. */
  run(inputs: TensorMap): Promise<Float32Array>;
  /** Releases framework resources. */
  dispose(): Promise<void>;
  /**
   * How many times the framework has compiled or traced this model so far, by its own count
   * (ONNX Runtime: sessions created), or null for a mode that compiles nothing; stream cells report
   * it after their cold pass and after their warm passes. Absent = null.
   */
  compileCount?(): number | null;
  /**
   * The precision the model really computes in, observed from the framework (output, weight or
   * kernel dtypes, quantized op counts) after the parity run; required for a reduced precision.
   */
  precisionUsed?(): PrecisionUsed;
  /**
   * The framework's own objects behind `run`: bench/bare-loop.ts times a loop written directly
   * against them on the very model the harness times (the Python runners' models expose `fn`
   * the same way). Never used by the harness itself.
   */
  native?: { kind: 'onnxruntime'; session: unknown } | { kind: 'tfjs'; tf: unknown; model: unknown };
}

/** What an engine needs to build a trainer: the model's request plus the recipe and the batch it trains on. */
export interface TrainRequest extends BuildRequest {
  /** The step's hyperparameters (workloads/training.ts TRAINING, as the job carries them). */
  recipe: TrainingRecipe;
  /** The batch's canonical inputs (`images` NCHW F32 or `tokens` I32). */
  inputs: TensorMap;
  /** The batch's labels, one class index per sample. */
  labels: Int32Array;
}

/** A model ready to train on one fixed batch (the Node twin of the Python runners' trainers). */
export interface BuiltTrainer {
  /** Effective settings read back from the framework where it can tell. */
  settings: EngineSettings;
  /**
   * One training step on the batch: forward, loss, backward, optimizer update; resolves once the
   * update is done and the loss is read back to the host. With `wantGrads`, also the gradient of
   * every trainable tensor, named as `state` names them.
   */
  step(wantGrads: boolean): Promise<{ loss: number; grads?: TensorMap }>;
  /** Every tensor of the model's state (weights and normalization statistics), named `<keras layer>/<index>` in set_weights order. */
  state(): Promise<TensorMap>;
  /** Releases framework resources. */
  dispose(): Promise<void>;
}

/** What an engine says about itself when probed inside a worker. */
export interface ProbeResult {
  /** Framework version, e.g. `1.30.0`. */
  version: string;
  /** Devices it can run on here. */
  devices: Device[];
  /** Extra facts (library origin, providers, backend flags). */
  details: Record<string, string>;
}

/** Thrown by probe/build when an engine cannot run here; carries the fix. */
export class EngineUnavailable extends Error {
  override name = 'EngineUnavailable';
  constructor(
    /** Exact reason. */
    message: string,
    /** The command or step that fixes it. */
    readonly fix: string,
  ) {
    super(message);
  }
}

/** Worker-side implementation of an engine (loaded only inside worker processes). */
export interface EngineRuntime {
  /** Checks the framework loads here and which devices it can use; throws EngineUnavailable. */
  probe(): Promise<ProbeResult>;
  /**
   * Initialises the framework's backend for a cell before its weights are read (TensorFlow.js:
   * registers the backend with its thread count and waits until it is ready), so the cold start
   * counts it with the framework's import, not with the build; optional.
   */
  init?(req: Pick<BuildRequest, 'device' | 'threads'>): Promise<void>;
  /** Builds the model in the framework's native idiom from canonical weights. */
  build(req: BuildRequest): Promise<BuiltModel>;
  /** Builds the model for training (engines that train; see EngineDescriptor.unsupported). */
  buildTrainer?(req: TrainRequest): Promise<BuiltTrainer>;
  /** Builds a generator (engines that generate; see EngineDescriptor.unsupported). */
  buildGenerator?(req: GenerateRequest): Promise<BuiltGenerator>;
  /** Measures the achievable GEMM rate and copy bandwidth through this framework (`fwbench peak`); optional. */
  peak?(req: PeakRequest): Promise<PeakResult>;
}

/** A `peak` job: GEMM size, copy size, device, threads and time budget per kernel. */
export interface PeakRequest {
  device: Device;
  threads: number;
  /** C[n,n] = A[n,n] x B[n,n]. */
  gemmN: number;
  /** Float32 elements copied per copy call. */
  copyElements: number;
  /** Time budget per kernel (ms). */
  maxMs: number;
}

/** What one engine measured: the GEMM rate (2n^3/median) and the copy bandwidth (8 bytes per element / median). */
export interface PeakResult {
  gemmN: number;
  gemmMedianMs: number;
  gemmGflops: number;
  copyBytes: number;
  copyMedianMs: number;
  copyGBps: number;
  details: Record<string, string>;
}

/** How an engine runs one reduced precision, and where. */
export interface PrecisionWay {
  /** What the engine does, as run.json and the reports name it: e.g. `torch.autocast('cpu', dtype=torch.bfloat16)`. */
  mechanism: string;
  /** Devices it runs on. */
  devices: Device[];
  /** Families it applies to (absent: every family). */
  families?: FamilyName[];
  /** Modes it works in (absent: every mode). */
  modes?: string[];
  /** Why it does not run outside those devices, families and modes (the skipped cells' reason). */
  limits?: string;
}

/** Orchestrator-side description of an engine (cheap: no framework is loaded). */
interface EngineDescriptorBase {
  /** Engine id. */
  id: EngineId;
  /** Framework name for reports. */
  framework: string;
  /** Devices it supports in principle. */
  devices: Device[];
  /** Execution modes; the first is the default. */
  modes: string[];
  /** Modes a run gets when `--modes` is not given (default: the first mode only). */
  defaultModes?: string[];
  /** Modes a shape-stream run gets when `--modes` is not given (default: defaultModes): the ways the framework's users compile for changing shapes. */
  streamModes?: string[];
  /** Modes a generation run gets when `--modes` is not given (default: defaultModes, else the first mode). */
  generateModes?: string[];
  /**
   * The tasks (beyond inference) an engine or some of its modes cannot do, with the exact reason
   * the cell is skipped: `{ training: { '*': why } }` for the whole engine, or keyed by mode.
   */
  unsupported?: Partial<Record<Task, Record<string, string>>>;
  /**
   * How the engine runs each reduced precision (workloads/precision.ts): a way (mechanism and
   * where it applies) or, as a string, the exact reason it cannot. Every reduced precision is
   * declared, so every skipped cell says why.
   */
  precisions: Record<ReducedPrecision, PrecisionWay | string>;
  /**
   * How the engine names and shapes its weights, gradients and state in a training cell's parity
   * file: canonical (absent; PyTorch's names) or `keras` (`<layer>/<index>` as harness/engines/keras-layout.ts maps them).
   */
  stateLayout?: 'keras';
  /** False for an engine the default run leaves out (it must be asked for with --engines). */
  inDefaultRun?: false;
  /** One line for `fwbench list`. */
  description: string;
  /**
   * Writes (cached) the workload's weights in the engine's native layout from the canonical ones
   * and returns the file's path, sent to the worker as `nativeWeightsPath`; for engines whose
   * layout mapping lives on the orchestrator's side (the Keras mapping shared with TF.js).
   */
  nativeWeights?(family: WorkloadFamily, params: Params, m: Materialized): string | undefined;
}

/** An engine run by the Node worker (harness/worker/node-worker.ts). */
export interface NodeEngineDescriptor extends EngineDescriptorBase {
  /** Language of the worker that runs it. */
  language: 'node';
  /** Loads the worker-side runtime (dynamic import, so the orchestrator never loads frameworks). */
  load(): Promise<EngineRuntime>;
}

/** An engine run by the Python runner (python-runners/fwbench_runner, one package per framework). */
export interface PythonEngineDescriptor extends EngineDescriptorBase {
  /** Language of the worker that runs it. */
  language: 'python';
}

/** Orchestrator-side description of an engine; `language` says which worker runs it. */
export type EngineDescriptor = NodeEngineDescriptor | PythonEngineDescriptor;

import { z } from 'zod';
import { CACHES, FAMILY_NAMES, PADDINGS, PRECISIONS, TASKS } from '../../workloads/index.js';
import { DEVICES } from '../engines/types.js';

/**
 * The worker protocol: line-delimited JSON on file descriptor 3 (stdout and stderr stay free for
 * framework logs). The same messages are spoken by the Node worker and the Python runner; the
 * JSON Schema published in results/schema/protocol.schema.json is generated from these
 * definitions. Order: orchestrator sends `job` (or `probe`); worker answers `hello`, then
 * `built` -> `parity`; orchestrator answers `continue` or `stop`; worker sends `samples` ->
 * `memory` -> `done`. Any failure is an `error` message naming the phase. The worker announces
 * each phase as it enters it (`phase`), so a worker that dies without a word (a signal, the OOM
 * killer, a hang) still leaves the phase it was in.
 */
export const PROTOCOL_VERSION = 1;

/** The phases of a worker, in order; `parity` is the first run whose output is checked, `warmup` and `measure` the two halves of the timed loop. */
export const PHASES = ['start', 'probe', 'peak', 'load', 'build', 'parity', 'warmup', 'measure', 'memory'] as const;
/** A worker phase. */
export type Phase = (typeof PHASES)[number];
const PhaseSchema = z.enum(PHASES);

const Num = z.number();

/** Measurement settings for the timed loop inside the worker. */
export const MeasureSettingsSchema = z.object({
  /** Warm-up: at least this many iterations. */
  warmupMinIters: z.number().int().min(1),
  /** Warm-up: at least this long (ms; absent = 0) before it may stop as stable or at warmupMaxIters: JIT-compiled engines keep speeding up for a while after three iterations look alike. */
  warmupMinMs: Num.nonnegative().optional(),
  /** Warm-up: stop after this many iterations even if not stable. */
  warmupMaxIters: z.number().int().min(1),
  /** Warm-up: stop after this much time even if not stable (ms). */
  warmupMaxMs: Num.positive(),
  /** Warm-up is stable when the last `warmupWindow` times are within this fraction of their median. */
  warmupTolerance: Num.positive(),
  /** Size of the stability window. */
  warmupWindow: z.number().int().min(2),
  /** Timed loop: at least this many samples... */
  minSamples: z.number().int().min(1),
  /** ...and at least this much time (ms)... */
  minTimeMs: Num.nonnegative(),
  /** ...but never longer than this (ms)... */
  maxTimeMs: Num.positive(),
  /** ...nor more samples than this. */
  maxSamples: z.number().int().min(1),
  /** Stop once the 95 % interval of the median has half-width <= this fraction of the median (0.01 = ±1 %; 0 = run to a cap). */
  targetInterval: Num.nonnegative(),
});
/** Measurement settings. */
export type MeasureSettings = z.infer<typeof MeasureSettingsSchema>;

/** The cell a worker runs. */
export const CellSpecSchema = z.object({
  engine: z.string(),
  mode: z.string(),
  device: z.enum(DEVICES),
  family: z.enum(FAMILY_NAMES),
  params: z.record(z.string(), z.union([Num, z.string(), z.array(Num)])),
  batchSize: z.number().int().min(1),
  threads: z.number().int().min(1),
  /** What the cell does with the model (absent = inference, as every older job). */
  task: z.enum(TASKS).optional(),
  /** A shape-stream cell (absent = one fixed shape, as every older job): the job's `stream` holds its batches. */
  shapes: z.literal('stream').optional(),
  /** A stream cell's padding strategy (workloads/shapes.ts PADDINGS). */
  padding: z.enum(PADDINGS).optional(),
  /** The number format to compute in (workloads/precision.ts; absent = fp32, as every older job). */
  precision: z.enum(PRECISIONS).optional(),
  /** A generation cell (task `generate`; workloads/generate.ts): its prompt length, the tokens it generates (the prefill's included) and its cache. */
  generation: z.object({ promptLength: z.number().int().min(1), newTokens: z.number().int().min(1), cache: z.enum(CACHES) }).optional(),
});
/** Cell spec as sent to a worker. */
export type CellSpec = z.infer<typeof CellSpecSchema>;

/** What a `peak` job asks of an engine (see harness/diagnostics/peak.ts). */
export const PeakRequestShape = {
  engine: z.string(),
  device: z.enum(DEVICES),
  threads: z.number().int().min(1),
  /** GEMM size: C[n,n] = A[n,n] x B[n,n], 2n^3 FLOPs per call. */
  gemmN: z.number().int().min(1),
  /** Elements of the float32 array copied (STREAM-style: read once, written once). */
  copyElements: z.number().int().min(1),
  /** Time budget per kernel (ms). */
  maxMs: Num.positive(),
};
/** What an engine measured for a `peak` job. */
export const PeakResultShape = {
  gemmN: z.number().int(),
  /** Median time of one GEMM including the wait for completion (ms). */
  gemmMedianMs: Num,
  /** 2n^3 / median. */
  gemmGflops: Num,
  /** Bytes moved by one copy: 2 x 4 x elements (read + write). */
  copyBytes: Num,
  copyMedianMs: Num,
  /** copyBytes / median, 1e9 bytes/s. */
  copyGBps: Num,
  /** How the kernels were run (op names, threads, backend). */
  details: z.record(z.string(), z.string()),
};

/** Messages from the orchestrator to a worker. */
export const ToWorkerSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('job'),
    protocol: z.literal(PROTOCOL_VERSION),
    cell: CellSpecSchema,
    /** Canonical weights (safetensors). */
    weightsPath: z.string(),
    /** Inputs for this batch size (safetensors). */
    inputsPath: z.string(),
    /** The same weights already in the engine's native layout, for engines whose mapping the orchestrator applies (safetensors). */
    nativeWeightsPath: z.string().optional(),
    measure: MeasureSettingsSchema,
    /** Training cells: how to train (workloads/training.ts TRAINING), the labels and where to write the parity tensors. */
    training: z
      .object({
        learningRate: Num.positive(),
        momentum: Num.nonnegative(),
        weightDecay: Num.nonnegative(),
        batchNormMomentum: Num.positive(),
        paritySteps: z.number().int().min(2),
        /** Labels of the batch (safetensors, `labels` I32 [batch]). */
        labelsPath: z.string(),
        /** Where the worker writes the tensors of its parity steps (TRAIN_PARITY_TENSORS names them). */
        parityPath: z.string(),
        /**
         * Set on the float64 reference job only (torch engine): the parametrisation it reproduces,
         * `torch` (the canonical model) or `keras` (an LSTM's two biases merged into the one Keras
         * trains; BatchNorm's running variance updated with the biased batch variance, as Keras does).
         */
        reference: z.enum(['torch', 'keras']).optional(),
      })
      .optional(),
    /**
     * Shape-stream cells (cell.shapes 'stream'). The model is built for variable shapes (BuildRequest
     * stream): its inputs are `tokens` I32 [batch, L] (any L up to the preset's seq) and `lengths`
     * I32 [batch] (each row's real tokens; positions at or beyond a row's length are padding and
     * must not change its logits). The worker reads `path` (workloads/shapes.ts materializeStream:
     * `tokens.<i>` and `lengths.<i>` for i < batches, and `fixed.tokens` / `fixed.lengths`), prepares
     * every batch outside timing, and then, after `built`:
     * 1. phase parity, the cold pass: each batch once, in order, timed one by one including
     *    readback; sends `stream-parity` with the times, every batch's logits and the compile count;
     * 2. on `continue`, phase measure, the warm passes: the whole stream again, pass after pass,
     *    until at least minPasses passes and measure.minTimeMs, stopping at maxPasses or
     *    measure.maxTimeMs (after one pass at least); sends `passes`;
     * 3. phases warmup and measure again: the usual timed loop on `fixed.*` (every row at the full
     *    length), which sends `samples`: the fixed-shape baseline of the dynamic penalty;
     * then memory and done as any job. The reference job's file (padding `rows`) has no `fixed.*`;
     * it is only asked for its cold pass.
     */
    stream: z
      .object({
        path: z.string(),
        batches: z.number().int().min(1),
        minPasses: z.number().int().min(1),
        maxPasses: z.number().int().min(1),
      })
      .optional(),
    /**
     * Generation cells (cell.task 'generate', cell.generation). The worker builds a generator
     * (BuildRequest.generation), reads the prompts (`promptPath`: `tokens` I32 [batch, promptLength])
     * and, after `built`:
     * 1. phase parity, the cold generation: step 0 the prefill, steps 1..newTokens-1 the decode steps,
     *    each timed including the readback of its token ids; writes every step's logits to
     *    `logitsPath` (`logits` F32 [newTokens, batch, vocab]) and sends `generate-parity` with the
     *    step times, the generated token ids and the compile count;
     * 2. on `continue`, phase measure, the warm generations, one pass each, until at least
     *    minPasses and measure.minTimeMs, stopping at maxPasses or measure.maxTimeMs (after one at
     *    least); sends `passes` (passesNs[g][s]: step s of generation g);
     * then memory and done as any job.
     */
    generate: z
      .object({
        promptPath: z.string(),
        logitsPath: z.string(),
        minPasses: z.number().int().min(1),
        maxPasses: z.number().int().min(1),
      })
      .optional(),
  }),
  z.object({ type: z.literal('probe'), protocol: z.literal(PROTOCOL_VERSION), engine: z.string() }),
  /** Measure this machine's achievable FP32 GEMM rate and memory bandwidth through one engine (`fwbench peak`). */
  z.object({ type: z.literal('peak'), protocol: z.literal(PROTOCOL_VERSION), ...PeakRequestShape }),
  /** Parity passed: measure. */
  z.object({ type: z.literal('continue') }),
  /** Parity failed or only the output was wanted: skip timing, report memory, exit. */
  z.object({ type: z.literal('stop') }),
]);
/** A message to a worker. */
export type ToWorker = z.infer<typeof ToWorkerSchema>;

/**
 * The measured segments of a worker's cold start between its hello and its first run, in order
 * (worker's monotonic clock, ms). This object is their one declaration: results.ts, the reports and
 * the Python runner (through the generated schema, where it is closed to other names) take the
 * names from here.
 */
export const ColdStartPhasesSchema = z.strictObject({
  /** Framework import: Python `import torch` / `import tensorflow` (with Keras); Node the dynamic import of onnxruntime-node or TensorFlow.js and, for TensorFlow.js, the backend's initialisation (`setBackend`, wasm module). */
  importMs: Num.nonnegative(),
  /** Reading the safetensors files (weights, the engine's native-layout weights where it has them, and the small inputs file) into host memory. */
  weightsMs: Num.nonnegative(),
  /** Constructing the model with the weights in it: torch nn.Module + load_state_dict, Keras model + set_weights, TensorFlow.js layers + setWeights, ONNX graph + InferenceSession creation (ORT's graph optimizations run there). */
  buildMs: Num.nonnegative(),
  /** Tracing / compilation, for modes that have one: torchscript trace + freeze, torch.compile's and tf.function's (XLA's) first call on the parity batch. Absent for modes without one. */
  compileMs: Num.nonnegative().optional(),
});
/** The cold-start segments a worker measured. */
export type ColdStartPhases = z.infer<typeof ColdStartPhasesSchema>;
/** Names of the cold-start segments, in the order they happen. */
export const COLD_START_PHASES = Object.keys(ColdStartPhasesSchema.shape) as Array<keyof ColdStartPhases>;

/**
 * The tensors of a training cell's parity file, by name prefix + the engine's own tensor name
 * (canonical names for torch; `<keras layer>/<index>` in set_weights order for the Keras-layout
 * engines): `grad<k>/` the gradient of every trainable tensor at parity step k (1..K), and `step<k>/`
 * every tensor of the model's state (weights and normalization statistics) after step k; the
 * float64 reference also writes `step0/`, its state before the first step (in the Keras
 * parametrisation an LSTM's biases start merged). The Python runner writes the same names.
 */
export const TRAIN_PARITY_TENSORS = { grad: (k: number): string => `grad${k}/`, state: (k: number): string => `step${k}/` } as const;

/** CPU accounting of one timed loop (harness/worker/load.ts, python-runners/fwbench_runner/load.py). */
export const LoadSchema = z.object({
  /** Wall time of the timed loop. */
  wallMs: Num,
  /** CPU time of the worker process in it (user + sys, all threads). */
  ownCpuMs: Num,
  /** Involuntary context switches of the worker in it. */
  involuntarySwitches: Num,
  /** From /proc/stat: the machine's cores, the cores it kept busy on average (the worker included) and those stolen by the hypervisor. */
  machine: z.object({ cores: Num, busyCores: Num, stealCores: Num }).optional(),
});
/** CPU accounting of one timed loop. */
export type Load = z.infer<typeof LoadSchema>;

/** Messages from a worker to the orchestrator. */
export const FromWorkerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), protocol: z.number().int(), pid: z.number().int(), language: z.enum(['node', 'python']), runtime: z.string() }),
  z.object({
    type: z.literal('probe-result'),
    version: z.string(),
    devices: z.array(z.enum(DEVICES)),
    details: z.record(z.string(), z.string()),
  }),
  z.object({ type: z.literal('built'), phases: ColdStartPhasesSchema, settings: z.record(z.string(), z.union([z.string(), Num, z.boolean()])) }),
  /** `firstRunMs`: making the inputs what a user of the framework holds, then the first inference after build (and compile) with readback. */
  z.object({
    type: z.literal('parity'),
    firstRunMs: Num,
    shape: z.array(z.number().int()),
    values: z.array(Num),
    /**
     * The precision the model was observed to compute in and the evidence (BuiltModel.precisionUsed):
     * required when the cell asked for a reduced precision (absent = fp32); a cell whose `used`
     * differs from what it asked for fails, its time never reported.
     */
    precision: z.object({ used: z.enum(PRECISIONS), evidence: z.string() }).optional(),
  }),
  /**
   * A training cell's parity steps: the loss of each (read back after the step's forward pass) and
   * `firstStepMs`, the first step after build including its trace / compilation. The tensors are in
   * the job's `training.parityPath` (TRAIN_PARITY_TENSORS).
   */
  z.object({ type: z.literal('train-parity'), firstStepMs: Num, losses: z.array(Num) }),
  /**
   * A stream cell's cold pass: `passNs[i]` the time of batch i (ns, integers, including readback;
   * compilation of a new shape happens inside it), `outputs[i]` its logits row-major
   * [batch, classes], and `compiles` the framework's own count of compilations / traces so far
   * (torch.compile's unique graphs, tf.function's tracing count, TorchScript traces, ORT sessions
   * created), or null for a mode that compiles nothing (eager).
   */
  z.object({ type: z.literal('stream-parity'), passNs: z.array(Num), outputs: z.array(z.array(Num)), compiles: Num.int().nullable() }),
  /**
   * A generation cell's cold generation: `passNs[s]` the time of step s (ns; step 0 the prefill,
   * each including the readback of its token ids), `tokens[r]` row r's generated token ids (newTokens
   * of them), and `compiles` as in `stream-parity`. Every step's logits are in the job's
   * `generate.logitsPath`.
   */
  z.object({ type: z.literal('generate-parity'), passNs: z.array(Num), tokens: z.array(z.array(Num.int())), compiles: Num.int().nullable() }),
  /**
   * Warm passes, after `continue`: a stream cell's passes over its batches (`passesNs[p][i]` batch
   * i's time in pass p) or a generation cell's warm generations (`passesNs[g][s]` step s of
   * generation g), in ns; the compile count after them, and the CPU accounting of the passes.
   */
  z.object({
    type: z.literal('passes'),
    passesNs: z.array(z.array(Num)),
    compiles: Num.int().nullable(),
    load: LoadSchema.optional(),
  }),
  z.object({
    type: z.literal('samples'),
    /** Warm-up iteration times (ns, integers), kept for inspection. */
    warmupNs: z.array(Num),
    /** Timed iteration times (ns, integers), one per forward pass including output readback. */
    samplesNs: z.array(Num),
    /** Why the timed loop stopped. */
    stopReason: z.enum(['target-interval', 'max-time', 'max-samples']),
    /** Why the warm-up stopped. */
    warmupStopReason: z.enum(['stable', 'max-iters', 'max-time']),
    /** 95 % order-statistic interval of the median of the samples (ns) and its half-width in % of the median. */
    interval: z.object({ medianNs: Num, loNs: Num, hiNs: Num, halfWidthPct: Num }),
    /** Smallest positive step of the worker's clock (ns; 0 if it never moved). */
    clockResolutionNs: Num,
    /** What the worker and the rest of the machine used during the timed loop (harness/worker/load.ts); absent from older workers. */
    load: LoadSchema.optional(),
  }),
  z.object({
    type: z.literal('memory'),
    /** Peak resident set size of the worker (VmHWM). */
    peakHostBytes: Num,
    /** Framework allocator peak on the accelerator since the model was built (CUDA cells only). */
    peakDeviceBytes: Num.optional(),
  }),
  z.object({ type: z.literal('peak-result'), ...PeakResultShape }),
  z.object({ type: z.literal('done') }),
  /** The worker enters a phase. */
  z.object({ type: z.literal('phase'), phase: PhaseSchema }),
  z.object({
    type: z.literal('error'),
    phase: PhaseSchema,
    message: z.string(),
    stack: z.string().optional(),
    /** Set when the engine cannot run here (then the cell is skipped, not failed). */
    unavailable: z.boolean().optional(),
    /** The command or step that fixes an unavailable engine. */
    fix: z.string().optional(),
  }),
]);
/** A message from a worker. */
export type FromWorker = z.infer<typeof FromWorkerSchema>;

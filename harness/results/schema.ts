import { existsSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CACHES, FAMILY_NAMES, PADDINGS, PRECISIONS, SHAPES, TASKS } from '../../workloads/index.js';
import { HostInfoSchema } from '../diagnostics/detect/host.js';
import { FindingSchema, MachinePeakSchema } from '../diagnostics/schema.js';
import { DEVICES } from '../engines/types.js';
import { FAILURE_CAUSES } from '../run/failure.js';
import { appendDurable, makeFolder, writeFileAtomic } from '../io/files.js';
import { ColdStartPhasesSchema, LoadSchema } from '../worker/protocol.js';
import { RUN_FLAGS, runConfigSchema } from '../run/flags.js';

/**
 * The files a run writes: `DIR/cells.jsonl` (one cell per line, each line carrying the schema
 * version, appended as each cell finishes, so an interrupted or killed run keeps every finished
 * cell) and `DIR/run.json` (the whole run, written atomically: when the run starts, with state
 * `running` and the configuration, then when it ends or is interrupted). Their JSON Schemas are
 * published in results/schema/.
 */
export const SCHEMA_VERSION = 1;

const Settings = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

/** Timing statistics of the timed samples, in milliseconds. */
export const StatsSchema = z.object({
  n: z.number().int(),
  medianMs: z.number(),
  meanMs: z.number(),
  p90Ms: z.number(),
  p99Ms: z.number(),
  minMs: z.number(),
  maxMs: z.number(),
  stdMs: z.number(),
  cv: z.number(),
  /** Seeded percentile-bootstrap 95 % interval of the median (ms; absent below 10 samples). */
  medianCi: z.object({ lo: z.number(), hi: z.number() }).optional(),
  /** Seeded percentile-bootstrap 95 % interval of the mean (ms; absent below 10 samples). */
  meanCi: z.object({ lo: z.number(), hi: z.number() }).optional(),
  /** Percentiles trustworthy for n (p90 needs >= 64 samples, p99 >= 662: MLPerf's bound). */
  reliablePercentiles: z.array(z.enum(['p50', 'p90', 'p99'])).optional(),
});

/** One figure of a training cell's parity: the largest relative L2 error over the tensors of a kind, the tensor it was found in, and its tolerance. */
const TrainingFigureSchema = z.object({
  relL2: z.number().nullable(),
  /** The tensor with the largest error (absent for the losses). */
  tensor: z.string().optional(),
  tolerance: z.number(),
  pass: z.boolean(),
});

/** Output comparison against the reference engine. */
export const ParitySchema = z.object({
  /** Which engine/mode/device produced the reference output. */
  reference: z.string(),
  /** Inference: the logits' relative L2 error. Training: the figure of `training` furthest from its tolerance (relL2 / tolerance largest). */
  relL2: z.number().nullable(),
  maxAbs: z.number().nullable(),
  tolerance: z.number(),
  pass: z.boolean(),
  /**
   * Training cells (harness/stats/training-parity.ts): the losses of every parity step, the
   * gradient of every trainable tensor at the first step, and the update of every state tensor
   * (after - before) after the first and after the last step, each against the float64 reference;
   * and the first update against the recipe applied to the engine's own gradient.
   */
  training: z
    .object({
      steps: z.number().int(),
      loss: TrainingFigureSchema,
      gradients: TrainingFigureSchema,
      /** The first update against the recipe applied to the engine's own first gradient: the optimizer alone. */
      optimizer: TrainingFigureSchema,
      updates: TrainingFigureSchema,
      /** Why the comparison could not be made (a tensor missing or of another shape), when it could not. */
      problem: z.string().optional(),
    })
    .optional(),
  /**
   * Stream cells: every batch of the stream was checked, each row against the reference's logits for
   * that row alone and unpadded; relL2 is the worst batch's, found at `worstBatch` (run at length
   * `worstLength`); `shapes` distinct shapes were checked.
   */
  stream: z.object({ batches: z.number().int(), shapes: z.number().int(), worstBatch: z.number().int(), worstLength: z.number().int() }).optional(),
  /**
   * Generation cells (harness/stats/generate.ts): every row's token ids against the reference's and
   * every step's logits (relL2 is the worst step's, `worstStep`); a row may go another way only at a
   * near tie of the reference (`ties`, from `firstTieStep` on it is not compared).
   */
  generation: z
    .object({
      steps: z.number().int(),
      worstStep: z.number().int(),
      rowsMatching: z.number().int(),
      ties: z.number().int(),
      firstTieStep: z.number().int().optional(),
    })
    .optional(),
  /**
   * Inference cells (harness/stats/precision.ts; docs/precision.md): the precision the worker
   * observed and its evidence (absent from fp32 cells whose engine reports none), and the top-1
   * agreement of the logits' rows with the fp32 reference. A reduced precision is judged by its
   * own relL2 tolerance (`tolerance`) and `minArgmaxAgreement`.
   */
  precision: z
    .object({
      used: z.enum(PRECISIONS).optional(),
      evidence: z.string().optional(),
      argmaxAgreement: z.number().nullable(),
      /** Rows left out of the agreement: near ties of the reference (within the relL2 tolerance x the row's RMS logit) resolved the other way. */
      ties: z.number().int().optional(),
      minArgmaxAgreement: z.number().optional(),
    })
    .optional(),
  /** Why the comparison failed, where a figure alone does not say (a precision fallback, the argmax gate). */
  problem: z.string().optional(),
});

/**
 * Cold-start breakdown (ms): process spawn -> hello (orchestrator's clock), the worker's measured
 * segments (harness/worker/protocol.ts ColdStartPhasesSchema), the first inference, and spawn -> first
 * output (orchestrator's clock). Runs made before the segments were measured have no importMs,
 * weightsMs or compileMs: there import and weight loading are only inside totalMs, torchscript's
 * trace is in buildMs and torch.compile's / tf.function's compilation in firstRunMs.
 */
export const ColdStartSchema = z.object({
  spawnMs: z.number(),
  ...ColdStartPhasesSchema.partial().shape,
  buildMs: z.number(),
  /** Input preparation and the first inference after build (and compile), with readback. */
  firstRunMs: z.number(),
  totalMs: z.number(),
});
/** A cold-start record. */
export type ColdStart = z.infer<typeof ColdStartSchema>;

/** 95 % order-statistic interval of the median as the worker's stopping rule saw it (ms). */
export const AchievedIntervalSchema = z.object({ medianMs: z.number(), loMs: z.number(), hiMs: z.number(), halfWidthPct: z.number() });

/** What ended a cell or a replicate the same way: timed (`ok`), cannot run here, failed, or output wrong (never timed). */
const OUTCOMES = ['ok', 'skipped', 'failed', 'parity-failed'] as const;
/** A cell's status: an outcome, or `unstable` when every replicate was contended (harness/run/contention.ts): no clean timing could be had. */
export const CELL_STATUSES = [...OUTCOMES, 'unstable'] as const;
/** A replicate's status: an outcome, or `contended` when the machine was busy during its timed loop (kept, never pooled). */
export const REPLICATE_STATUSES = [...OUTCOMES, 'contended'] as const;

/** A stream cell's replicate: its cold pass, its warm passes and the framework's compile counts. */
export const ReplicateStreamSchema = z.object({
  /** Each batch's time in the cold pass (ms, in stream order; a new shape compiles inside its batch). */
  coldPassMs: z.array(z.number()),
  /** Each batch's median time over the warm passes (ms). */
  warmBatchMs: z.array(z.number()),
  /** The framework's own compile / trace count after the cold pass and after the warm passes (null: the mode compiles nothing). */
  compiles: z.object({ afterCold: z.number().int().nullable(), afterWarm: z.number().int().nullable() }),
  /** The fixed-shape baseline's median (ms) in this replicate. */
  fixedMs: z.number().optional(),
});

/** A generation cell's replicate: its cold generation, step by step, and the framework's compile counts. */
export const ReplicateGenerationSchema = z.object({
  /** Each step's time in the cold generation (ms; step 0 the prefill; compilation happens inside the steps). */
  coldPassMs: z.array(z.number()),
  /** Each step's median time over the warm generations (ms). */
  warmStepMs: z.array(z.number()),
  compiles: z.object({ afterCold: z.number().int().nullable(), afterWarm: z.number().int().nullable() }),
});

/** One worker process's share of a cell. */
export const ReplicateSchema = z.object({
  /** 0-based replicate index (the round in which it ran). */
  index: z.number().int(),
  pid: z.number().int().optional(),
  startedAt: z.string(),
  status: z.enum(REPLICATE_STATUSES),
  reason: z.string().nullable(),
  parity: ParitySchema.optional(),
  n: z.number().int().optional(),
  medianMs: z.number().optional(),
  cv: z.number().optional(),
  /** Offset of this replicate's first sample in the cell's pooled samplesMs. */
  offset: z.number().int().optional(),
  interval: AchievedIntervalSchema.optional(),
  stopReason: z.string().optional(),
  warmupStopReason: z.string().optional(),
  /** First warm-up iteration (ms). */
  firstWarmupMs: z.number().optional(),
  clockResolutionNs: z.number().optional(),
  memory: z.object({ peakHostBytes: z.number(), peakDeviceBytes: z.number().optional() }).optional(),
  coldStart: ColdStartSchema.optional(),
  /** What the worker and the machine used during its timed loop (harness/worker/load.ts). */
  load: LoadSchema.optional(),
  /** Cores other processes used during its timed loop (the machine's busy cores less the worker's own), where /proc/stat was readable. */
  othersCores: z.number().optional(),
  /** Stream cells: the passes and compile counts (the samples of a stream cell are its warm passes' totals). */
  stream: ReplicateStreamSchema.optional(),
  /** Generation cells: the cold generation and compile counts (the samples of a generation cell are its warm generations' totals). */
  generation: ReplicateGenerationSchema.optional(),
});

/**
 * A stream cell's figures (harness/stats/stream.ts; docs/shapes.md). The cell's samples and stats
 * are the warm passes' totals (one sample = the whole stream, every shape already compiled); these
 * are what the stream adds: the cold pass a user feels first, split into compilation and running,
 * the framework's compile counts, and the fixed-shape baseline.
 */
export const CellStreamSchema = z.object({
  /** The run's seed the stream was drawn from (workloads/shapes.ts shapeStream). */
  seed: z.number().int(),
  batches: z.number().int(),
  maxLength: z.number().int(),
  /** Bucket lengths of the bucket strategy. */
  buckets: z.array(z.number().int()),
  /** Each batch's row lengths (real tokens), before padding. */
  lengths: z.array(z.array(z.number().int())),
  /** The length each batch ran at under the cell's padding. */
  paddedLengths: z.array(z.number().int()),
  /** Distinct shapes the engine saw. */
  distinctShapes: z.number().int(),
  realTokens: z.number().int(),
  paddedTokens: z.number().int(),
  /** Forward FLOPs of the rows at their real lengths, and as run (padded), for the whole stream. */
  usefulFlops: z.number(),
  paddedFlops: z.number(),
  /** The first pass over the stream, the number a user feels: the mode's compile segment of the cold start (where it has one) + every batch of the cold pass (ms; median over replicates). */
  coldMs: z.number(),
  /** Of coldMs, the time spent compiling / tracing: the compile segment + each cold batch's excess over its own warm median (ms). */
  compileMs: z.number(),
  /** coldMs - compileMs. */
  runMs: z.number(),
  /** Median over the distinct shapes of the first batch of each shape in the cold pass (ms)... */
  firstSightMs: z.number(),
  /** ...and of the same batches' warm medians (ms). */
  repeatMs: z.number(),
  /** The framework's own compile / trace counts (first clean replicate; null: the mode compiles nothing). */
  compiles: z.object({ afterCold: z.number().int().nullable(), afterWarm: z.number().int().nullable() }),
  /** Warm stream time per real token (µs). */
  perRealTokenUs: z.number(),
  /** The fixed-shape baseline: one batch at the full length, timed with the usual stopping rule (ms; pooled over replicates, with the 95 % interval of the median). */
  fixed: z.object({ medianMs: z.number(), loMs: z.number(), hiMs: z.number(), n: z.number().int() }),
  /** coldMs / (batches x fixed.medianMs): the stream a user feels over the same batches served at one fixed shape. */
  dynamicPenalty: z.number(),
  /** Warm stream median / (batches x fixed.medianMs): the same once every shape is compiled. */
  warmPenalty: z.number(),
});
/** A stream cell's figures. */
export type CellStream = z.infer<typeof CellStreamSchema>;

/** A median over a cell's clean replicates with its 95 % order-statistic interval (ms) and the values it is of. */
const MedianCiSchema = z.object({ medianMs: z.number(), loMs: z.number(), hiMs: z.number(), n: z.number().int() });

/**
 * A generation cell's generation and, once ok, its figures (harness/stats/generate.ts; docs/generation.md). Its samples and
 * stats are the warm generations' end-to-end times (one sample = one whole generation of the
 * batch); these are what generation adds, each over every warm generation of the clean replicates.
 */
export const CellGenerationSchema = z.object({
  /** What the cell ran (every generation cell has these; the figures below only an ok one). */
  promptLength: z.number().int(),
  /** Tokens generated per row, the prefill's first one included. */
  newTokens: z.number().int(),
  cache: z.enum(CACHES),
  /** Warm generations the figures are of. */
  generations: z.number().int().optional(),
  /** Time to first token: the prefill step, with the readback of its token ids. */
  ttftMs: MedianCiSchema.optional(),
  /** Time per output token: every decode step (steps 1..newTokens-1), pooled; p90 over them too. Null when one token is generated. */
  tpotMs: MedianCiSchema.extend({ p90Ms: z.number() }).nullable().optional(),
  /** A whole generation (the cell's samples). */
  e2eMs: MedianCiSchema.optional(),
  /** batch x promptLength / median TTFT. */
  prefillTokensPerS: z.number().optional(),
  /** batch x (newTokens - 1) / median of the decode steps' total. */
  decodeTokensPerS: z.number().nullable().optional(),
  /** batch x newTokens / median end-to-end time. */
  tokensPerS: z.number().optional(),
  /** The cold generation (the first after build, checked for parity): its prefill, its first decode step and its whole (median over replicates). */
  cold: z.object({ ttftMs: z.number(), firstDecodeMs: z.number().nullable(), e2eMs: z.number() }).optional(),
  /** The framework's own compile / trace count after the cold generation and after the warm ones (null: the mode compiles nothing). */
  compiles: z.object({ afterCold: z.number().int().nullable(), afterWarm: z.number().int().nullable() }).optional(),
  /** Matrix-product FLOPs of one generation of the batch: the prefill, and every decode step together. */
  flops: z.object({ prefill: z.number(), decode: z.number() }).optional(),
});
/** A generation cell's figures. */
export type CellGeneration = z.infer<typeof CellGenerationSchema>;
/** A replicate record. */
export type Replicate = z.infer<typeof ReplicateSchema>;

/** A measurement-quality warning on a cell. */
export const WarningSchema = z.object({
  code: z.enum(['high-cv', 'slow-first-run', 'timer-resolution', 'target-not-reached', 'contended']),
  message: z.string(),
});

/** Outliers flagged (never dropped) in the pooled samples; indices into samplesMs. */
export const OutliersSchema = z.object({
  mild: z.number().int(),
  severe: z.number().int(),
  mad: z.number().int(),
  indices: z.object({ mild: z.array(z.number().int()), severe: z.array(z.number().int()), mad: z.array(z.number().int()) }),
});

/** One cell of the matrix: engine x mode x device x workload x preset x batch. */
export const CellSchema = z.object({
  /** `engine/mode/device/workload/preset/bN/tT`, then `/training` for a training cell, `/generate/p<prompt>n<new>[/nocache]` for a generation cell, `/stream-<padding>` for a stream cell and `/<precision>` for a reduced precision (harness/run/plan.ts cellId). */
  id: z.string(),
  /** What the cell timed: a forward pass (inference; absent in runs made before the task axis) or one training step. */
  task: z.enum(TASKS).optional(),
  /** `stream` for a shape-stream cell (absent: one fixed shape, as every run before the shapes axis). */
  shapes: z.enum(SHAPES).optional(),
  /** A stream cell's padding strategy. */
  padding: z.enum(PADDINGS).optional(),
  /** A stream cell's figures (its samples are its warm passes' totals). */
  stream: CellStreamSchema.optional(),
  /** A generation cell's figures (its samples are its warm generations' end-to-end times). */
  generation: CellGenerationSchema.optional(),
  /** The number format the cell computed in (absent: fp32, as every run before the precision axis). */
  precision: z.enum(PRECISIONS).optional(),
  /** How the engine computes in a reduced precision (its descriptor's mechanism, harness/engines/*.ts `precisions`). */
  precisionMechanism: z.string().optional(),
  engine: z.string(),
  framework: z.string(),
  mode: z.string(),
  device: z.enum(DEVICES),
  workload: z.enum(FAMILY_NAMES),
  preset: z.string(),
  params: z.record(z.string(), z.union([z.number(), z.string(), z.array(z.number())])),
  batchSize: z.number().int(),
  /** Intra-op threads the cell ran with (one entry of config.threads; absent in runs made before the --threads sweep, where config.threads holds the one count). */
  threads: z.number().int().min(1).optional(),
  seed: z.number().int(),
  /** `ok` (timed, parity passed), `skipped` (cannot run here), `failed`, `parity-failed` (never timed), `unstable` (every replicate contended: no clean timing). */
  status: z.enum(CELL_STATUSES),
  /** Why the cell is not ok (null when ok). */
  reason: z.string().nullable(),
  /** How to make a skipped cell runnable. */
  fix: z.string().optional(),
  /** Phase a failed cell was in. */
  phase: z.string().optional(),
  /** What made a failed cell fail: out-of-memory, timeout, signal, exit-code, protocol (garbage or truncated line), exception, reference (no reference output). */
  cause: z.enum(FAILURE_CAUSES).optional(),
  parity: ParitySchema.optional(),
  stats: StatsSchema.optional(),
  /** Every timed sample (ms), in order. */
  samplesMs: z.array(z.number()).optional(),
  /** Every warm-up iteration (ms), in order. */
  warmupMs: z.array(z.number()).optional(),
  stopReason: z.string().optional(),
  warmupStopReason: z.string().optional(),
  /** One entry per worker process (`--replicates`); samplesMs pools them in replicate order, and memory and coldStart are their medians. */
  replicates: z.array(ReplicateSchema).optional(),
  /** Within-process variation (mean of the replicates' CVs) and between-process variation (CV of the replicate medians). */
  variation: z.object({ withinCv: z.number(), betweenCv: z.number() }).optional(),
  outliers: OutliersSchema.optional(),
  /** Measurement-quality warnings (high CV, slow first run, timer resolution, target interval not reached). */
  warnings: z.array(WarningSchema).optional(),
  /** Samples per second: batchSize / median latency. */
  throughput: z.number().optional(),
  /** Achieved GFLOP/s: flops / median latency. */
  gflops: z.number().optional(),
  /** gflops / the machine's peak FP32 GEMM rate (run.peak.gflops), for ok cells when the peak was measured. */
  fractionOfPeak: z.number().optional(),
  /** Analytic FLOPs of what one sample timed for the whole batch: a forward pass; a training step counts three (workloads/training.ts TRAINING_FLOPS_FACTOR). */
  flops: z.number(),
  memory: z.object({ peakHostBytes: z.number(), peakDeviceBytes: z.number().optional() }).optional(),
  coldStart: ColdStartSchema.optional(),
  /** Effective engine settings read back from the framework (threads, providers, levels). */
  settings: Settings.optional(),
  /** Worker process facts. */
  worker: z.object({ pid: z.number().int().optional(), exitCode: z.number().nullable().optional(), signal: z.string().nullable().optional(), logTail: z.array(z.string()).optional() }).optional(),
  startedAt: z.string(),
  durationMs: z.number(),
  /** Fingerprint of the host that measured this cell; set by `fwbench merge` (a single-host run's cells use the run's `hostFingerprint`). */
  hostFingerprint: z.string().optional(),
});
/** A cell record. */
export type Cell = z.infer<typeof CellSchema>;

/** What a run found about one engine. */
export const EngineStatusSchema = z.object({
  available: z.boolean(),
  framework: z.string(),
  version: z.string().optional(),
  devices: z.array(z.enum(DEVICES)).optional(),
  details: z.record(z.string(), z.string()).optional(),
  reason: z.string().optional(),
  fix: z.string().optional(),
});
/** Engine availability. */
export type EngineStatus = z.infer<typeof EngineStatusSchema>;

/**
 * The run's configuration: the fields of the run flags that change results, each declared by its
 * flag (harness/run/flags.ts RUN_FLAGS), and the fields several flags set together.
 */
export const RunConfigSchema = runConfigSchema(RUN_FLAGS);
/** Run configuration. */
export type RunConfig = z.infer<typeof RunConfigSchema>;

/** The header of one run that `fwbench merge` combined: where and how its cells were measured. */
export const RunSourceSchema = z.object({
  /** Host fingerprint, as its cells carry it (made unique across the merged runs). */
  hostFingerprint: z.string(),
  host: HostInfoSchema,
  tool: z.object({ name: z.literal('fwbench'), version: z.string() }),
  command: z.array(z.string()),
  startedAt: z.string(),
  finishedAt: z.string(),
  engines: z.record(z.string(), EngineStatusSchema),
  config: RunConfigSchema,
});
/** One merged run's header. */
export type RunSource = z.infer<typeof RunSourceSchema>;

/** Batch-size sweep: the largest batch that fit in memory for one (engine, mode, device, workload). */
export const BatchFitSchema = z.object({
  engine: z.string(),
  mode: z.string(),
  device: z.enum(DEVICES),
  workload: z.string(),
  /** Largest batch that ran without running out of memory (null: not even the smallest). */
  largestBatch: z.number().int().nullable(),
  /** Smallest batch that ran out of memory; larger batches were skipped. */
  outOfMemoryAtBatch: z.number().int(),
});
/** A batch-sweep verdict. */
export type BatchFit = z.infer<typeof BatchFitSchema>;

/** How far a run got: `running` (started, or its orchestrator was killed), `interrupted` (SIGINT/SIGTERM), `complete`. Absent = complete. */
export const RunStateSchema = z.enum(['running', 'interrupted', 'complete']);

/** The whole run. */
export const RunSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  tool: z.object({ name: z.literal('fwbench'), version: z.string() }),
  /** The command line that produced the run. */
  command: z.array(z.string()),
  startedAt: z.string(),
  /** When the run ended (running or interrupted: when run.json was last written). */
  finishedAt: z.string(),
  state: RunStateSchema.optional(),
  /** Set when state is `interrupted`: the signal and when it came. */
  interruption: z.object({ signal: z.string(), at: z.string() }).optional(),
  /** The orchestrator process writing this run, so a resume can refuse while it is still going. */
  orchestrator: z.object({ pid: z.number().int(), hostname: z.string() }).optional(),
  /** Every `fwbench run --resume` that continued this run. */
  resumes: z.array(z.object({ startedAt: z.string(), command: z.array(z.string()), cellsBefore: z.number().int() })).optional(),
  /** Per (engine, mode, device, workload) that ran out of memory: the largest batch that fit. */
  largestBatchFit: z.array(BatchFitSchema).optional(),
  host: HostInfoSchema,
  /** Short host description. */
  hostFingerprint: z.string(),
  engines: z.record(z.string(), EngineStatusSchema),
  config: RunConfigSchema,
  cells: z.array(CellSchema),
  /** This machine's achievable FP32 GEMM rate and copy bandwidth (fwbench peak), measured or cached once per run. */
  peak: MachinePeakSchema.optional(),
  /** With several thread counts (--threads 1,2): the peak measured at each; a cell's fractionOfPeak uses the one at its own thread count. */
  peaks: z.array(MachinePeakSchema).optional(),
  /** What `fwbench doctor` found at the start of the run (cheap checks) and about the cells at the end. */
  doctor: z.array(FindingSchema).optional(),
  /** Set by `fwbench merge`: every input run's header, one per host; `host`, `engines` and `config` above are the first one's. */
  sources: z.array(RunSourceSchema).optional(),
});
/** A run record (run.json). */
export type Run = z.infer<typeof RunSchema>;

/** One line of cells.jsonl: a cell record with the schema version, so each line describes itself. */
export const CellLineSchema = CellSchema.extend({ schemaVersion: z.literal(SCHEMA_VERSION) });

/** Output folder writer and reader. */
export class ResultsStore {
  constructor(readonly dir: string) {
    makeFolder(dir);
  }

  /** Path of cells.jsonl. */
  get cellsPath(): string {
    return join(this.dir, 'cells.jsonl');
  }

  /** Path of run.json. */
  get runPath(): string {
    return join(this.dir, 'run.json');
  }

  /** Appends one finished cell to cells.jsonl: one line, one write, fsynced, never rewritten. */
  appendCell(cell: Cell): void {
    appendDurable(this.cellsPath, `${JSON.stringify({ schemaVersion: SCHEMA_VERSION, ...cell })}\n`);
  }

  /**
   * The cells of cells.jsonl. A last line without its newline or unparseable (the orchestrator was
   * killed while writing it) is dropped, cut from the file (unless `repair` is false: readers that
   * only report leave the file alone), and reported through `warn`; a bad line
   * anywhere else means the file is not ours or was edited, and throws.
   */
  readCells(warn: (text: string) => void, opts: { repair?: boolean } = {}): Cell[] {
    if (!existsSync(this.cellsPath)) return [];
    const text = readFileSync(this.cellsPath, 'utf8');
    const lines = text.split('\n');
    const complete = text.endsWith('\n') || text === '' ? lines.slice(0, -1) : lines;
    const cells: Cell[] = [];
    let goodBytes = 0;
    for (const [i, line] of complete.entries()) {
      const parsed = (() => {
        try {
          return CellLineSchema.safeParse(JSON.parse(line));
        } catch {
          return undefined;
        }
      })();
      const last = i === complete.length - 1;
      if (!parsed?.success) {
        const truncated = last && !text.endsWith('\n');
        if (!truncated && !(last && parsed === undefined)) {
          const issue = parsed?.error.issues[0];
          throw new Error(`${this.cellsPath}:${i + 1} is not a cell record of schema version ${SCHEMA_VERSION}${issue ? ` (${issue.path.join('.') || '(root)'}: ${issue.message})` : ' (not JSON)'}`);
        }
        if (opts.repair === false) break;
        warn(`${this.cellsPath}: dropped a truncated last line (${Buffer.byteLength(line)} bytes, line ${i + 1}); that cell will run again`);
        truncateSync(this.cellsPath, goodBytes);
        break;
      }
      const { schemaVersion: _version, ...cell } = parsed.data;
      cells.push(cell);
      goodBytes += Buffer.byteLength(line) + 1;
    }
    return cells;
  }

  /** Writes run.json atomically (temporary file, fsync, rename): a reader never sees half a file. */
  writeRun(run: Run): string {
    writeFileAtomic(this.runPath, `${JSON.stringify(RunSchema.parse(run), null, 1)}\n`);
    return this.runPath;
  }
}

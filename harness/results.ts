import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { HostInfoSchema } from './detect/host.js';
import { FindingSchema, MachinePeakSchema } from './diagnostics-schema.js';
import { MeasureSettingsSchema } from './protocol.js';

/**
 * The files a run writes: `DIR/cells.jsonl` (one cell per line, appended as each cell finishes,
 * so an interrupted run keeps every finished cell) and `DIR/run.json` (the whole run, written
 * atomically at the end). Their JSON Schemas are published in results/schema/.
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

/** Output comparison against the reference engine. */
export const ParitySchema = z.object({
  /** Which engine/mode/device produced the reference output. */
  reference: z.string(),
  relL2: z.number().nullable(),
  maxAbs: z.number().nullable(),
  tolerance: z.number(),
  pass: z.boolean(),
});

/** Cold-start breakdown (ms): process spawn -> hello, model build, first inference, and spawn -> first output. */
export const ColdStartSchema = z.object({ spawnMs: z.number(), buildMs: z.number(), firstRunMs: z.number(), totalMs: z.number() });

/** 95 % order-statistic interval of the median as the worker's stopping rule saw it (ms). */
export const AchievedIntervalSchema = z.object({ medianMs: z.number(), loMs: z.number(), hiMs: z.number(), halfWidthPct: z.number() });

/** One worker process's share of a cell. */
export const ReplicateSchema = z.object({
  /** 0-based replicate index (the round in which it ran). */
  index: z.number().int(),
  pid: z.number().int().optional(),
  startedAt: z.string(),
  status: z.enum(['ok', 'skipped', 'failed', 'parity-failed']),
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
});
/** A replicate record. */
export type Replicate = z.infer<typeof ReplicateSchema>;

/** A measurement-quality warning on a cell. */
export const WarningSchema = z.object({
  code: z.enum(['high-cv', 'slow-first-run', 'timer-resolution', 'target-not-reached']),
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
  /** `engine/mode/device/workload/preset/bN`. */
  id: z.string(),
  engine: z.string(),
  framework: z.string(),
  mode: z.string(),
  device: z.enum(['cpu', 'cuda']),
  workload: z.enum(['cnn', 'rnn', 'transformer']),
  preset: z.string(),
  params: z.record(z.string(), z.union([z.number(), z.string(), z.array(z.number())])),
  batchSize: z.number().int(),
  /** Intra-op threads the cell ran with (one entry of config.threads; absent in runs made before the --threads sweep, where config.threads holds the one count). */
  threads: z.number().int().min(1).optional(),
  seed: z.number().int(),
  /** `ok` (timed, parity passed), `skipped` (cannot run here), `failed`, `parity-failed` (never timed). */
  status: z.enum(['ok', 'skipped', 'failed', 'parity-failed']),
  /** Why the cell is not ok (null when ok). */
  reason: z.string().nullable(),
  /** How to make a skipped cell runnable. */
  fix: z.string().optional(),
  /** Phase a failed cell was in. */
  phase: z.string().optional(),
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
  /** Analytic FLOPs of one forward pass of the whole batch. */
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
  devices: z.array(z.enum(['cpu', 'cuda'])).optional(),
  details: z.record(z.string(), z.string()).optional(),
  reason: z.string().optional(),
  fix: z.string().optional(),
});
/** Engine availability. */
export type EngineStatus = z.infer<typeof EngineStatusSchema>;

/** The run's configuration, mirroring the CLI flags. */
export const RunConfigSchema = z.object({
  engines: z.array(z.string()),
  workloads: z.array(z.enum(['cnn', 'rnn', 'transformer'])),
  preset: z.string(),
  batchSizes: z.array(z.number().int()),
  /** `--modes`: mode names or 'all'; absent = each engine's default modes. */
  modes: z.union([z.literal('all'), z.array(z.string())]).optional(),
  sets: z.array(z.tuple([z.string(), z.string()])),
  device: z.enum(['cpu', 'cuda']),
  /** `--threads`: the intra-op thread counts, one matrix dimension (each cell runs with one); a single number (older runs) reads as a list of one. */
  threads: z.union([z.array(z.number().int().min(1)).min(1), z.number().int().min(1).transform((n) => [n])]),
  seed: z.number().int(),
  measure: MeasureSettingsSchema,
  /** Worker processes per cell, run round-robin across the cells of a (workload, batch) group (absent = 1). */
  replicates: z.number().int().min(1).optional(),
  /** Measurement preset: quick, default or rigorous (explicit flags override it). */
  measurePreset: z.enum(['quick', 'default', 'rigorous']).optional(),
  cellTimeoutMs: z.number(),
});
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

/** The whole run. */
export const RunSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  tool: z.object({ name: z.literal('fwbench'), version: z.string() }),
  /** The command line that produced the run. */
  command: z.array(z.string()),
  startedAt: z.string(),
  finishedAt: z.string(),
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

/** Output folder writer. */
export class ResultsStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Appends one finished cell to cells.jsonl (one line, written at once). */
  appendCell(cell: Cell): void {
    appendFileSync(join(this.dir, 'cells.jsonl'), `${JSON.stringify(cell)}\n`);
  }

  /** Writes run.json atomically (temporary file + rename): a reader never sees half a file. */
  writeRun(run: Run): string {
    const path = join(this.dir, 'run.json');
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(RunSchema.parse(run), null, 1)}\n`);
    renameSync(tmp, path);
    return path;
  }
}

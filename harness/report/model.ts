import {
  MIN_SAMPLES_FOR_CI,
  medianInterval,
  medianRatioInterval,
  replicateRatioInterval,
  sortedMedian,
  type BootstrapOptions,
  type Interval,
} from '../stats/bootstrap.js';
import type { HostInfo } from '../diagnostics/detect/host.js';
import { COLD_START_PHASES } from '../worker/protocol.js';
import { STREAM } from '../../workloads/shapes.js';
import { PRECISION, type Precision } from '../../workloads/precision.js';
import type { Task } from '../../workloads/types.js';
import type { Cell, ColdStart, EngineStatus, Run, RunConfig } from '../results/schema.js';
import { summarizeDistribution, type DistributionSummary } from './distribution.js';

/**
 * What every report format shows, computed once from run.json: hosts, cells grouped the way
 * readers compare them (same host, device, workload, parameters and batch size), the fastest cell
 * of each group, bootstrap intervals of medians, and the claim verdicts. The writers only lay
 * this out.
 */

/** The host a cell was measured on: its own fingerprint in a merged run, else the run's. */
export const cellHost = (run: Run, cell: Cell): string => cell.hostFingerprint ?? run.hostFingerprint;

/** Parameters as stable text (sorted keys), so equal parameters compare equal. */
export const paramsText = (params: Cell['params']): string =>
  Object.keys(params)
    .sort()
    .map((k) => {
      const v = params[k]!;
      return `${k}=${Array.isArray(v) ? v.join(',') : v}`;
    })
    .join(' ');

/** The thread count a cell ran with: its own field, else (runs before the --threads sweep) the run's single count. */
export const cellThreads = (run: Pick<Run, 'config'>, c: Cell): number => c.threads ?? run.config.threads[0]!;

/** What one timed sample of a task is, in words. */
export const TASK_UNIT: Record<Task, string> = {
  inference: 'forward pass',
  training: 'training step (forward, loss, backward, update)',
  generate: 'generation (the prefill, then a decode step per new token)',
};

/** What a cell timed (cells from before the task axis did inference). */
export const cellTask = (c: Pick<Cell, 'task'>): Task => c.task ?? 'inference';

/** A cell's shapes as a label: '' for one fixed shape, `stream-<padding>` for a shape stream. */
export const cellShapes = (c: { shapes?: Cell['shapes']; padding?: Cell['padding'] }): string => (c.shapes === 'stream' ? `stream-${c.padding}` : '');

/** A cell's number format (cells from before the precision axis computed in fp32). */
export const cellPrecision = (c: { precision?: Cell['precision'] }): Precision => c.precision ?? 'fp32';

/** A generation's prompt and new tokens as a label (`p128n128`), or '' for a cell that does not generate. */
export const cellGeneration = (c: { generation?: Pick<NonNullable<Cell['generation']>, 'promptLength' | 'newTokens'> }): string =>
  c.generation ? `p${c.generation.promptLength}n${c.generation.newTokens}` : '';

/** A workload's label with its task, shapes and precision, where they are not the defaults: `cnn/tiny`, `cnn/tiny training`, `rnn/tiny stream-bucket`, `transformer/tiny int8`, `decoder/tiny generate p128n128`. */
export const workloadLabel = (s: {
  workload: string;
  preset: string;
  task?: Task;
  shapes?: Cell['shapes'];
  padding?: Cell['padding'];
  precision?: Cell['precision'];
  generation?: Cell['generation'];
}): string =>
  `${s.workload}/${s.preset}${cellTask(s) === 'inference' ? '' : ` ${s.task}`}${cellGeneration(s) ? ` ${cellGeneration(s)}` : ''}${cellShapes(s) ? ` ${cellShapes(s)}` : ''}${
    cellPrecision(s) === 'fp32' ? '' : ` ${cellPrecision(s)}`
  }`;

/** What one timed sample of a section is, in words: a task's unit, or a pass over a shape stream. */
export const sampleUnit = (s: { task: Task; shapes?: Cell['shapes'] }): string =>
  s.shapes === 'stream' ? `pass over a shape stream (${STREAM.batches} batches)` : TASK_UNIT[s.task];

/** Identity of a cell apart from its host: task (with a generation's prompt, new tokens and cache), shapes, precision, engine, mode, device, workload, parameters, batch size, threads. */
export const cellKey = (c: Cell, threads: number): string =>
  [
    cellTask(c),
    ...(c.generation ? [cellGeneration(c), c.generation.cache] : []),
    ...(cellShapes(c) ? [cellShapes(c)] : []),
    ...(cellPrecision(c) === 'fp32' ? [] : [cellPrecision(c)]),
    c.engine,
    c.mode,
    c.device,
    c.workload,
    paramsText(c.params),
    c.batchSize,
    `t${threads}`,
  ].join('|');

/** Series label of a cell in tables and charts (a generation without its cache says so). */
export const engineMode = (c: Cell): string => `${c.engine}/${c.mode}${c.generation?.cache === 'none' ? ' no-cache' : ''}`;

/** One host of a run with the headers of the runs measured on it. */
export interface HostView {
  fingerprint: string;
  host: HostInfo;
  engines: Record<string, EngineStatus>;
  config: RunConfig;
  command: string[];
  toolVersion: string;
  startedAt: string;
  finishedAt: string;
}

/** The hosts of a run: one for a plain run, every source's for a merged one. */
export function hostsOf(run: Run): HostView[] {
  const sources = run.sources ?? [run];
  return sources.map((s) => ({
    fingerprint: s.hostFingerprint,
    host: s.host,
    engines: s.engines,
    config: s.config,
    command: s.command,
    toolVersion: s.tool.version,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt,
  }));
}

/** A cell with what the report derives from it. */
export interface CellView {
  cell: Cell;
  host: string;
  /** Intra-op threads it ran with (cellThreads). */
  threads: number;
  /** Bootstrap 95 % interval of the median latency (ms); absent with fewer than MIN_SAMPLES_FOR_CI samples. */
  medianCi?: Interval;
  /** Fixed-size summary of the timed samples (what charts draw); absent without samples. */
  latency?: DistributionSummary;
  /** Median / the fastest median of its group (1 = fastest); ok cells only. */
  relativeToFastest?: number;
  /** The fastest ok cell of its group. */
  fastest: boolean;
}

/** Cells that readers compare with each other: same task, shapes, precision, host, device, workload, parameters, thread count and batch size. */
export interface CellGroup {
  task: Task;
  shapes?: Cell['shapes'];
  padding?: Cell['padding'];
  precision?: Cell['precision'];
  generation?: Cell['generation'];
  host: string;
  device: string;
  workload: string;
  preset: string;
  params: string;
  batchSize: number;
  cells: CellView[];
}

/** One task of one workload (with its parameters) on one host, device and thread count, all batch sizes. */
export interface WorkloadSection {
  id: string;
  /** Inference sections time forward passes; training sections optimizer steps. */
  task: Task;
  /** `stream` for a shape-stream section (its samples are passes over the stream), with its padding. */
  shapes?: Cell['shapes'];
  padding?: Cell['padding'];
  /** A reduced precision's section (its cells are compared with each other; the precision table compares them with fp32). */
  precision?: Cell['precision'];
  /** A generation section's prompt and new tokens (its kv and no-cache cells side by side; `cache` is its first cell's). */
  generation?: Cell['generation'];
  host: string;
  device: string;
  workload: string;
  preset: string;
  params: string;
  /** Intra-op threads of its cells (readers compare engines at the same thread count). */
  threads: number;
  /** The run swept several thread counts, so titles name this one. */
  threadSweep: boolean;
  /** Analytic FLOPs per sample. */
  flopsPerSample: number;
  groups: CellGroup[];
}

/** Every cell of a run, grouped. */
export interface RunModel {
  run: Run;
  hosts: HostView[];
  sections: WorkloadSection[];
  cells: CellView[];
}

/** Builds the report model; bootstrap intervals are seeded, so the same run gives the same report. */
export function buildModel(run: Run): RunModel {
  const sections = new Map<string, WorkloadSection>();
  const cells: CellView[] = [];
  const threadSweep = new Set(run.cells.map((c) => cellThreads(run, c))).size > 1;
  for (const cell of run.cells) {
    const host = cellHost(run, cell);
    const params = paramsText(cell.params);
    const threads = cellThreads(run, cell);
    const task = cellTask(cell);
    const sectionId = [task, cellGeneration(cell), cellShapes(cell), cellPrecision(cell), host, cell.device, cell.workload, params, `t${threads}`].join('|');
    const shapes = {
      ...(cell.generation
        ? { generation: { promptLength: cell.generation.promptLength, newTokens: cell.generation.newTokens, cache: cell.generation.cache } }
        : {}),
      ...(cell.shapes === 'stream' ? { shapes: cell.shapes, padding: cell.padding } : {}),
      ...(cellPrecision(cell) === 'fp32' ? {} : { precision: cell.precision }),
    };
    let section = sections.get(sectionId);
    if (!section) {
      section = {
        id: sectionId,
        task,
        ...shapes,
        host,
        device: cell.device,
        workload: cell.workload,
        preset: cell.preset,
        params,
        threads,
        threadSweep,
        flopsPerSample: cell.flops / cell.batchSize,
        groups: [],
      };
      sections.set(sectionId, section);
    }
    let group = section.groups.find((g) => g.batchSize === cell.batchSize);
    if (!group) {
      group = { task, ...shapes, host, device: cell.device, workload: cell.workload, preset: cell.preset, params, batchSize: cell.batchSize, cells: [] };
      section.groups.push(group);
    }
    const samples = cell.status === 'ok' ? cell.samplesMs : undefined;
    const view: CellView = {
      cell,
      host,
      threads,
      fastest: false,
      ...(samples && samples.length >= MIN_SAMPLES_FOR_CI ? { medianCi: medianInterval(samples) } : {}),
      ...(cell.samplesMs?.length ? { latency: summarizeDistribution(cell.samplesMs) } : {}),
    };
    group.cells.push(view);
    cells.push(view);
  }
  for (const section of sections.values()) {
    section.groups.sort((a, b) => a.batchSize - b.batchSize);
    for (const g of section.groups) {
      const timed = g.cells.filter((v) => v.cell.status === 'ok' && v.cell.stats);
      const best = Math.min(...timed.map((v) => v.cell.stats!.medianMs));
      for (const v of timed) {
        v.relativeToFastest = v.cell.stats!.medianMs / best;
        v.fastest = v.cell.stats!.medianMs === best;
      }
    }
  }
  return { run, hosts: hostsOf(run), sections: [...sections.values()], cells };
}

/** Section heading, e.g. `cnn/tiny (cpu)` or `cnn/tiny training (cpu)`, plus the host when a run has several. */
export const sectionTitle = (s: WorkloadSection, multiHost: boolean): string =>
  `${workloadLabel(s)} (${s.device}${s.threadSweep ? `, ${s.threads} threads` : ''})${multiHost ? ` on ${s.host}` : ''}`;

/** One flat row per cell, units in the names: what the CSV, JSON and Markdown reports list. */
export interface CellRow {
  host: string;
  task: Task;
  engine: string;
  mode: string;
  device: string;
  workload: string;
  preset: string;
  params: string;
  batchSize: number;
  threads: number;
  status: string;
  medianMs: number | null;
  medianCiLoMs: number | null;
  medianCiHiMs: number | null;
  p99Ms: number | null;
  samples: number | null;
  throughputSamplesPerS: number | null;
  gflopPerS: number | null;
  peakHostMiB: number | null;
  /** Framework allocator peak on the GPU, where the engine reports one. */
  peakDeviceMiB: number | null;
  coldStartMs: number | null;
  parityRelL2: number | null;
  parityPass: boolean | null;
  /** Median / the group's fastest median. */
  relativeToFastest: number | null;
  fastest: boolean;
  reason: string;
  fix: string;
}

/** The flat row of a cell. */
export function cellRow(v: CellView): CellRow {
  const c = v.cell;
  return {
    host: v.host,
    task: cellTask(c),
    engine: c.engine,
    mode: c.mode,
    device: c.device,
    workload: c.workload,
    preset: c.preset,
    params: paramsText(c.params),
    batchSize: c.batchSize,
    threads: v.threads,
    status: c.status,
    medianMs: c.stats?.medianMs ?? null,
    medianCiLoMs: v.medianCi?.lo ?? null,
    medianCiHiMs: v.medianCi?.hi ?? null,
    p99Ms: c.stats?.p99Ms ?? null,
    samples: c.stats?.n ?? null,
    throughputSamplesPerS: c.throughput ?? null,
    gflopPerS: c.gflops ?? null,
    peakHostMiB: c.memory ? c.memory.peakHostBytes / 2 ** 20 : null,
    peakDeviceMiB: c.memory?.peakDeviceBytes !== undefined ? c.memory.peakDeviceBytes / 2 ** 20 : null,
    coldStartMs: c.coldStart?.totalMs ?? null,
    parityRelL2: c.parity?.relL2 ?? null,
    parityPass: c.parity?.pass ?? null,
    relativeToFastest: v.relativeToFastest ?? null,
    fastest: v.fastest,
    reason: c.reason ?? '',
    fix: c.fix ?? '',
  };
}

/** A named, stacked part of a cold start (ms; undefined where the record has no such segment). */
export interface ColdStartSegment {
  name: string;
  ms: (c: ColdStart) => number | undefined;
}

/** The measured cold-start segments in the order they happen: spawn, the worker's phases (harness/worker/protocol.ts), first run. */
export const COLD_START_SEGMENTS: ColdStartSegment[] = [
  { name: 'spawn', ms: (c) => c.spawnMs },
  ...COLD_START_PHASES.map((k) => ({ name: k === 'compileMs' ? 'compile / trace' : k.slice(0, -'Ms'.length), ms: (c: ColdStart) => c[k] })),
  { name: 'first run', ms: (c) => c.firstRunMs },
];

/** What the segments leave of totalMs: the protocol messages between them (a few ms), or in runs made before import and weight loading were measured, those too. */
export function coldStartRest(c: ColdStart): { name: string; ms: number } {
  const measured = COLD_START_SEGMENTS.reduce((sum, s) => sum + (s.ms(c) ?? 0), 0);
  return { name: c.importMs === undefined ? COLD_START_UNSPLIT : COLD_START_MESSAGES, ms: c.totalMs - measured };
}
/** The rest of a cold start that has every segment: messages between the worker's phases, the parity output's transfer. */
export const COLD_START_MESSAGES = 'messages';
/** The rest of a cold start recorded before the segments were measured. */
export const COLD_START_UNSPLIT = 'import + weights (older run, not split)';

/** What each cold-start column means, for the HTML and Markdown reports. */
export const COLD_START_LEGEND =
  "Per cell, in ms (medians over replicates): spawn = process start to the worker's hello (interpreter and runner start); import = the framework's import (TensorFlow.js: with its backend's initialisation); weights = reading the safetensors files into memory; build = constructing the model with its weights (ORT: InferenceSession creation, where its graph optimizations run); compile / trace = torchscript trace + freeze, or the first call of torch.compile / tf.function / XLA, which compiles (- where the mode has none); first run = the first inference after those, with input preparation and readback (a training cell: its first training step, in which torch.compile, tf.function and XLA trace and compile); messages = total minus all of these (protocol messages between the segments); total = spawn to first output on the orchestrator's clock.";

/** Number formatting shared by the text formats: 3 significant digits, plain decimals from 100 up. */
export const num = (v: number | null | undefined, digits = 3): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(digits);

/**
 * Each ok replicate's own samples (sliced from the cell's pooled samplesMs), those with enough for
 * an interval; none when the replicates' offsets and counts do not tile the pooled samples (a
 * record edited or produced without them), so the caller falls back to the pooled samples.
 */
export function replicateSamples(c: Cell): number[][] {
  const all = c.samplesMs ?? [];
  const reps = (c.replicates ?? []).filter((r) => r.status === 'ok' && r.offset !== undefined && r.n !== undefined);
  if (reps.reduce((sum, r) => sum + r.n!, 0) !== all.length || reps.some((r) => r.offset! + r.n! > all.length)) return [];
  return reps.filter((r) => r.n! >= MIN_SAMPLES_FOR_CI).map((r) => all.slice(r.offset!, r.offset! + r.n!));
}

/**
 * fwbench's one estimator, used by the table, every report format, `compare`, the answer and the
 * claims: a cell's latency is the median of its (clean) samples, `stats.medianMs`; a ratio of
 * cells is the product of the numerator cells' medians over the denominators', so a ratio always
 * equals what the table's medians give. Its 95 % interval is a bootstrap: processes, then samples
 * inside each (replicateRatioInterval) when every cell ran two or more replicates, scaled to this
 * estimate; otherwise the pooled samples (medianRatioInterval), which can only reflect
 * within-process noise. `by` says which. The interval always contains the estimate (a percentile
 * interval of very skewed samples can fall to one side of it; it is then widened to it).
 */
export function ratioOfCells(nums: readonly Cell[], dens: readonly Cell[], opts: BootstrapOptions = {}): Interval & { by: 'replicates' | 'samples' } {
  const median = (c: Cell): number => c.stats?.medianMs ?? sortedMedian(Float64Array.from(c.samplesMs ?? []).sort());
  const estimate = nums.reduce((p, c) => p * median(c), 1) / dens.reduce((p, c) => p * median(c), 1);
  const groups = (side: readonly Cell[]): number[][][] => side.map(replicateSamples);
  const [gn, gd] = [groups(nums), groups(dens)];
  let by: 'replicates' | 'samples' = 'samples';
  let lo: number;
  let hi: number;
  if ([...gn, ...gd].every((g) => g.length >= 2)) {
    const iv = replicateRatioInterval(gn, gd, opts);
    const scale = iv.estimate > 0 ? estimate / iv.estimate : 1;
    [lo, hi, by] = [iv.lo * scale, iv.hi * scale, 'replicates'];
  } else {
    ({ lo, hi } = medianRatioInterval(
      nums.map((c) => c.samplesMs ?? []),
      dens.map((c) => c.samplesMs ?? []),
      opts,
    ));
  }
  return { estimate, lo: Math.min(lo, estimate), hi: Math.max(hi, estimate), by };
}

/** median(b) / median(a) with its interval: ratioOfCells of one cell on each side. */
export const cellRatioInterval = (b: Cell, a: Cell, opts: BootstrapOptions = {}): Interval & { by: 'replicates' | 'samples' } => ratioOfCells([b], [a], opts);

/** The training section of the reports: one row per training cell, already formatted (the HTML and Markdown writers lay it out). */
export function trainingTable(model: RunModel): ReportTable | undefined {
  const cells = model.cells.filter((v) => cellTask(v.cell) === 'training');
  if (cells.length === 0) return undefined;
  const figure = (f: { relL2: number | null; tensor?: string; tolerance: number; pass: boolean } | undefined): string =>
    f
      ? `${f.relL2 === null ? 'NaN' : f.relL2.toExponential(1)}${f.pass ? '' : ` > ${f.tolerance.toExponential(0)} FAIL`}${f.tensor && f.tensor !== 'loss' ? ` (${f.tensor})` : ''}`
      : '-';
  const rows = cells.map((v) => {
    const c = v.cell;
    const cold = c.coldStart;
    const build = cold ? (cold.importMs ?? 0) + (cold.weightsMs ?? 0) + cold.buildMs : undefined;
    const t = c.parity?.training;
    return [
      `${c.workload}/${c.preset}`,
      String(c.batchSize),
      engineMode(c),
      c.status,
      c.stats ? `${num(c.stats.medianMs)}${v.medianCi ? ` [${num(v.medianCi.lo)}, ${num(v.medianCi.hi)}]` : ''}` : '-',
      num(c.stats?.p90Ms),
      num(c.throughput),
      c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-',
      c.memory?.peakDeviceBytes !== undefined ? num(c.memory.peakDeviceBytes / 2 ** 20) : '-',
      num(build),
      num(cold?.firstRunMs),
      figure(t?.loss),
      figure(t?.gradients),
      figure(t?.optimizer),
      figure(t?.updates),
    ];
  });
  return {
    legend:
      'One training step = forward, cross-entropy, backward and the SGD update (momentum 0.9, weight decay 5e-4; docs/training.md), timed with the same stopping rule as inference. Build = import + weights + build of the cold start; first step = the first step after build, where torch.compile, tf.function and XLA trace and compile. Parity against PyTorch in float64 from the same weights, batch and labels, before any timing: relative L2 of the losses of the parity steps, of every gradient at the first step and of every weight update after the first and the last step; optimizer = the first update against the recipe applied to the engine own first gradient (the tensor with the largest error in brackets).',
    head: [
      'workload',
      'batch',
      'engine/mode',
      'status',
      'step ms [95% CI]',
      'p90 ms',
      'samples/s',
      'peak MiB',
      'GPU peak MiB',
      'build ms',
      'first step ms',
      'loss relL2',
      'gradients relL2',
      'optimizer relL2',
      'updates relL2',
    ],
    rows,
  };
}

/** A section of the reports that the model formats and the writers lay out: a legend, a table and notes under it. */
export interface ReportTable {
  legend: string;
  head: string[];
  rows: string[][];
  /** Lines under the table (summaries). */
  notes?: string[];
}

/** The shape-stream section of the reports: one row per stream cell, already formatted (the HTML and Markdown writers lay it out). */
export function streamTable(model: RunModel): ReportTable | undefined {
  const cells = model.cells.filter((v) => v.cell.shapes === 'stream');
  if (cells.length === 0) return undefined;
  const count = (n: number | null | undefined): string => (n === null || n === undefined ? '-' : String(n));
  const rows = cells.map((v) => {
    const c = v.cell;
    const s = c.stream;
    const p = c.parity;
    return [
      `${c.workload}/${c.preset}`,
      String(c.batchSize),
      c.padding ?? '-',
      engineMode(c),
      c.status,
      num(s?.coldMs),
      num(s?.compileMs),
      num(s?.runMs),
      s ? `${count(s.compiles.afterCold)} → ${count(s.compiles.afterWarm)}` : '-',
      s ? `${s.distinctShapes}` : '-',
      num(s?.firstSightMs),
      num(s?.repeatMs),
      c.stats ? `${num(c.stats.medianMs)}${v.medianCi ? ` [${num(v.medianCi.lo)}, ${num(v.medianCi.hi)}]` : ''}` : '-',
      num(s?.perRealTokenUs),
      s ? `${num(s.fixed.medianMs)} [${num(s.fixed.loMs)}, ${num(s.fixed.hiMs)}]` : '-',
      s ? `${num(s.dynamicPenalty)}x` : '-',
      s ? `${num(s.warmPenalty)}x` : '-',
      s ? `${num(s.paddedFlops / s.usefulFlops)}x` : '-',
      c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-',
      p
        ? `${p.relL2 === null ? 'NaN' : p.relL2.toExponential(1)}${p.pass ? '' : ` > ${p.tolerance.toExponential(0)} FAIL`}${p.stream ? ` (${p.stream.shapes} shapes)` : ''}`
        : '-',
    ];
  });
  return {
    legend: `A stream is ${STREAM.batches} seeded batches whose rows have different lengths (the same for every engine; docs/shapes.md), padded by the cell's strategy (exact: to the batch's longest row; bucket: to the next bucket; max: to the preset's length) and masked. Cold = the first pass over the stream, the time a user feels, every compilation included (plus the mode's compile segment of the cold start); compile = the part of it spent compiling and tracing (each cold batch's excess over its own warm median); compiles = the framework's own count after the cold pass → after the warm passes (- : the mode compiles nothing). First sight / repeat: median over the distinct shapes of a shape's first batch and of the same batch warm. Warm = a whole pass once every shape is compiled, with the 95 % interval of the median over passes. Fixed = one batch at the full length, timed with the usual stopping rule; penalty = cold (or warm) / (batches x fixed): below 1, padding less beat one fixed shape. Padded/useful = forward FLOPs as run over FLOPs of the real tokens. Parity: every batch, each row against the reference's logits for that row alone and unpadded (worst batch).`,
    head: [
      'workload',
      'batch',
      'padding',
      'engine/mode',
      'status',
      'cold ms',
      'compile ms',
      'run ms',
      'compiles',
      'shapes',
      'first sight ms',
      'repeat ms',
      'warm ms [95% CI]',
      'µs / real token',
      'fixed ms [95% CI]',
      'penalty',
      'warm penalty',
      'padded / useful',
      'peak MiB',
      'parity relL2',
    ],
    rows,
  };
}

/**
 * The precision section of the reports (docs/precision.md), for runs with a reduced precision:
 * every inference cell of a workload, batch and engine/mode that ran one, with its speed-up over the
 * same engine/mode/batch at fp32 (the ratio of medians with its 95 % bootstrap interval) beside its
 * accuracy against the fp32 reference (relative L2 and top-1 agreement, each with its gate), and the
 * evidence of the precision it computed in. Its notes name, per workload and batch, the fastest
 * cell within its precision's accuracy budget (every ok cell passed its gates) next to the fastest
 * fp32 cell.
 */
export function precisionTable(model: RunModel): ReportTable | undefined {
  const inference = model.cells.filter((v) => cellTask(v.cell) === 'inference' && v.cell.shapes !== 'stream');
  if (!inference.some((v) => cellPrecision(v.cell) !== 'fp32')) return undefined;
  const at = (c: Cell): string => [c.workload, paramsText(c.params), c.device, c.batchSize, cellHost(model.run, c), cellThreads(model.run, c)].join('|');
  const fp32Of = new Map(inference.filter((v) => cellPrecision(v.cell) === 'fp32').map((v) => [`${at(v.cell)}|${engineMode(v.cell)}`, v.cell]));
  // Rows: the engine/modes that ran a reduced precision, each beside its fp32 cell; what was skipped is said once, under the table.
  const reducedCells = inference.filter((v) => cellPrecision(v.cell) !== 'fp32');
  const reduced = new Set(reducedCells.filter((v) => v.cell.status !== 'skipped').map((v) => `${at(v.cell)}|${engineMode(v.cell)}`));
  const skipped = [...new Set(reducedCells.filter((v) => v.cell.status === 'skipped').map((v) => `${cellPrecision(v.cell)} skipped: ${v.cell.reason ?? ''}`))];
  const shown = inference
    .filter((v) => reduced.has(`${at(v.cell)}|${engineMode(v.cell)}`) && v.cell.status !== 'skipped')
    .sort(
      (a, b) =>
        at(a.cell).localeCompare(at(b.cell)) ||
        engineMode(a.cell).localeCompare(engineMode(b.cell)) ||
        PRECISIONS_ORDER.indexOf(cellPrecision(a.cell)) - PRECISIONS_ORDER.indexOf(cellPrecision(b.cell)),
    );
  const rows = shown.map((v) => {
    const c = v.cell;
    const base = fp32Of.get(`${at(c)}|${engineMode(c)}`);
    const timed = (x: Cell | undefined): x is Cell => x?.status === 'ok' && x.stats !== undefined;
    const speedup = cellPrecision(c) !== 'fp32' && timed(c) && timed(base) ? cellRatioInterval(base, c) : undefined;
    const p = c.parity;
    const agreement = p?.precision?.argmaxAgreement;
    const gate = p?.precision?.minArgmaxAgreement;
    return [
      `${c.workload}/${c.preset}`,
      String(c.batchSize),
      engineMode(c),
      cellPrecision(c),
      c.status,
      c.stats ? `${num(c.stats.medianMs)}${v.medianCi ? ` [${num(v.medianCi.lo)}, ${num(v.medianCi.hi)}]` : ''}` : '-',
      speedup ? `${num(speedup.estimate)}x [${num(speedup.lo)}, ${num(speedup.hi)}]` : cellPrecision(c) === 'fp32' ? '1 (baseline)' : '-',
      p?.relL2 !== null && p?.relL2 !== undefined ? `${p.relL2.toExponential(1)} (≤ ${p.tolerance.toExponential()})` : '-',
      agreement !== null && agreement !== undefined ? `${(agreement * 100).toFixed(0)} %${gate !== undefined ? ` (≥ ${(gate * 100).toFixed(0)} %)` : ''}` : '-',
      `${p?.precision?.evidence ?? '-'}${p?.precision?.ties ? `; ${p.precision.ties} near tie(s) left out of top-1` : ''}`,
      c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-',
    ];
  });
  const fastest: string[] = [];
  for (const key of new Set(shown.map((v) => `${v.cell.workload}/${v.cell.preset}|${v.cell.batchSize}|${at(v.cell)}`))) {
    const cells = shown.filter(
      (v) => `${v.cell.workload}/${v.cell.preset}|${v.cell.batchSize}|${at(v.cell)}` === key && v.cell.status === 'ok' && v.cell.stats,
    );
    if (cells.length === 0) continue;
    const best = cells.reduce((a, b) => (b.cell.stats!.medianMs < a.cell.stats!.medianMs ? b : a)).cell;
    const fp32 = cells.filter((v) => cellPrecision(v.cell) === 'fp32');
    const bestFp32 = fp32.length ? fp32.reduce((a, b) => (b.cell.stats!.medianMs < a.cell.stats!.medianMs ? b : a)).cell : undefined;
    const vs =
      bestFp32 && bestFp32 !== best
        ? `, ${num(bestFp32.stats!.medianMs / best.stats!.medianMs)}x faster than the fastest fp32 cell, ${engineMode(bestFp32)} ${num(bestFp32.stats!.medianMs)} ms`
        : bestFp32 === best
          ? ' (no reduced precision beat it)'
          : '';
    fastest.push(
      `${best.workload}/${best.preset}, batch ${best.batchSize}: fastest within its accuracy budget ${engineMode(best)} ${cellPrecision(best)} ${num(best.stats!.medianMs)} ms${vs}`,
    );
  }
  return {
    legend: `Each reduced precision (${PRECISIONS_ORDER.filter((p) => p !== 'fp32')
      .map((p) => `${p}: relL2 ≤ ${PRECISION[p].relL2Tolerance!.toExponential()}, top-1 ≥ ${(PRECISION[p].minArgmaxAgreement! * 100).toFixed(0)} %`)
      .join(
        '; ',
      )}) is judged against the fp32 reference, after the worker showed from the framework's own dtypes that it computed in that precision (evidence); top-1 agreement counts the rows the reference decides (near ties left out). Speed-up = median of the same engine/mode/batch at fp32 / this cell's median, with its 95 % bootstrap interval. A combination an engine cannot run is skipped with its reason.`,
    head: [
      'workload',
      'batch',
      'engine/mode',
      'precision',
      'status',
      'median ms [95% CI]',
      'speed-up vs fp32',
      'relL2 vs fp32 (gate)',
      'top-1 agreement (gate)',
      'evidence',
      'peak MiB',
    ],
    rows,
    notes: [...fastest, ...skipped],
  };
}

/** The precisions in their declared order (tables list a cell's fp32 baseline first). */
const PRECISIONS_ORDER = Object.keys(PRECISION) as Precision[];

/**
 * The generation section of the reports (docs/generation.md): one row per generation cell with time
 * to first token, time per output token (median and p90 over every decode step), prefill and decode
 * tokens per second, the whole generation with its 95 % interval, the cache's speed-up (the same
 * engine/mode without its cache over with it, the ratio of medians with its 95 % bootstrap interval),
 * the cold generation, compile counts, peak memory and parity. Its notes name, per workload, batch
 * and prompt, the engine/mode with the lowest time to first token and the one with the highest decode
 * rate, and how the decode rate moves with the prompt length when a run swept it.
 */
export function generationTable(model: RunModel): ReportTable | undefined {
  const cells = model.cells.filter((v) => cellTask(v.cell) === 'generate');
  if (cells.length === 0) return undefined;
  const at = (c: Cell): string =>
    [c.workload, paramsText(c.params), c.device, c.batchSize, cellGeneration(c), cellHost(model.run, c), cellThreads(model.run, c)].join('|');
  const of = new Map(cells.map((v) => [`${at(v.cell)}|${v.cell.engine}/${v.cell.mode}|${v.cell.generation?.cache}`, v.cell]));
  const timed = (x: Cell | undefined): x is Cell => x?.status === 'ok' && x.stats !== undefined;
  const ci = (m: { medianMs: number; loMs: number; hiMs: number } | null | undefined): string =>
    m ? `${num(m.medianMs)} [${num(m.loMs)}, ${num(m.hiMs)}]` : '-';
  const count = (n: number | null | undefined): string => (n === null || n === undefined ? '-' : String(n));
  const shown = [...cells].sort((a, b) => at(a.cell).localeCompare(at(b.cell)) || engineMode(a.cell).localeCompare(engineMode(b.cell)));
  const rows = shown.map((v) => {
    const c = v.cell;
    const g = c.generation;
    const p = c.parity;
    const none = g?.cache === 'kv' ? of.get(`${at(c)}|${c.engine}/${c.mode}|none`) : undefined;
    const speedup = timed(c) && timed(none) ? cellRatioInterval(none, c) : undefined;
    return [
      `${c.workload}/${c.preset}`,
      String(c.batchSize),
      g ? `${g.promptLength} + ${g.newTokens}` : '-',
      `${c.engine}/${c.mode}`,
      g?.cache ?? '-',
      c.status,
      ci(g?.ttftMs),
      ci(g?.tpotMs),
      num(g?.tpotMs?.p90Ms),
      num(g?.prefillTokensPerS),
      num(g?.decodeTokensPerS),
      ci(g?.e2eMs),
      speedup ? `${num(speedup.estimate)}x [${num(speedup.lo)}, ${num(speedup.hi)}]` : '-',
      num(g?.cold?.ttftMs),
      num(g?.cold?.e2eMs),
      g?.compiles ? `${count(g.compiles.afterCold)} → ${count(g.compiles.afterWarm)}` : '-',
      c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-',
      p
        ? `${p.relL2 === null ? 'NaN' : p.relL2.toExponential(1)}${p.pass ? '' : ` > ${p.tolerance.toExponential(0)} FAIL`}${
            p.generation ? `; ids ${p.generation.rowsMatching}/${c.batchSize} rows equal${p.generation.ties ? `, ${p.generation.ties} near tie(s)` : ''}` : ''
          }`
        : '-',
    ];
  });
  const notes: string[] = [];
  const ok = cells.filter((v) => timed(v.cell) && v.cell.generation?.ttftMs);
  for (const key of new Set(ok.map((v) => at(v.cell)))) {
    const here = ok.filter((v) => at(v.cell) === key).map((v) => v.cell);
    const c0 = here[0]!;
    const first = here.reduce((a, b) => (b.generation!.ttftMs!.medianMs < a.generation!.ttftMs!.medianMs ? b : a));
    const decoding = here.filter((c) => c.generation!.decodeTokensPerS);
    const rate = decoding.length ? decoding.reduce((a, b) => (b.generation!.decodeTokensPerS! > a.generation!.decodeTokensPerS! ? b : a)) : undefined;
    notes.push(
      `${c0.workload}/${c0.preset}, batch ${c0.batchSize}, prompt ${c0.generation!.promptLength} + ${c0.generation!.newTokens} new: lowest time to first token ${engineMode(first)} ${num(first.generation!.ttftMs!.medianMs)} ms${
        rate ? `; highest decode rate ${engineMode(rate)} ${num(rate.generation!.decodeTokensPerS)} tokens/s` : ''
      }`,
    );
  }
  const prompts = [...new Set(ok.map((v) => v.cell.generation!.promptLength))].sort((a, b) => a - b);
  if (prompts.length > 1) {
    const series = new Map<string, Cell[]>();
    for (const v of ok) {
      const k = `${v.cell.workload}/${v.cell.preset} b${v.cell.batchSize} ${engineMode(v.cell)}`;
      series.set(k, [...(series.get(k) ?? []), v.cell]);
    }
    for (const [k, cs] of series) {
      const by = prompts.map((pl) => cs.find((c) => c.generation!.promptLength === pl));
      notes.push(`decode tokens/s vs prompt length, ${k}: ${prompts.map((pl, i) => `${pl}: ${num(by[i]?.generation?.decodeTokensPerS)}`).join(', ')}`);
    }
  }
  return {
    legend:
      'Greedy generation from the same prompts on every engine (docs/generation.md): step 0 is the prefill (the whole prompt in one pass; its time is the time to first token, TTFT), every later step one decode step (time per output token, TPOT: median with its 95 % interval and p90 over every decode step of every warm generation). Each step includes the readback of its token ids. Prefill tokens/s = batch x prompt / TTFT; decode tokens/s = batch x (new - 1) / the decode steps of a generation; generation = one whole generation (the cell samples), with its 95 % interval. Cache kv keeps every layer keys and values; none recomputes the whole sequence every step; cache speed-up = the same engine/mode without the cache over with it (ratio of medians, 95 % bootstrap interval). Cold = the first generation after build, where compiled modes compile; compiles = the framework own count after it → after the warm ones. Parity before any timing: every row token ids against the reference generation (ONNX Runtime, optimizations disabled, with its cache) and every step logits (worst step relative L2).',
    head: [
      'workload',
      'batch',
      'prompt + new',
      'engine/mode',
      'cache',
      'status',
      'TTFT ms [95% CI]',
      'TPOT ms [95% CI]',
      'TPOT p90 ms',
      'prefill tok/s',
      'decode tok/s',
      'generation ms [95% CI]',
      'cache speed-up',
      'cold TTFT ms',
      'cold generation ms',
      'compiles',
      'peak MiB',
      'parity',
    ],
    rows,
    notes,
  };
}

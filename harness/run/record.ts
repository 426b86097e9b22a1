import { hostname } from 'node:os';
import { TRAINING_FLOPS_FACTOR } from '../../workloads/training.js';
import { shapeStream, streamFlops } from '../../workloads/shapes.js';
import { streamFigures, warmBatchMedians } from '../stats/stream.js';
import { streamRun } from './shapes.js';
import { generationRun } from './generate.js';
import { generationFigures } from '../stats/generate.js';
import { generationFlops } from '../../workloads/generate.js';
import { medianAbsoluteDeviation } from 'simple-statistics';
import { ENGINES } from '../engines/registry.js';
import { hostFingerprint, type HostInfo } from '../diagnostics/detect/host.js';
import { diagnosticsFields, withFractionOfPeak, type RunDiagnostics } from '../diagnostics/run-checks.js';
import { ResultsStore, SCHEMA_VERSION, type Cell, type ColdStart, type EngineStatus, type Replicate, type Run, type RunConfig } from '../results/schema.js';
import { bootstrapCis, flagOutliers, nsToMs, reliablePercentiles, summarize, type Stats } from '../stats/summary.js';
import { TOOL_VERSION } from '../version.js';
import { classifyFailure, type FailureCause } from './failure.js';
import type { WorkerOutcome } from './outcome.js';
import { judgeLoad } from './contention.js';
import { largestBatchFit, type PlannedCell } from './plan.js';

/**
 * Recording a run: worker outcomes become cell records (statistics, warnings, the replicates
 * folded into one cell), each final cell is appended to DIR/cells.jsonl, and DIR/run.json holds
 * the whole run.
 */

/** The engine's declared mechanism for a cell's reduced precision, when it has one. */
function precisionMechanism(c: PlannedCell): { precisionMechanism?: string } {
  const way = c.precision === 'fp32' ? undefined : ENGINES[c.engine].precisions[c.precision];
  return way && typeof way !== 'string' ? { precisionMechanism: way.mechanism } : {};
}

/** What every record of a planned cell holds, whatever its status. */
export function baseRecord(c: PlannedCell, config: RunConfig, startedAt: string): Omit<Cell, 'status' | 'reason' | 'durationMs'> {
  // A stream cell's sample is a pass over the whole stream: its FLOPs are the rows' at their real lengths.
  const streamed = c.shapes === 'stream' && c.padding && c.family.lengthParam && c.task === 'inference';
  // A generation cell's sample is one whole generation of the batch: the prefill and every decode step.
  const generated = c.generation ? generationFlops(c.params, c.generation) : undefined;
  const flops = streamed
    ? streamFlops(c.family, c.params, shapeStream(c.family, c.params, config.seed, c.batchSize), c.padding!).useful
    : generated
      ? (generated.prefill + generated.decode) * c.batchSize
      : c.family.flopsPerSample(c.params) * c.batchSize * (c.task === 'training' ? TRAINING_FLOPS_FACTOR : 1);
  return {
    id: c.id,
    ...(c.task !== 'inference' ? { task: c.task } : {}),
    ...(c.generation ? { generation: { ...c.generation } } : {}),
    ...(c.shapes === 'stream' ? { shapes: c.shapes, ...(c.padding ? { padding: c.padding } : {}) } : {}),
    ...(c.precision !== 'fp32' ? { precision: c.precision, ...precisionMechanism(c) } : {}),
    engine: c.engine,
    framework: ENGINES[c.engine].framework,
    mode: c.mode,
    device: c.device,
    workload: c.family.name,
    preset: c.preset,
    params: c.params,
    batchSize: c.batchSize,
    threads: c.threads,
    seed: config.seed,
    flops,
    startedAt,
  };
}

/** One worker process's outcome for a cell, with its parity verdict and start time. */
export interface ReplicateOutcome {
  o: WorkerOutcome;
  parity: Cell['parity'];
  startedAt: string;
  /** Why its timing is not trusted (harness/run/contention.ts), when the machine was busy: kept, never pooled. */
  contended?: string;
}

const medianOf = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

type RepStatus = { status: Replicate['status']; reason: string | null; fix?: string; phase?: string; cause?: FailureCause };

/** Why a training cell failed parity: the figures past their tolerance, each with its tensor. */
function trainingParityReason(parity: NonNullable<Cell['parity']>): string {
  const t = parity.training!;
  if (t.problem) return `training step could not be compared with ${parity.reference}: ${t.problem}`;
  const failing = (['loss', 'gradients', 'optimizer', 'updates'] as const)
    .filter((k) => !t[k].pass)
    .map((k) => `${k} relL2 ${t[k].relL2?.toExponential(2) ?? 'NaN'}${t[k].tensor ? ` (${t[k].tensor})` : ''} > ${t[k].tolerance.toExponential(0)}`);
  return `training step differs from ${parity.reference}: ${failing.join('; ')}`;
}

/** The status of one replicate: skipped (engine unavailable), parity-failed, failed or ok. */
export function replicateStatus(o: WorkerOutcome, parity: Cell['parity']): RepStatus {
  if (o.error?.unavailable) return { status: 'skipped', reason: o.error.message, ...(o.error.fix ? { fix: o.error.fix } : {}) };
  if (parity && !parity.pass)
    return {
      status: 'parity-failed',
      reason: parity.training
        ? trainingParityReason(parity)
        : parity.problem
          ? `output checked against ${parity.reference}: ${parity.problem}`
          : `output differs from ${parity.reference}: relL2 ${parity.relL2}, maxAbs ${parity.maxAbs} (tolerance ${parity.tolerance})`,
    };
  if (!o.done || !o.samples || o.error) {
    const f = classifyFailure(o);
    return { status: 'failed', reason: f.reason, cause: f.cause, ...(o.error?.phase || o.phase ? { phase: o.error?.phase ?? o.phase } : {}) };
  }
  return { status: 'ok', reason: null };
}

function replicateRecord(index: number, r: ReplicateOutcome, st: RepStatus, offset: number): Replicate {
  const { o, parity } = r;
  const timed = st.status === 'ok' || st.status === 'contended';
  const samplesMs = o.samples && timed ? nsToMs(o.samples.samplesNs) : undefined;
  const load = o.samples?.load;
  const others = judgeLoad(load)?.othersCores;
  const stats = samplesMs?.length ? summarize(samplesMs) : undefined;
  const iv = o.samples?.interval;
  return {
    index,
    ...(o.hello ? { pid: o.hello.pid } : {}),
    startedAt: r.startedAt,
    status: st.status,
    reason: st.reason,
    ...(parity ? { parity } : {}),
    ...(stats && o.samples
      ? {
          n: stats.n,
          medianMs: stats.medianMs,
          cv: stats.cv,
          ...(st.status === 'ok' ? { offset } : {}),
          ...(iv ? { interval: { medianMs: iv.medianNs / 1e6, loMs: iv.loNs / 1e6, hiMs: iv.hiNs / 1e6, halfWidthPct: iv.halfWidthPct } } : {}),
          stopReason: o.samples.stopReason,
          warmupStopReason: o.samples.warmupStopReason,
          ...(o.samples.warmupNs.length ? { firstWarmupMs: o.samples.warmupNs[0]! / 1e6 } : {}),
          ...(o.samples.clockResolutionNs !== undefined ? { clockResolutionNs: o.samples.clockResolutionNs } : {}),
        }
      : {}),
    ...(o.memory
      ? { memory: { peakHostBytes: o.memory.peakHostBytes, ...(o.memory.peakDeviceBytes !== undefined ? { peakDeviceBytes: o.memory.peakDeviceBytes } : {}) } }
      : {}),
    ...(o.built && o.parity && o.spawnMs !== undefined && o.toFirstOutputMs !== undefined
      ? {
          coldStart: {
            spawnMs: o.spawnMs,
            ...o.built.phases,
            // The first output: a generation's is its first token (the cold prefill).
            firstRunMs: o.parity.type === 'parity' ? o.parity.firstRunMs : o.parity.type === 'train-parity' ? o.parity.firstStepMs : o.parity.passNs[0]! / 1e6,
            totalMs: o.toFirstOutputMs,
          },
        }
      : {}),
    ...(load ? { load } : {}),
    ...(others !== undefined ? { othersCores: others } : {}),
    ...(o.parity?.type === 'stream-parity'
      ? {
          stream: {
            coldPassMs: nsToMs(o.parity.passNs),
            warmBatchMs: o.passes?.passesNs.length ? warmBatchMedians(o.passes.passesNs.map(nsToMs)) : [],
            compiles: { afterCold: o.parity.compiles, afterWarm: o.passes?.compiles ?? null },
            ...(o.fixedSamples?.samplesNs.length ? { fixedMs: medianOf(nsToMs(o.fixedSamples.samplesNs)) } : {}),
          },
        }
      : {}),
    ...(o.parity?.type === 'generate-parity'
      ? {
          generation: {
            coldPassMs: nsToMs(o.parity.passNs),
            warmStepMs: o.passes?.passesNs.length ? warmBatchMedians(o.passes.passesNs.map(nsToMs)) : [],
            compiles: { afterCold: o.parity.compiles, afterWarm: o.passes?.compiles ?? null },
          },
        }
      : {}),
  };
}

/** Measurement-quality warnings of an ok cell. */
export function cellWarnings(stats: Stats, reps: Replicate[], samplesMs: number[]): NonNullable<Cell['warnings']> {
  const w: NonNullable<Cell['warnings']> = [];
  const robustCv = samplesMs.length > 1 && stats.medianMs > 0 ? (1.4826 * medianAbsoluteDeviation(samplesMs)) / stats.medianMs : 0;
  const tag = (r: Replicate): string => (reps.length > 1 ? `replicate ${r.index}: ` : '');
  // A robust spread (scaled MAD), so a handful of rare stalls (GC, a preempted core) does not make
  // every cell of a busy machine "noisy"; the plain CV stays in stats.cv.
  if (robustCv > 0.1) w.push({ code: 'high-cv', message: `robust CV (1.4826 MAD / median) ${(robustCv * 100).toFixed(1)} % > 10 %` });
  for (const r of reps) {
    if (r.status === 'contended') w.push({ code: 'contended', message: `replicate ${r.index} contended and re-run: ${r.reason}` });
  }
  for (const r of reps) {
    if (r.firstWarmupMs !== undefined && r.medianMs !== undefined && r.firstWarmupMs > 10 * r.medianMs)
      w.push({ code: 'slow-first-run', message: `${tag(r)}first warm-up ${r.firstWarmupMs.toPrecision(3)} ms > 10x median ${r.medianMs.toPrecision(3)} ms` });
  }
  for (const r of reps) {
    if (r.clockResolutionNs && r.medianMs !== undefined && r.medianMs * 1e6 < 100 * r.clockResolutionNs)
      w.push({ code: 'timer-resolution', message: `${tag(r)}median ${r.medianMs.toPrecision(3)} ms < 100x clock resolution ${r.clockResolutionNs} ns` });
  }
  for (const r of reps) {
    if (r.stopReason !== undefined && r.stopReason !== 'target-interval')
      w.push({ code: 'target-not-reached', message: `${tag(r)}stopped at ${r.stopReason} with ±${r.interval?.halfWidthPct.toFixed(2) ?? '?'} % (n ${r.n})` });
  }
  return w;
}

/** Each cold-start field's median over the replicates that have it (compileMs only where the mode compiles; old records lack the segments). */
function medianColdStart(cold: ColdStart[]): ColdStart {
  const fields = [...new Set(cold.flatMap((x) => Object.keys(x) as Array<keyof ColdStart>))];
  return Object.fromEntries(fields.map((k) => [k, medianOf(cold.flatMap((x) => (x[k] === undefined ? [] : [x[k]])))])) as ColdStart;
}

/** Turns the outcomes of a cell's replicates (worker processes, in run order) into one cell record. */
export function cellFromReplicates(c: PlannedCell, config: RunConfig, startedAt: string, durationMs: number, outcomes: ReplicateOutcome[]): Cell {
  const base = baseRecord(c, config, startedAt);
  const statuses = outcomes.map((r): RepStatus => {
    const st = replicateStatus(r.o, r.parity);
    return st.status === 'ok' && r.contended ? { status: 'contended', reason: r.contended } : st;
  });
  let offset = 0;
  const reps = outcomes.map((r, i) => {
    const rec = replicateRecord(i, r, statuses[i]!, offset);
    if (rec.status === 'ok') offset += rec.n ?? 0;
    return rec;
  });
  const bad = ['skipped', 'parity-failed', 'failed'].map((s) => statuses.findIndex((x) => x.status === s)).find((i) => i >= 0);
  // Only clean replicates are pooled: a contended one keeps its figures in `replicates`.
  const clean = outcomes.filter((_, i) => statuses[i]!.status === 'ok');
  const cleanReps = reps.filter((r) => r.status === 'ok');
  const pick =
    bad ??
    Math.max(
      0,
      statuses.findIndex((x) => x.status === 'ok'),
    );
  const o = outcomes[pick]!.o;
  const parities = outcomes.map((r) => r.parity).filter((p): p is NonNullable<Cell['parity']> => p !== undefined);
  const parity =
    bad !== undefined
      ? outcomes[bad]!.parity
      : parities.reduce<Cell['parity']>((w, p) => (!w || (p.relL2 ?? Infinity) > (w.relL2 ?? Infinity) ? p : w), undefined);
  const mem = reps.flatMap((r) => (r.memory ? [r.memory] : []));
  const dev = mem.flatMap((m) => (m.peakDeviceBytes !== undefined ? [m.peakDeviceBytes] : []));
  const cold = reps.flatMap((r) => (r.coldStart ? [r.coldStart] : []));
  const worker = { pid: o.hello?.pid, exitCode: o.exitCode, signal: o.signal, logTail: o.logTail };
  const built = outcomes.find((r) => r.o.built)?.o.built;
  const extras = {
    ...(parity ? { parity } : {}),
    ...(built ? { settings: built.settings } : {}),
    ...(mem.length ? { memory: { peakHostBytes: medianOf(mem.map((m) => m.peakHostBytes)), ...(dev.length ? { peakDeviceBytes: medianOf(dev) } : {}) } } : {}),
    ...(cold.length ? { coldStart: medianColdStart(cold) } : {}),
    replicates: reps,
    worker,
  };
  if (bad !== undefined) {
    const st = statuses[bad]!;
    const reason = `${outcomes.length > 1 ? `replicate ${bad}: ` : ''}${st.reason}`;
    return {
      ...base,
      ...extras,
      status: st.status as 'skipped' | 'parity-failed' | 'failed',
      reason,
      ...(st.fix ? { fix: st.fix } : {}),
      ...(st.phase ? { phase: st.phase } : {}),
      ...(st.cause ? { cause: st.cause } : {}),
      durationMs,
    };
  }
  if (clean.length === 0) {
    return {
      ...base,
      ...extras,
      status: 'unstable',
      reason: `every replicate's timed loop was contended, so no timing is trusted: ${reps.map((r) => `replicate ${r.index}: ${r.reason}`).join('; ')}`,
      fix: 'run it again on a quiet machine: fwbench doctor names what else is running; fwbench run --wait-idle waits for a quiet machine first',
      durationMs,
    };
  }
  const samplesMs = clean.flatMap((r) => nsToMs(r.o.samples!.samplesNs));
  const stats: Stats = { ...summarize(samplesMs), ...bootstrapCis(samplesMs), reliablePercentiles: reliablePercentiles(samplesMs.length) };
  const medians = cleanReps.map((r) => r.medianMs!);
  const mMean = medians.reduce((a, b) => a + b, 0) / medians.length;
  const betweenCv = medians.length > 1 && mMean > 0 ? Math.sqrt(medians.reduce((a, m) => a + (m - mMean) ** 2, 0) / (medians.length - 1)) / mMean : 0;
  const stops = [...new Set(cleanReps.map((r) => r.stopReason!))];
  const runs = c.shapes === 'stream' && c.padding ? clean.flatMap((r) => streamRun(r.o) ?? []) : [];
  const shapes = runs.length ? shapeStream(c.family, c.params, config.seed, c.batchSize) : undefined;
  const stream = shapes ? streamFigures(shapes, c.padding!, runs, streamFlops(c.family, c.params, shapes, c.padding!)) : undefined;
  const genRuns = c.generation ? clean.flatMap((r) => generationRun(r.o) ?? []) : [];
  const generation = genRuns.length
    ? { ...base.generation!, ...generationFigures(c.generation!, c.batchSize, genRuns, generationFlops(c.params, c.generation!)) }
    : undefined;
  // Samples per second: the rows of one timed sample (a stream cell's sample is the whole stream).
  const rows = stream ? stream.batches * c.batchSize : c.batchSize;
  return {
    ...base,
    ...extras,
    ...(stream ? { stream } : {}),
    ...(generation ? { generation } : {}),
    status: 'ok',
    reason: null,
    stats,
    samplesMs,
    warmupMs: clean.flatMap((r) => nsToMs(r.o.samples!.warmupNs)),
    stopReason: stops.join(','),
    warmupStopReason: [...new Set(cleanReps.map((r) => r.warmupStopReason!))].join(','),
    variation: { withinCv: cleanReps.reduce((a, r) => a + r.cv!, 0) / cleanReps.length, betweenCv },
    outliers: flagOutliers(samplesMs),
    warnings: cellWarnings(stats, reps, samplesMs),
    throughput: rows / (stats.medianMs / 1000),
    gflops: base.flops / (stats.medianMs / 1000) / 1e9,
    durationMs,
  };
}

/** What a run record starts from: the run's setting and, on `--resume`, the run it continues. */
export interface RunStart {
  store: ResultsStore;
  command: string[];
  /** When this invocation started (ISO). */
  startedAt: string;
  host: HostInfo;
  engines: Record<string, EngineStatus>;
  config: RunConfig;
  /** Every planned cell, in run order. */
  cells: PlannedCell[];
  diagnostics: RunDiagnostics;
  resume?: { run: Run; cells: Cell[] };
}

/**
 * The run on disk. run.json is written before the first cell (state `running`, with the
 * configuration, so even a kill -9 can be resumed), each cell is appended to cells.jsonl the
 * moment it is final, and run.json is rewritten at the end (`complete`) or on interruption.
 */
export class RunRecord {
  /** Finished cells by id (those of the run resumed included). */
  readonly done: Map<string, Cell>;
  private readonly header: Omit<Run, 'finishedAt' | 'state' | 'cells'>;

  constructor(private readonly s: RunStart) {
    const { resume } = s;
    this.done = new Map((resume?.cells ?? []).map((c) => [c.id, c]));
    this.header = {
      schemaVersion: SCHEMA_VERSION,
      tool: { name: 'fwbench', version: TOOL_VERSION },
      command: resume?.run.command ?? s.command,
      startedAt: resume?.run.startedAt ?? s.startedAt,
      host: s.host,
      hostFingerprint: hostFingerprint(s.host),
      engines: s.engines,
      config: s.config,
      orchestrator: { pid: process.pid, hostname: hostname() },
      ...(resume ? { resumes: [...(resume.run.resumes ?? []), { startedAt: s.startedAt, command: s.command, cellsBefore: this.done.size }] } : {}),
    };
  }

  /** Makes a final cell durable: cells.jsonl, with its fraction of the machine's peak. */
  finish(raw: Cell): Cell {
    const cell = withFractionOfPeak(raw, this.s.diagnostics);
    this.s.store.appendCell(cell);
    this.done.set(cell.id, cell);
    return cell;
  }

  /** Writes run.json in `state`; `interruptedBy` names the signal of an interrupted run. */
  write(state: NonNullable<Run['state']>, interruptedBy = 'unknown'): Run {
    const records = this.s.cells.filter((c) => this.done.has(c.id)).map((c) => this.done.get(c.id)!);
    const run: Run = {
      ...this.header,
      finishedAt: new Date().toISOString(),
      state,
      ...(state === 'interrupted' ? { interruption: { signal: interruptedBy, at: new Date().toISOString() } } : {}),
      cells: records,
      ...(largestBatchFit(records).length ? { largestBatchFit: largestBatchFit(records) } : {}),
      ...diagnosticsFields(this.s.diagnostics, this.s.config, records),
    };
    this.s.store.writeRun(run);
    return run;
  }
}

import { hostname } from 'node:os';
import { join } from 'node:path';
import { getFamily, resolveParams, setsForFamily, type Params, type WorkloadFamily } from '../../workloads/index.js';
import { cacheEntryOk, recordCacheEntry } from '../../workloads/cache.js';
import { cacheDir, materialize, type Materialized } from '../../workloads/materialize.js';
import { loadTensors, saveTensors } from '../../workloads/safetensors.js';
import { detectHost, hostFingerprint } from '../diagnostics/detect/host.js';
import { ENGINES, getEngine, modesToRun } from '../engines/registry.js';
import type { Device, EngineId } from '../engines/types.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from '../stats/parity.js';
import { PROTOCOL_VERSION, type ToWorker } from '../worker/protocol.js';
import { diagnosticsFields, startDiagnostics, withFractionOfPeak } from '../diagnostics/run-checks.js';
import {
  ResultsStore,
  SCHEMA_VERSION,
  type BatchFit,
  type Cell,
  type ColdStart,
  type EngineStatus,
  type Replicate,
  type Run,
  type RunConfig,
} from '../results/schema.js';
import { classifyFailure, describeFailure, type FailureCause } from './failure.js';
import type { WorkerOutcome } from './outcome.js';
import { environmentDifferences } from './resume.js';
import { runEngineWorker, stopAllWorkers, threadEnv } from './workers.js';
import { InputError } from '../errors.js';
import { medianAbsoluteDeviation } from 'simple-statistics';
import { bootstrapCis, flagOutliers, nsToMs, reliablePercentiles, summarize, type Stats } from '../stats/summary.js';
import { TOOL_VERSION } from '../version.js';

/** The reference every cell's output is compared with: ONNX Runtime on the CPU with graph optimizations disabled. */
export const REFERENCE = { engine: 'onnxruntime' as const, mode: 'disabled', device: 'cpu' as const };
const REFERENCE_NAME = `${REFERENCE.engine}/${REFERENCE.mode}/${REFERENCE.device}`;

/** One planned cell. */
export interface PlannedCell {
  id: string;
  engine: EngineId;
  mode: string;
  device: Device;
  family: WorkloadFamily;
  /** The family's preset (before `--set` overrides). */
  preset: string;
  params: Params;
  batchSize: number;
  /** Intra-op threads (one entry of config.threads). */
  threads: number;
}

/** Progress callbacks (the CLI draws a bar or prints lines). */
export interface RunHooks {
  onPlan?(cells: PlannedCell[]): void;
  onCellStart?(cell: PlannedCell): void;
  onCellDone?(cell: Cell): void;
  onNote?(text: string): void;
}

/**
 * Expands the configuration into cells, grouped by (workload, batch) so each group shares one
 * reference; thread counts are a dimension inside a group, so their replicates interleave too.
 */
export function planCells(config: RunConfig): PlannedCell[] {
  const families = config.workloads.map((w) => getFamily(w));
  const cells: PlannedCell[] = [];
  for (const family of families) {
    const preset = config.preset[family.name]!;
    const params = resolveParams(family, preset, setsForFamily(family, config.sets, families));
    for (const batchSize of config.batchSizes) {
      for (const id of config.engines) {
        const engine = getEngine(id);
        for (const mode of modesToRun(engine, config.modes)) {
          for (const threads of config.threads) {
            cells.push({
              id: `${engine.id}/${mode}/${config.device}/${family.name}/${preset}/b${batchSize}/t${threads}`,
              engine: engine.id,
              mode,
              device: config.device,
              family,
              preset,
              params,
              batchSize,
              threads,
            });
          }
        }
      }
    }
  }
  return cells;
}

/** Probes one engine in its own worker: version and devices, or the reason it cannot run here and the fix. */
export async function probeEngine(id: EngineId, timeoutMs = 60_000): Promise<EngineStatus> {
  const e = ENGINES[id];
  const o = await runEngineWorker(e, { type: 'probe', protocol: PROTOCOL_VERSION, engine: id }, { timeoutMs });
  if (o.probe) return { available: true, framework: e.framework, version: o.probe.version, devices: o.probe.devices, details: o.probe.details };
  // An interpreter that never started the runner is the cause, not the engine.
  if (e.language === 'python' && process.env.FWBENCH_PYTHON && !o.hello) {
    return {
      available: false,
      framework: e.framework,
      reason: `FWBENCH_PYTHON=${process.env.FWBENCH_PYTHON} did not start the Python runner: ${describeFailure(o)}`,
      fix: 'point FWBENCH_PYTHON at the Python that python-runners/setup.sh set up (python-runners/.venv/bin/python), or unset it',
    };
  }
  return { available: false, framework: e.framework, reason: describeFailure(o), ...(o.error?.fix ? { fix: o.error.fix } : {}) };
}

/** Probes several engines concurrently (probes are short and run nothing timed). */
export async function probeEngines(ids: EngineId[]): Promise<Record<string, EngineStatus>> {
  const results = await Promise.all(ids.map((id) => probeEngine(id)));
  return Object.fromEntries(ids.map((id, i) => [id, results[i]!]));
}

/** The job message that runs one cell (or the reference) on the materialized weights and inputs. */
function jobMessage(
  c: Pick<PlannedCell, 'engine' | 'mode' | 'device' | 'family' | 'params' | 'batchSize' | 'threads'>,
  m: Materialized,
  config: RunConfig,
): ToWorker {
  const native = ENGINES[c.engine].nativeWeights?.(c.family, c.params, m);
  return {
    type: 'job',
    protocol: PROTOCOL_VERSION,
    cell: { engine: c.engine, mode: c.mode, device: c.device, family: c.family.name, params: c.params, batchSize: c.batchSize, threads: c.threads },
    weightsPath: m.weightsPath,
    inputsPath: m.inputsPath,
    ...(native ? { nativeWeightsPath: native } : {}),
    measure: config.measure,
  };
}

/** Reference output for a workload instance and batch: cached next to its weights (keyed by ORT version). */
async function referenceOutput(
  m: Materialized,
  family: WorkloadFamily,
  params: Params,
  batchSize: number,
  config: RunConfig,
  ortVersion: string,
): Promise<{ values: number[]; shape: number[] } | { error: string }> {
  const path = join(cacheDir(), `${family.name}-${m.key}.reference-b${batchSize}-ort${ortVersion}.safetensors`);
  if (cacheEntryOk(path)) {
    const t = loadTensors(path).tensors.get('logits')!;
    return { values: Array.from(t.data), shape: t.shape };
  }
  const threads = Math.max(...config.threads);
  const o = await runEngineWorker(ENGINES[REFERENCE.engine], jobMessage({ ...REFERENCE, family, params, batchSize, threads }, m, config), {
    timeoutMs: config.cellTimeoutMs,
    env: threadEnv(threads),
    onParity: () => 'stop',
  });
  if (!o.parity) return { error: `reference (${REFERENCE_NAME}) failed: ${describeFailure(o)}` };
  saveTensors(path, new Map([['logits', { dtype: 'F32', shape: o.parity.shape, data: Float32Array.from(o.parity.values) }]]), {
    reference: REFERENCE_NAME,
    ortVersion,
  });
  recordCacheEntry(path);
  return { values: o.parity.values, shape: o.parity.shape };
}

function baseRecord(c: PlannedCell, config: RunConfig, startedAt: string): Omit<Cell, 'status' | 'reason' | 'durationMs'> {
  return {
    id: c.id,
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
    flops: c.family.flopsPerSample(c.params) * c.batchSize,
    startedAt,
  };
}

/** One worker process's outcome for a cell, with its parity verdict and start time. */
export interface ReplicateOutcome {
  o: WorkerOutcome;
  parity: Cell['parity'];
  startedAt: string;
}

/** Turns a worker's outcome into a cell record (one replicate). */
export function cellFromOutcome(c: PlannedCell, config: RunConfig, startedAt: string, durationMs: number, o: WorkerOutcome, parity: Cell['parity']): Cell {
  return cellFromReplicates(c, config, startedAt, durationMs, [{ o, parity, startedAt }]);
}

const medianOf = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

type RepStatus = { status: Cell['status']; reason: string | null; fix?: string; phase?: string; cause?: FailureCause };

function replicateStatus(o: WorkerOutcome, parity: Cell['parity']): RepStatus {
  if (o.error?.unavailable) return { status: 'skipped', reason: o.error.message, ...(o.error.fix ? { fix: o.error.fix } : {}) };
  if (parity && !parity.pass)
    return {
      status: 'parity-failed',
      reason: `output differs from ${parity.reference}: relL2 ${parity.relL2}, maxAbs ${parity.maxAbs} (tolerance ${parity.tolerance})`,
    };
  if (!o.done || !o.samples || o.error) {
    const f = classifyFailure(o);
    return { status: 'failed', reason: f.reason, cause: f.cause, ...(o.error?.phase || o.phase ? { phase: o.error?.phase ?? o.phase } : {}) };
  }
  return { status: 'ok', reason: null };
}

function replicateRecord(index: number, r: ReplicateOutcome, st: RepStatus, offset: number): Replicate {
  const { o, parity } = r;
  const samplesMs = o.samples && st.status === 'ok' ? nsToMs(o.samples.samplesNs) : undefined;
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
          offset,
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
      ? { coldStart: { spawnMs: o.spawnMs, ...o.built.phases, firstRunMs: o.parity.firstRunMs, totalMs: o.toFirstOutputMs } }
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
  const statuses = outcomes.map((r) => replicateStatus(r.o, r.parity));
  let offset = 0;
  const reps = outcomes.map((r, i) => {
    const rec = replicateRecord(i, r, statuses[i]!, offset);
    offset += rec.n ?? 0;
    return rec;
  });
  const bad = ['skipped', 'parity-failed', 'failed'].map((s) => statuses.findIndex((x) => x.status === s)).find((i) => i >= 0);
  const pick = bad ?? 0;
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
      status: st.status,
      reason,
      ...(st.fix ? { fix: st.fix } : {}),
      ...(st.phase ? { phase: st.phase } : {}),
      ...(st.cause ? { cause: st.cause } : {}),
      durationMs,
    };
  }
  const samplesMs = outcomes.flatMap((r) => nsToMs(r.o.samples!.samplesNs));
  const stats: Stats = { ...summarize(samplesMs), ...bootstrapCis(samplesMs), reliablePercentiles: reliablePercentiles(samplesMs.length) };
  const medians = reps.map((r) => r.medianMs!);
  const mMean = medians.reduce((a, b) => a + b, 0) / medians.length;
  const betweenCv = medians.length > 1 && mMean > 0 ? Math.sqrt(medians.reduce((a, m) => a + (m - mMean) ** 2, 0) / (medians.length - 1)) / mMean : 0;
  const stops = [...new Set(reps.map((r) => r.stopReason!))];
  return {
    ...base,
    ...extras,
    status: 'ok',
    reason: null,
    stats,
    samplesMs,
    warmupMs: outcomes.flatMap((r) => nsToMs(r.o.samples!.warmupNs)),
    stopReason: stops.join(','),
    warmupStopReason: [...new Set(reps.map((r) => r.warmupStopReason!))].join(','),
    variation: { withinCv: reps.reduce((a, r) => a + r.cv!, 0) / reps.length, betweenCv },
    outliers: flagOutliers(samplesMs),
    warnings: cellWarnings(stats, reps, samplesMs),
    throughput: c.batchSize / (stats.medianMs / 1000),
    gflops: base.flops / (stats.medianMs / 1000) / 1e9,
    durationMs,
  };
}

/** Why a cell cannot run here, from the engine's probe and descriptor, or undefined if it can. */
function skipReason(c: PlannedCell, status: EngineStatus | undefined): { reason: string; fix?: string } | undefined {
  const e = ENGINES[c.engine];
  if (!e.devices.includes(c.device))
    return { reason: `${e.id} does not run on ${c.device}; it supports ${e.devices.join(', ')}`, fix: `use --device ${e.devices[0]}` };
  if (!status?.available) return { reason: status?.reason ?? 'engine was not probed', ...(status?.fix ? { fix: status.fix } : {}) };
  if (!status.devices?.includes(c.device)) {
    const why = status.details?.[c.device];
    return {
      reason: `${e.id} cannot use ${c.device} here${why ? `: ${why}` : ''}`,
      ...(status.details?.[`${c.device}Fix`] ? { fix: status.details[`${c.device}Fix`] } : {}),
    };
  }
  return undefined;
}

/** The run was interrupted while probing engines, before run.json existed: nothing to keep or resume. */
export class InterruptedBeforeStart extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal} before the first cell: nothing was kept`);
  }
}

/** What stops or continues a run. */
export interface RunOptions {
  /** Aborting it (SIGINT/SIGTERM) stops every worker, keeps the finished cells and writes run.json as `interrupted`. */
  signal?: AbortSignal;
  /** `fwbench run --resume`: the run found in the folder and its finished cells (from cells.jsonl); only the missing cells run. */
  resume?: { run: Run; cells: Cell[] };
}

/** Key of a batch-size sweep: everything of a cell but its batch size. */
const sweepKey = (c: { engine: string; mode: string; device: string; workload: string }): string => `${c.engine}/${c.mode}/${c.device}/${c.workload}`;
/** A cell that ran far enough to show the batch fits in memory. */
const fits = (c: Cell): boolean => c.status === 'ok' || c.status === 'parity-failed';

/** Per sweep that ran out of memory: the smallest batch that did and the largest that fit below it. */
export function largestBatchFit(cells: Cell[]): BatchFit[] {
  const out = new Map<string, BatchFit>();
  for (const c of cells) {
    if (c.cause !== 'out-of-memory') continue;
    const k = sweepKey(c);
    const prev = out.get(k);
    if (!prev || c.batchSize < prev.outOfMemoryAtBatch)
      out.set(k, { engine: c.engine, mode: c.mode, device: c.device, workload: c.workload, largestBatch: null, outOfMemoryAtBatch: c.batchSize });
  }
  for (const f of out.values()) {
    const fitting = cells.filter((c) => sweepKey(c) === sweepKey(f) && fits(c) && c.batchSize < f.outOfMemoryAtBatch).map((c) => c.batchSize);
    f.largestBatch = fitting.length ? Math.max(...fitting) : null;
  }
  return [...out.values()];
}

/** Why a cell is not run because a smaller batch of its sweep ran out of memory, or undefined. */
function sweepSkip(c: PlannedCell, done: Iterable<Cell>): string | undefined {
  const key = sweepKey({ ...c, workload: c.family.name });
  const fit = largestBatchFit([...done]).find((f) => sweepKey(f) === key);
  if (!fit || c.batchSize <= fit.outOfMemoryAtBatch) return undefined;
  return `not run: batch ${fit.outOfMemoryAtBatch} ran out of memory; largest batch that fit: ${fit.largestBatch ?? 'none'}`;
}

/**
 * The configuration a run carries out: as asked, except that a run on the default engine list
 * leaves out the engines that are not available here or not on its device (run.json `engines`
 * keeps their reasons and fixes, and the end of the run lists them once).
 */
export function runnableConfig(asked: RunConfig, engines: Record<string, EngineStatus>): RunConfig {
  if (!asked.onlyAvailable) return asked;
  return { ...asked, engines: asked.engines.filter((id) => engines[id]?.available && ENGINES[id as EngineId].devices.includes(asked.device)) };
}

/**
 * Runs the whole matrix. run.json is written first (state `running`, with the configuration), each
 * cell is appended to DIR/cells.jsonl the moment it is final (its last replicate ran, or one was
 * not ok), and run.json is rewritten at the end (`complete`) or on interruption (`interrupted`).
 * A killed orchestrator therefore loses only the cells in flight: with `--replicates N` the
 * unfinished cells of the current (workload, batch) group, whose replicates are interleaved.
 */
export async function runMatrix(asked: RunConfig, outDir: string, command: string[], hooks: RunHooks = {}, opts: RunOptions = {}): Promise<Run> {
  const { signal, resume } = opts;
  const stop = (): void => stopAllWorkers();
  if (signal?.aborted) throw new InterruptedBeforeStart(String(signal.reason));
  signal?.addEventListener('abort', stop, { once: true });
  const startedAt = new Date().toISOString();
  const store = new ResultsStore(outDir);
  hooks.onNote?.('detecting host and probing engines');
  const probeIds = [...new Set<EngineId>([...asked.engines.map((e) => getEngine(e).id), REFERENCE.engine])];
  const [host, engines] = await Promise.all([detectHost(), probeEngines(probeIds)]);
  const config = runnableConfig(asked, engines);
  if (config.engines.length === 0) {
    const why = asked.engines
      .map((id) => `${id}: ${engines[id]?.available ? `does not run on ${asked.device}` : (engines[id]?.reason ?? 'unavailable')}`)
      .join('; ');
    throw new InputError(`no engine can run on ${asked.device} here (${why}); see fwbench detect`);
  }
  const cells = planCells(config);
  if (resume) {
    const differences = environmentDifferences(resume.run, hostFingerprint(host), engines);
    if (differences.length)
      throw new InputError(
        `cannot resume ${outDir}: the machine or its engines changed since the run started (${differences.join('; ')}); start a new run with --out`,
      );
  }
  const diagnostics = await startDiagnostics(config, host, engines, (t) => hooks.onNote?.(t));
  // Stopped probes would read as unavailable engines: a run interrupted this early keeps nothing.
  if (signal?.aborted) throw new InterruptedBeforeStart(String(signal.reason));
  const done = new Map<string, Cell>((resume?.cells ?? []).map((c) => [c.id, c]));
  const header = {
    schemaVersion: SCHEMA_VERSION as typeof SCHEMA_VERSION,
    tool: { name: 'fwbench' as const, version: TOOL_VERSION },
    command: resume?.run.command ?? command,
    startedAt: resume?.run.startedAt ?? startedAt,
    host,
    hostFingerprint: hostFingerprint(host),
    engines,
    config,
    orchestrator: { pid: process.pid, hostname: hostname() },
    ...(resume ? { resumes: [...(resume.run.resumes ?? []), { startedAt, command, cellsBefore: done.size }] } : {}),
  };
  const snapshot = (state: NonNullable<Run['state']>): Run => {
    const records = cells.filter((c) => done.has(c.id)).map((c) => done.get(c.id)!);
    return {
      ...header,
      finishedAt: new Date().toISOString(),
      state,
      ...(state === 'interrupted' ? { interruption: { signal: String(signal?.reason ?? 'unknown'), at: new Date().toISOString() } } : {}),
      cells: records,
      ...(largestBatchFit(records).length ? { largestBatchFit: largestBatchFit(records) } : {}),
      ...diagnosticsFields(diagnostics, config, records),
    };
  };
  // The configuration is on disk before the first cell, so even a kill -9 can be resumed.
  store.writeRun(snapshot('running'));
  hooks.onPlan?.(cells.filter((c) => !done.has(c.id)));
  const refStatus = engines[REFERENCE.engine]!;
  const groups = new Map<string, PlannedCell[]>();
  for (const c of cells) {
    const k = `${c.family.name}|${c.batchSize}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const finish = (raw: Cell): void => {
    const cell = withFractionOfPeak(raw, diagnostics);
    store.appendCell(cell);
    done.set(cell.id, cell);
    hooks.onCellDone?.(cell);
  };
  const replicates = config.replicates ?? 1;
  for (const all of groups.values()) {
    if (signal?.aborted) break;
    const group = all.filter((c) => !done.has(c.id));
    if (group.length === 0) continue;
    const { family, params, batchSize } = group[0]!;
    const pending: Array<{ c: PlannedCell; startedAt: string; durationMs: number; reps: ReplicateOutcome[] }> = [];
    const runnable = group.filter((c) => {
      const cellStart = new Date().toISOString();
      const skip = skipReason(c, engines[c.engine]);
      const oom = skip ? undefined : sweepSkip(c, done.values());
      if (skip) finish({ ...baseRecord(c, config, cellStart), status: 'skipped', reason: skip.reason, ...(skip.fix ? { fix: skip.fix } : {}), durationMs: 0 });
      else if (oom) finish({ ...baseRecord(c, config, cellStart), status: 'skipped', reason: oom, durationMs: 0 });
      return !skip && !oom;
    });
    if (runnable.length === 0) continue;
    const m = materialize(family, params, config.seed, batchSize);
    const ref = refStatus.available
      ? await referenceOutput(m, family, params, batchSize, config, refStatus.version ?? 'unknown')
      : { error: `reference engine ${REFERENCE.engine} unavailable: ${refStatus.reason}` };
    if (signal?.aborted) break;
    for (const c of runnable) {
      const cellStart = new Date().toISOString();
      if ('error' in ref)
        finish({ ...baseRecord(c, config, cellStart), status: 'failed', reason: ref.error, phase: 'parity', cause: 'reference', durationMs: 0 });
      else pending.push({ c, startedAt: cellStart, durationMs: 0, reps: [] });
    }
    if ('error' in ref) continue;
    // Each runnable cell runs in `replicates` fresh processes, round-robin across the group
    // (A B C, A B C, ...) so slow drift of the machine does not favour one engine or mode.
    for (let r = 0; r < replicates && !signal?.aborted; r++) {
      for (const p of pending) {
        if (done.has(p.c.id)) continue;
        const c = p.c;
        hooks.onCellStart?.(c);
        if (replicates > 1) hooks.onNote?.(`${c.id}: replicate ${r + 1}/${replicates}`);
        const repStart = new Date().toISOString();
        const t0 = Date.now();
        let parity: Cell['parity'];
        const o = await runEngineWorker(ENGINES[c.engine], jobMessage(c, m, config), {
          timeoutMs: config.cellTimeoutMs,
          env: threadEnv(c.threads),
          ...(config.maxMemoryMb ? { maxMemoryMb: config.maxMemoryMb } : {}),
          onParity: (pm) => {
            const f = compareOutputs(ref.values, ref.shape, pm.values, pm.shape);
            parity = {
              reference: REFERENCE_NAME,
              relL2: Number.isFinite(f.relL2) ? f.relL2 : null,
              maxAbs: Number.isFinite(f.maxAbs) ? f.maxAbs : null,
              tolerance: FP32_REL_L2_TOLERANCE,
              pass: f.pass,
            };
            return f.pass ? 'continue' : 'stop';
          },
        });
        // An interrupted worker is not a result: the cell stays missing and runs again on --resume.
        if (o.interrupted || signal?.aborted) break;
        p.durationMs += Date.now() - t0;
        p.reps.push({ o, parity, startedAt: repStart });
        // A replicate that is not ok decides the cell: the remaining ones are not run.
        if (replicateStatus(o, parity).status !== 'ok' || p.reps.length === replicates)
          finish(cellFromReplicates(c, config, p.startedAt, p.durationMs, p.reps));
      }
    }
  }
  signal?.removeEventListener('abort', stop);
  const run = snapshot(signal?.aborted ? 'interrupted' : 'complete');
  store.writeRun(run);
  return run;
}

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Params, WorkloadFamily } from '../../workloads/index.js';
import { cacheEntryOk, recordCacheEntry } from '../../workloads/cache.js';
import { cacheDir, materialize, type Materialized } from '../../workloads/materialize.js';
import { loadTensors, saveTensors } from '../../workloads/safetensors.js';
import { detectHost, hostFingerprint } from '../diagnostics/detect/host.js';
import { startDiagnostics } from '../diagnostics/run-checks.js';
import { ENGINES, getEngine } from '../engines/registry.js';
import type { EngineId } from '../engines/types.js';
import { InputError } from '../errors.js';
import { ResultsStore, type Cell, type EngineStatus, type Run, type RunConfig } from '../results/schema.js';
import { sortedMedian } from '../stats/bootstrap.js';
import { FP32_REL_L2_TOLERANCE } from '../stats/parity.js';
import { comparePrecision } from '../stats/precision.js';
import { compareTraining, TRAINING_TOLERANCES, type TrainingExpectation, type TrainingFigure } from '../stats/training-parity.js';
import { PROTOCOL_VERSION, type ToWorker } from '../worker/protocol.js';
import { DEFAULT_CONTENDED_RERUNS, judgeLoad, slowOutlier } from './contention.js';
import { describeFailure } from './failure.js';
import { planCells, REFERENCE, REFERENCE_NAME, runnableConfig, skipReason, sweepSkip, tasksOf, type PlannedCell } from './plan.js';
import type { ParityMessage } from './outcome.js';
import {
  expectationFor,
  parametrisationOf,
  parityFilePath,
  trainingFields,
  trainingReference,
  TRAINING_REFERENCE,
  TRAINING_REFERENCE_NAME,
  type Parametrisation,
  type TrainingReference,
} from './training.js';
import { streamFields, streamReference, type StreamReference } from './shapes.js';
import { generateJob, generationReference, GENERATION_REFERENCE_NAME, readLogits } from './generate.js';
import { passesOutcome } from './outcome.js';
import { compareGeneration, type GenerationReference } from '../stats/generate.js';
import { GENERATE } from '../../workloads/generate.js';
import { STREAM } from '../../workloads/shapes.js';
import { compareStream } from '../stats/stream.js';
import { baseRecord, cellFromReplicates, replicateStatus, RunRecord, type ReplicateOutcome } from './record.js';
import { environmentDifferences } from './resume.js';
import { runEngineWorker, stopAllWorkers, threadEnv } from './workers.js';

/**
 * Carrying out a run: probing the engines, then the cell loop, one worker process per cell and
 * replicate, each cell's output checked against the reference before it is timed.
 */

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
export function jobMessage(
  c: Pick<PlannedCell, 'engine' | 'mode' | 'device' | 'family' | 'params' | 'batchSize' | 'threads'> &
    Partial<Pick<PlannedCell, 'task' | 'shapes' | 'padding' | 'precision' | 'generation'>>,
  m: Materialized,
  config: RunConfig,
): Extract<ToWorker, { type: 'job' }> {
  const native = ENGINES[c.engine].nativeWeights?.(c.family, c.params, m);
  return {
    type: 'job',
    protocol: PROTOCOL_VERSION,
    cell: {
      engine: c.engine,
      mode: c.mode,
      device: c.device,
      family: c.family.name,
      params: c.params,
      batchSize: c.batchSize,
      threads: c.threads,
      ...(c.task && c.task !== 'inference' ? { task: c.task } : {}),
      ...(c.shapes === 'stream' ? { shapes: 'stream' as const, ...(c.padding ? { padding: c.padding } : {}) } : {}),
      ...(c.precision && c.precision !== 'fp32' ? { precision: c.precision } : {}),
      ...(c.generation ? { generation: c.generation } : {}),
    },
    weightsPath: m.weightsPath,
    inputsPath: m.inputsPath,
    ...(native ? { nativeWeightsPath: native } : {}),
    measure: config.measure,
  };
}

type ReferenceOutput = { values: number[]; shape: number[] };

/** Reference output for a workload instance and batch: cached next to its weights (keyed by ORT version). */
async function referenceOutput(
  m: Materialized,
  family: WorkloadFamily,
  params: Params,
  batchSize: number,
  config: RunConfig,
  ortVersion: string,
): Promise<ReferenceOutput | { error: string }> {
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
  if (o.parity?.type !== 'parity') return { error: `reference (${REFERENCE_NAME}) failed: ${describeFailure(o)}` };
  saveTensors(path, new Map([['logits', { dtype: 'F32', shape: o.parity.shape, data: Float32Array.from(o.parity.values) }]]), {
    reference: REFERENCE_NAME,
    ortVersion,
  });
  recordCacheEntry(path);
  return { values: o.parity.values, shape: o.parity.shape };
}

/** How a group's cells are sent and judged: the job of a cell, and the verdict on its first output (with any clean-up after). */
interface CellCheck {
  job(c: PlannedCell): Extract<ToWorker, { type: 'job' }>;
  judge(c: PlannedCell, job: Extract<ToWorker, { type: 'job' }>, p: ParityMessage): NonNullable<Cell['parity']>;
  cleanup(job: Extract<ToWorker, { type: 'job' }>): void;
}

/**
 * Inference: the logits against the ONNX Runtime reference (fp32), at the cell's precision: a
 * reduced precision must have been observed by the worker and is judged by its own gates
 * (harness/stats/precision.ts).
 */
function inferenceCheck(m: Materialized, ref: ReferenceOutput, config: RunConfig): CellCheck {
  return {
    job: (c) => jobMessage(c, m, config),
    judge(c, _job, pm) {
      if (pm.type !== 'parity') return { reference: REFERENCE_NAME, relL2: null, maxAbs: null, tolerance: FP32_REL_L2_TOLERANCE, pass: false };
      const f = comparePrecision(c.precision, pm.precision, ref.values, ref.shape, pm.values, pm.shape);
      return {
        reference: REFERENCE_NAME,
        relL2: Number.isFinite(f.relL2) ? f.relL2 : null,
        maxAbs: Number.isFinite(f.maxAbs) ? f.maxAbs : null,
        tolerance: f.tolerance,
        pass: f.pass,
        // fp32 cells keep the record they always had unless their engine reported what it observed.
        ...(c.precision !== 'fp32' || pm.precision
          ? {
              precision: {
                ...(pm.precision ? { used: pm.precision.used, evidence: pm.precision.evidence } : {}),
                argmaxAgreement: f.argmaxAgreement,
                ...(f.ties ? { ties: f.ties } : {}),
                ...(f.minArgmaxAgreement !== undefined ? { minArgmaxAgreement: f.minArgmaxAgreement } : {}),
              },
            }
          : {}),
        ...(f.problem && c.precision !== 'fp32' ? { problem: f.problem } : {}),
      };
    },
    cleanup: () => undefined,
  };
}

/** Stream: every batch's logits, row by row, against the reference's logits of each row alone and unpadded. */
function streamCheck(m: Materialized, ref: StreamReference, config: RunConfig): CellCheck {
  const { family, params, batchSize } = ref;
  return {
    job: (c) => ({ ...jobMessage(c, m, config), stream: streamFields(family, params, config, batchSize, c.padding!) }),
    judge(c, _job, pm) {
      const failed = { reference: REFERENCE_NAME, relL2: null, maxAbs: null, tolerance: FP32_REL_L2_TOLERANCE, pass: false };
      if (pm.type !== 'stream-parity') return failed;
      const f = compareStream(ref.rows, pm.outputs, ref.stream, c.padding!);
      return {
        reference: `${REFERENCE_NAME}, each row alone and unpadded`,
        relL2: Number.isFinite(f.relL2) ? f.relL2 : null,
        maxAbs: Number.isFinite(f.maxAbs) ? f.maxAbs : null,
        tolerance: FP32_REL_L2_TOLERANCE,
        pass: f.pass,
        stream: { batches: ref.stream.lengths.length, shapes: f.shapes, worstBatch: f.worstBatch, worstLength: f.worstLength },
      };
    },
    cleanup: () => undefined,
  };
}

/** Generation: every row's token ids and every step's logits against the reference generation. */
function generateCheck(m: Materialized, ref: GenerationReference, config: RunConfig): CellCheck {
  return {
    job: (c) => generateJob(jobMessage(c, m, config), { ...c, generation: c.generation! }, config, m),
    judge(_c, job, pm) {
      const failed = { reference: GENERATION_REFERENCE_NAME, relL2: null, maxAbs: null, tolerance: FP32_REL_L2_TOLERANCE, pass: false };
      if (pm.type !== 'generate-parity' || !job.generate || !existsSync(job.generate.logitsPath)) return failed;
      let logits: Float32Array;
      try {
        logits = readLogits(job.generate.logitsPath).data;
      } catch (e) {
        return { ...failed, problem: e instanceof Error ? e.message : String(e) };
      }
      const f = compareGeneration(ref, pm.tokens, logits);
      return {
        reference: GENERATION_REFERENCE_NAME,
        relL2: Number.isFinite(f.relL2) ? f.relL2 : null,
        maxAbs: Number.isFinite(f.maxAbs) ? f.maxAbs : null,
        tolerance: FP32_REL_L2_TOLERANCE,
        pass: f.pass,
        generation: {
          steps: f.steps,
          worstStep: f.worstStep,
          rowsMatching: f.rowsMatching,
          ties: f.ties,
          ...(f.firstTieStep !== undefined ? { firstTieStep: f.firstTieStep } : {}),
        },
        ...(f.problem ? { problem: f.problem } : {}),
      };
    },
    cleanup: (job) => {
      if (job.generate) rmSync(job.generate.logitsPath, { force: true });
    },
  };
}

/** Training: losses, gradients and updates against the float64 reference of the engine's parametrisation. */
async function trainingCheck(
  group: PlannedCell[],
  m: Materialized,
  config: RunConfig,
  engines: Record<string, EngineStatus>,
): Promise<CellCheck | { error: string }> {
  const { family, params, batchSize } = group[0]!;
  const torch = engines[TRAINING_REFERENCE.engine];
  if (!torch?.available) return { error: `training reference (${TRAINING_REFERENCE_NAME}) unavailable: ${torch?.reason ?? 'torch was not probed'}` };
  const refs = new Map<Parametrisation, TrainingReference>();
  for (const as of new Set(group.map((c) => parametrisationOf(c.engine)))) {
    const r = await trainingReference(m, family, params, batchSize, config, torch.version ?? 'unknown', as, (c) => jobMessage(c, m, config));
    if ('error' in r) return r;
    refs.set(as, r);
  }
  const weights = loadTensors(m.weightsPath).tensors;
  // What the reference expects depends only on the engine's parametrisation (which fixes its
  // layout): mapped once per group, not once per replicate inside the worker's parity reply.
  const expectations = new Map<Parametrisation, TrainingExpectation>();
  const expectationOf = (c: PlannedCell): TrainingExpectation => {
    const as = parametrisationOf(c.engine);
    if (!expectations.has(as)) expectations.set(as, expectationFor(c.engine, family, params, weights, refs.get(as)!));
    return expectations.get(as)!;
  };
  return {
    job(c) {
      const job = jobMessage(c, m, config);
      return { ...job, training: trainingFields(family, params, config, batchSize, parityFilePath(m, c.engine), c.engine) };
    },
    judge(c, job, pm) {
      const tolerance = TRAINING_TOLERANCES.gradients;
      if (pm.type !== 'train-parity' || !job.training || !existsSync(job.training.parityPath))
        return { reference: TRAINING_REFERENCE_NAME, relL2: null, maxAbs: null, tolerance, pass: false };
      const t = compareTraining(expectationOf(c), pm.losses, loadTensors(job.training.parityPath).tensors);
      const figure = (f: TrainingFigure): { relL2: number | null; tensor?: string; tolerance: number; pass: boolean } => ({
        relL2: Number.isFinite(f.relL2) ? f.relL2 : null,
        ...(f.tensor ? { tensor: f.tensor } : {}),
        tolerance: f.tolerance,
        pass: f.pass,
      });
      // The headline figure is the one closest to (or furthest past) its tolerance.
      const worst = [t.loss, t.gradients, t.optimizer, t.updates].reduce((a, b) => (!(b.relL2 / b.tolerance <= a.relL2 / a.tolerance) ? b : a));
      return {
        reference: TRAINING_REFERENCE_NAME,
        relL2: Number.isFinite(worst.relL2) ? worst.relL2 : null,
        maxAbs: null,
        tolerance: worst.tolerance,
        pass: t.pass,
        training: {
          steps: t.steps,
          loss: figure(t.loss),
          gradients: figure(t.gradients),
          optimizer: figure(t.optimizer),
          updates: figure(t.updates),
          ...(t.problem ? { problem: t.problem } : {}),
        },
      };
    },
    cleanup: (job) => {
      if (job.training) rmSync(job.training.parityPath, { force: true });
    },
  };
}

/** One replicate of a cell: a fresh worker, timed only if its first output matches the reference. */
async function runReplicate(c: PlannedCell, check: CellCheck, config: RunConfig): Promise<Omit<ReplicateOutcome, 'startedAt'>> {
  let parity: Cell['parity'];
  const job = check.job(c);
  try {
    const raw = await runEngineWorker(ENGINES[c.engine], job, {
      timeoutMs: config.cellTimeoutMs,
      env: threadEnv(c.threads),
      ...(config.maxMemoryMb ? { maxMemoryMb: config.maxMemoryMb } : {}),
      onParity: (pm) => {
        parity = check.judge(c, job, pm);
        return parity.pass ? 'continue' : 'stop';
      },
    });
    return { o: passesOutcome(raw, config.measure.targetInterval, c.task === 'generate' ? GENERATE.maxPasses : STREAM.maxPasses), parity };
  } finally {
    check.cleanup(job);
  }
}

/** Progress callbacks (the CLI draws a bar or prints lines). */
export interface RunHooks {
  onPlan?(cells: PlannedCell[]): void;
  onCellStart?(cell: PlannedCell): void;
  onCellDone?(cell: Cell): void;
  onNote?(text: string): void;
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

/** What every (workload, batch) group of a run shares. */
interface RunContext {
  config: RunConfig;
  engines: Record<string, EngineStatus>;
  record: RunRecord;
  hooks: RunHooks;
  signal: AbortSignal | undefined;
  /** Records a final cell and reports it. */
  finish(cell: Cell): void;
}

/** The planned cells by (task, workload, batch; a generation's prompt length and new tokens), in plan order: each group shares one materialization and reference. */
function groupsOf(cells: PlannedCell[]): PlannedCell[][] {
  const groups = new Map<string, PlannedCell[]>();
  for (const c of cells) {
    const g = c.generation;
    const k = `${c.task}|${c.shapes}|${c.family.name}|${c.batchSize}${g ? `|${g.promptLength}|${g.newTokens}` : ''}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  return [...groups.values()];
}

/** A cell of the group being run: its replicates so far. */
interface Pending {
  c: PlannedCell;
  startedAt: string;
  durationMs: number;
  reps: ReplicateOutcome[];
}

/** How the cells of a group are checked: against the inference reference's logits or the training reference. */
async function cellCheck(
  group: PlannedCell[],
  m: Materialized,
  config: RunConfig,
  engines: Record<string, EngineStatus>,
): Promise<CellCheck | { error: string }> {
  const { task, shapes, family, params, batchSize } = group[0]!;
  if (task === 'training') return trainingCheck(group, m, config, engines);
  const refStatus = engines[REFERENCE.engine]!;
  if (!refStatus.available) return { error: `reference engine ${REFERENCE.engine} unavailable: ${refStatus.reason}` };
  if (task === 'generate') {
    const g = group[0]!.generation!;
    const ref = await generationReference(m, family, params, batchSize, g, config, refStatus.version ?? 'unknown', (c) => jobMessage(c, m, config));
    return 'error' in ref ? ref : generateCheck(m, ref, config);
  }
  if (shapes === 'stream') {
    const ref = await streamReference(m, family, params, batchSize, config, refStatus.version ?? 'unknown', (c) => jobMessage(c, m, config));
    return 'error' in ref ? ref : streamCheck(m, ref, config);
  }
  const ref = await referenceOutput(m, family, params, batchSize, config, refStatus.version ?? 'unknown');
  return 'error' in ref ? ref : inferenceCheck(m, ref, config);
}

/** Runs the missing cells of one (task, workload, batch) group. */
async function runGroup(all: PlannedCell[], ctx: RunContext): Promise<void> {
  const { config, engines, record, hooks, signal, finish } = ctx;
  const group = all.filter((c) => !record.done.has(c.id));
  if (group.length === 0) return;
  const { family, params, batchSize } = group[0]!;
  const runnable = group.filter((c) => {
    const cellStart = new Date().toISOString();
    const skip = skipReason(c, engines[c.engine]);
    const oom = skip ? undefined : sweepSkip(c, record.done.values());
    if (skip) finish({ ...baseRecord(c, config, cellStart), status: 'skipped', reason: skip.reason, ...(skip.fix ? { fix: skip.fix } : {}), durationMs: 0 });
    else if (oom) finish({ ...baseRecord(c, config, cellStart), status: 'skipped', reason: oom, durationMs: 0 });
    return !skip && !oom;
  });
  if (runnable.length === 0) return;
  const m = materialize(family, params, config.seed, batchSize);
  const ref = await cellCheck(runnable, m, config, engines);
  if (signal?.aborted) return;
  const pending: Pending[] = [];
  for (const c of runnable) {
    const cellStart = new Date().toISOString();
    if ('error' in ref)
      finish({ ...baseRecord(c, config, cellStart), status: 'failed', reason: ref.error, phase: 'parity', cause: 'reference', durationMs: 0 });
    else pending.push({ c, startedAt: cellStart, durationMs: 0, reps: [] });
  }
  if ('error' in ref) return;
  const replicates = config.replicates ?? 1;
  const reruns = config.contendedReruns ?? DEFAULT_CONTENDED_RERUNS;
  /** Runs one more replicate of `p`; false when the run was interrupted (the cell stays missing and runs again on --resume). */
  const runOne = async (p: Pending, label: string): Promise<boolean> => {
    hooks.onCellStart?.(p.c);
    if (label) hooks.onNote?.(`${p.c.id}: ${label}`);
    const repStart = new Date().toISOString();
    const t0 = Date.now();
    const { o, parity } = await runReplicate(p.c, ref, config);
    if (o.interrupted || signal?.aborted) return false;
    p.durationMs += Date.now() - t0;
    const contended = replicateStatus(o, parity).status === 'ok' ? judgeLoad(o.samples?.load, p.c.threads)?.reason : undefined;
    p.reps.push({ o, parity, startedAt: repStart, ...(contended ? { contended } : {}) });
    if (contended) hooks.onNote?.(`${p.c.id}: replicate ${p.reps.length - 1} contended: ${contended}`);
    return true;
  };
  // Each runnable cell runs in `replicates` fresh processes, round-robin across the group
  // (A B C, A B C, ...) so slow drift of the machine does not favour one engine or mode.
  for (let r = 0; r < replicates && !signal?.aborted; r++) {
    for (const p of pending) {
      if (record.done.has(p.c.id)) continue;
      if (!(await runOne(p, replicates > 1 ? `replicate ${r + 1}/${replicates}` : ''))) break;
      // A replicate that is not ok decides the cell: the remaining ones are not run. A cell whose
      // replicates are all in and clean is final at once; one with a contended replicate waits for
      // its re-runs, after the group's rounds (a busy neighbour gets time to finish).
      const last = p.reps[p.reps.length - 1]!;
      if (replicateStatus(last.o, last.parity).status !== 'ok') finish(cellFromReplicates(p.c, config, p.startedAt, p.durationMs, p.reps));
      else if (p.reps.length === replicates && !needsRerun(p.reps, replicates)) finish(cellFromReplicates(p.c, config, p.startedAt, p.durationMs, p.reps));
    }
  }
  // Re-runs: a contended replicate (rule 1 at once, rule 2 across the cell's clean ones) is kept,
  // never pooled, and replaced by a fresh process, up to `reruns` more per cell.
  for (const p of pending) {
    if (record.done.has(p.c.id) || signal?.aborted) continue;
    while (needsRerun(p.reps, replicates) && p.reps.length < replicates + reruns) {
      const n = p.reps.length - replicates + 1;
      if (!(await runOne(p, `re-run ${n}/${reruns}: ${p.reps.filter((x) => x.contended).length} contended replicate(s)`))) return;
      const last = p.reps[p.reps.length - 1]!;
      if (replicateStatus(last.o, last.parity).status !== 'ok') break;
    }
    finish(cellFromReplicates(p.c, config, p.startedAt, p.durationMs, p.reps));
  }
}

/**
 * Marks the slow outliers among a cell's clean replicates as contended (rule 2 of
 * harness/run/contention.ts) and says whether the cell still lacks `replicates` clean ones.
 */
function needsRerun(reps: ReplicateOutcome[], replicates: number): boolean {
  const clean = reps.filter((r) => !r.contended && replicateStatus(r.o, r.parity).status === 'ok');
  const timings = clean.map((r) => {
    const iv = r.o.samples!.interval;
    const samples = r.o.samples!.samplesNs;
    const medianMs = sortedMedian(Float64Array.from(samples).sort()) / 1e6;
    return { medianMs, interval: { loMs: iv.loNs / 1e6, hiMs: iv.hiNs / 1e6 } };
  });
  timings.forEach((_, i) => {
    const why = slowOutlier(timings, i);
    if (why) clean[i]!.contended = why;
  });
  return clean.filter((r) => !r.contended).length < replicates;
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
  const references = tasksOf(asked).map((t) => (t === 'training' ? TRAINING_REFERENCE.engine : REFERENCE.engine));
  const probeIds = [...new Set<EngineId>([...asked.engines.map((e) => getEngine(e).id), ...references])];
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
  const record = new RunRecord({ store, command, startedAt, host, engines, config, cells, diagnostics, ...(resume ? { resume } : {}) });
  record.write('running');
  hooks.onPlan?.(cells.filter((c) => !record.done.has(c.id)));
  const ctx: RunContext = { config, engines, record, hooks, signal, finish: (cell) => hooks.onCellDone?.(record.finish(cell)) };
  for (const group of groupsOf(cells)) {
    if (signal?.aborted) break;
    await runGroup(group, ctx);
  }
  signal?.removeEventListener('abort', stop);
  return record.write(signal?.aborted ? 'interrupted' : 'complete', String(signal?.reason ?? 'unknown'));
}

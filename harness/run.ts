import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { getFamily, resolveParams, setsForFamily, type FamilyName, type Params, type WorkloadFamily } from '../workloads/index.js';
import { cacheDir, materialize, type Materialized } from '../workloads/materialize.js';
import { loadTensors, saveTensors } from '../workloads/safetensors.js';
import { detectHost, hostFingerprint } from './detect/host.js';
import { ENGINES, getEngine, modesToRun } from './engines/registry.js';
import type { Device, EngineId } from './engines/types.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE } from './parity.js';
import { PROTOCOL_VERSION, type ToWorker } from './protocol.js';
import { ResultsStore, SCHEMA_VERSION, type Cell, type EngineStatus, type Run, type RunConfig } from './results.js';
import { describeFailure, runEngineWorker, threadEnv, type WorkerOutcome } from './spawn.js';
import { nsToMs, summarize } from './stats.js';
import { TOOL_VERSION } from './version.js';

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
  params: Params;
  batchSize: number;
}

/** Progress callbacks (the CLI draws a bar or prints lines). */
export interface RunHooks {
  onPlan?(cells: PlannedCell[]): void;
  onCellStart?(cell: PlannedCell): void;
  onCellDone?(cell: Cell): void;
  onNote?(text: string): void;
}

/** Expands the configuration into cells, grouped by (workload, batch) so each group shares one reference. */
export function planCells(config: RunConfig): PlannedCell[] {
  const families = config.workloads.map((w) => getFamily(w));
  const cells: PlannedCell[] = [];
  for (const family of families) {
    const params = resolveParams(family, config.preset, setsForFamily(family, config.sets, families));
    for (const batchSize of config.batchSizes) {
      for (const id of config.engines) {
        const engine = getEngine(id);
        for (const mode of modesToRun(engine, config.modes)) {
          cells.push({ id: `${engine.id}/${mode}/${config.device}/${family.name}/${config.preset}/b${batchSize}`, engine: engine.id, mode, device: config.device, family, params, batchSize });
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
  return { available: false, framework: e.framework, reason: describeFailure(o), ...(o.error?.fix ? { fix: o.error.fix } : {}) };
}

/** Probes several engines concurrently (probes are short and run nothing timed). */
export async function probeEngines(ids: EngineId[]): Promise<Record<string, EngineStatus>> {
  const results = await Promise.all(ids.map((id) => probeEngine(id)));
  return Object.fromEntries(ids.map((id, i) => [id, results[i]!]));
}

/** The job message that runs one cell (or the reference) on the materialized weights and inputs. */
function jobMessage(c: Pick<PlannedCell, 'engine' | 'mode' | 'device' | 'family' | 'params' | 'batchSize'>, m: Materialized, config: RunConfig): ToWorker {
  const native = ENGINES[c.engine].nativeWeights?.(c.family, c.params, m);
  return {
    type: 'job',
    protocol: PROTOCOL_VERSION,
    cell: { engine: c.engine, mode: c.mode, device: c.device, family: c.family.name, params: c.params, batchSize: c.batchSize, threads: config.threads },
    weightsPath: m.weightsPath,
    inputsPath: m.inputsPath,
    ...(native ? { nativeWeightsPath: native } : {}),
    measure: config.measure,
  };
}

/** Reference output for a workload instance and batch: cached next to its weights (keyed by ORT version). */
async function referenceOutput(m: Materialized, family: WorkloadFamily, params: Params, batchSize: number, config: RunConfig, ortVersion: string): Promise<{ values: number[]; shape: number[] } | { error: string }> {
  const path = join(cacheDir(), `${family.name}-${m.key}.reference-b${batchSize}-ort${ortVersion}.safetensors`);
  if (existsSync(path)) {
    const t = loadTensors(path).tensors.get('logits')!;
    return { values: Array.from(t.data), shape: t.shape };
  }
  const o = await runEngineWorker(ENGINES[REFERENCE.engine], jobMessage({ ...REFERENCE, family, params, batchSize }, m, config), { timeoutMs: config.cellTimeoutMs, env: threadEnv(config.threads), onParity: () => 'stop' });
  if (!o.parity) return { error: `reference (${REFERENCE_NAME}) failed: ${describeFailure(o)}` };
  saveTensors(path, new Map([['logits', { dtype: 'F32', shape: o.parity.shape, data: Float32Array.from(o.parity.values) }]]), { reference: REFERENCE_NAME, ortVersion });
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
    preset: config.preset,
    params: c.params,
    batchSize: c.batchSize,
    seed: config.seed,
    flops: c.family.flopsPerSample(c.params) * c.batchSize,
    startedAt,
  };
}

/** Turns a worker's outcome into a cell record. */
export function cellFromOutcome(c: PlannedCell, config: RunConfig, startedAt: string, durationMs: number, o: WorkerOutcome, parity: Cell['parity']): Cell {
  const base = baseRecord(c, config, startedAt);
  const worker = { pid: o.hello?.pid, exitCode: o.exitCode, signal: o.signal, logTail: o.logTail };
  const extras = {
    ...(parity ? { parity } : {}),
    ...(o.built ? { settings: o.built.settings } : {}),
    ...(o.memory ? { memory: { peakHostBytes: o.memory.peakHostBytes, ...(o.memory.peakDeviceBytes !== undefined ? { peakDeviceBytes: o.memory.peakDeviceBytes } : {}) } } : {}),
    ...(o.built && o.parity && o.spawnMs !== undefined && o.toFirstOutputMs !== undefined
      ? { coldStart: { spawnMs: o.spawnMs, buildMs: o.built.buildMs, firstRunMs: o.parity.firstRunMs, totalMs: o.toFirstOutputMs } }
      : {}),
    worker,
  };
  if (o.error?.unavailable) return { ...base, ...extras, status: 'skipped', reason: o.error.message, ...(o.error.fix ? { fix: o.error.fix } : {}), durationMs };
  if (parity && !parity.pass) return { ...base, ...extras, status: 'parity-failed', reason: `output differs from ${parity.reference}: relL2 ${parity.relL2}, maxAbs ${parity.maxAbs} (tolerance ${parity.tolerance})`, durationMs };
  if (!o.done || !o.samples || o.error) {
    return { ...base, ...extras, status: 'failed', reason: describeFailure(o), ...(o.error ? { phase: o.error.phase } : {}), durationMs };
  }
  const samplesMs = nsToMs(o.samples.samplesNs);
  const stats = summarize(samplesMs);
  return {
    ...base,
    ...extras,
    status: 'ok',
    reason: null,
    stats,
    samplesMs,
    warmupMs: nsToMs(o.samples.warmupNs),
    stopReason: o.samples.stopReason,
    warmupStopReason: o.samples.warmupStopReason,
    throughput: c.batchSize / (stats.medianMs / 1000),
    gflops: base.flops / (stats.medianMs / 1000) / 1e9,
    durationMs,
  };
}

/** Why a cell cannot run here, from the engine's probe and descriptor, or undefined if it can. */
function skipReason(c: PlannedCell, status: EngineStatus | undefined): { reason: string; fix?: string } | undefined {
  const e = ENGINES[c.engine];
  if (!e.devices.includes(c.device)) return { reason: `${e.id} does not run on ${c.device}; it supports ${e.devices.join(', ')}`, fix: `use --device ${e.devices[0]}` };
  if (!status?.available) return { reason: status?.reason ?? 'engine was not probed', ...(status?.fix ? { fix: status.fix } : {}) };
  if (!status.devices?.includes(c.device)) {
    const why = status.details?.[c.device];
    return { reason: `${e.id} cannot use ${c.device} here${why ? `: ${why}` : ''}`, ...(status.details?.[`${c.device}Fix`] ? { fix: status.details[`${c.device}Fix`] } : {}) };
  }
  return undefined;
}

/** Runs the whole matrix, appending each finished cell to DIR/cells.jsonl, then writes DIR/run.json. */
export async function runMatrix(config: RunConfig, outDir: string, command: string[], hooks: RunHooks = {}): Promise<Run> {
  const startedAt = new Date().toISOString();
  const cells = planCells(config);
  const store = new ResultsStore(outDir);
  hooks.onNote?.('detecting host and probing engines');
  const probeIds = [...new Set<EngineId>([...config.engines.map((e) => getEngine(e).id), REFERENCE.engine])];
  const [host, engines] = await Promise.all([detectHost(), probeEngines(probeIds)]);
  hooks.onPlan?.(cells);
  const refStatus = engines[REFERENCE.engine]!;
  const records: Cell[] = [];
  const groups = new Map<string, PlannedCell[]>();
  for (const c of cells) {
    const k = `${c.family.name}|${c.batchSize}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const finish = (cell: Cell): void => {
    store.appendCell(cell);
    records.push(cell);
    hooks.onCellDone?.(cell);
  };
  for (const group of groups.values()) {
    const { family, params, batchSize } = group[0]!;
    const m = materialize(family, params, config.seed, batchSize);
    const runnable = group.filter((c) => !skipReason(c, engines[c.engine]));
    const ref = runnable.length === 0 ? undefined : refStatus.available ? await referenceOutput(m, family, params, batchSize, config, refStatus.version ?? 'unknown') : { error: `reference engine ${REFERENCE.engine} unavailable: ${refStatus.reason}` };
    for (const c of group) {
      hooks.onCellStart?.(c);
      const cellStart = new Date().toISOString();
      const t0 = Date.now();
      const skip = skipReason(c, engines[c.engine]);
      if (skip) {
        finish({ ...baseRecord(c, config, cellStart), status: 'skipped', reason: skip.reason, ...(skip.fix ? { fix: skip.fix } : {}), durationMs: 0 });
        continue;
      }
      if (!ref || 'error' in ref) {
        finish({ ...baseRecord(c, config, cellStart), status: 'failed', reason: ref ? ref.error : 'no reference', phase: 'parity', durationMs: Date.now() - t0 });
        continue;
      }
      let parity: Cell['parity'];
      const o = await runEngineWorker(ENGINES[c.engine], jobMessage(c, m, config), {
        timeoutMs: config.cellTimeoutMs,
        env: threadEnv(config.threads),
        onParity: (p) => {
          const f = compareOutputs(ref.values, ref.shape, p.values, p.shape);
          parity = { reference: REFERENCE_NAME, relL2: Number.isFinite(f.relL2) ? f.relL2 : null, maxAbs: Number.isFinite(f.maxAbs) ? f.maxAbs : null, tolerance: FP32_REL_L2_TOLERANCE, pass: f.pass };
          return f.pass ? 'continue' : 'stop';
        },
      });
      finish(cellFromOutcome(c, config, cellStart, Date.now() - t0, o, parity));
    }
  }
  const run: Run = {
    schemaVersion: SCHEMA_VERSION,
    tool: { name: 'fwbench', version: TOOL_VERSION },
    command,
    startedAt,
    finishedAt: new Date().toISOString(),
    host,
    hostFingerprint: hostFingerprint(host),
    engines,
    config,
    cells: records,
  };
  store.writeRun(run);
  return run;
}

/** The families named in a config, for callers that need the objects. */
export const familiesOf = (names: FamilyName[]): WorkloadFamily[] => names.map((n) => getFamily(n));

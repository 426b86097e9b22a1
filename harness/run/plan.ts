import {
  FAMILIES,
  FAMILY_NAMES,
  getFamily,
  PADDINGS,
  PRECISIONS,
  resolveParams,
  setsForFamily,
  SHAPES,
  TASKS,
  type Padding,
  type Params,
  type Precision,
  type Shapes,
  type Task,
  type WorkloadFamily,
} from '../../workloads/index.js';
import { streamProblem } from '../../workloads/shapes.js';
import { CACHES, GENERATE, generationProblem, type Generation } from '../../workloads/generate.js';
import { familyTasks } from '../../workloads/types.js';
import { ENGINES, getEngine, modesToRun, precisionProblem, unsupportedReason } from '../engines/registry.js';
import type { Device, EngineId } from '../engines/types.js';
import type { BatchFit, Cell, EngineStatus, RunConfig } from '../results/schema.js';

/**
 * Planning a run: which cells the configuration asks for, which of them this machine can run,
 * and which a batch-size sweep leaves out after running out of memory.
 */

/** The reference every cell's output is compared with: ONNX Runtime on the CPU with graph optimizations disabled. */
export const REFERENCE = { engine: 'onnxruntime' as const, mode: 'disabled', device: 'cpu' as const };
/** The reference as cells' parity records name it. */
export const REFERENCE_NAME = `${REFERENCE.engine}/${REFERENCE.mode}/${REFERENCE.device}`;

/** One planned cell. */
export interface PlannedCell {
  id: string;
  /** What the cell does with the model. */
  task: Task;
  /** One fixed shape, or a shape stream (workloads/shapes.ts). */
  shapes: Shapes;
  /** A stream cell's padding strategy. */
  padding?: Padding;
  /** The number format (workloads/precision.ts). */
  precision: Precision;
  /** A generation cell's prompt length, new tokens and cache (task `generate`). */
  generation?: Generation;
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

/** The tasks a run does (run.json files from before the task axis hold none: they did inference). */
export const tasksOf = (config: Pick<RunConfig, 'tasks'>): Task[] => config.tasks ?? [TASKS[0]];

/** The shapes a run uses (run.json files from before the shapes axis hold none: fixed). */
export const shapesOf = (config: Pick<RunConfig, 'shapes'>): Shapes[] => config.shapes ?? [SHAPES[0]];
/** The padding strategies of a run's stream cells. */
export const paddingsOf = (config: Pick<RunConfig, 'paddings'>): Padding[] => config.paddings ?? [...PADDINGS];

/** The generations of a run's generate cells: each prompt length with each cache, at its new tokens. */
export const generationsOf = (config: Pick<RunConfig, 'promptLengths' | 'newTokens' | 'caches'>): Generation[] =>
  (config.promptLengths ?? [GENERATE.promptLength]).flatMap((promptLength) =>
    (config.caches ?? [...CACHES]).map((cache) => ({ promptLength, newTokens: config.newTokens ?? GENERATE.newTokens, cache })),
  );

/** A generation's part of a cell id: `p<prompt>n<new>`, and `/nocache` without the cache. */
export const generationId = (g: Generation): string => `p${g.promptLength}n${g.newTokens}${g.cache === 'none' ? '/nocache' : ''}`;

/** The precisions a run uses (run.json files from before the precision axis hold none: fp32). */
export const precisionsOf = (config: Pick<RunConfig, 'precisions'>): Precision[] => config.precisions ?? [PRECISIONS[0]];

/**
 * A cell's id: `engine/mode/device/workload/preset/bN/tT`, with `/training` for a training cell,
 * `/generate/p<prompt>n<new>[/nocache]` for a generation cell, `/stream-<padding>` for a stream
 * cell and `/<precision>` for a reduced precision (fixed-shape fp32 inference ids are as they always were).
 */
export const cellId = (
  c: Omit<PlannedCell, 'id' | 'family' | 'params' | 'shapes' | 'precision'> & { family: { name: string }; shapes?: Shapes; precision?: Precision },
): string =>
  `${c.engine}/${c.mode}/${c.device}/${c.family.name}/${c.preset}/b${c.batchSize}/t${c.threads}${c.task === 'inference' ? '' : `/${c.task}`}${
    c.generation ? `/${generationId(c.generation)}` : ''
  }${c.shapes === 'stream' ? `/stream-${c.padding}` : ''}${c.precision && c.precision !== 'fp32' ? `/${c.precision}` : ''}`;

/**
 * Expands the configuration into cells, task by task, grouped by (task, workload, batch) so each
 * group shares one reference; thread counts are a dimension inside a group, so their replicates
 * interleave too.
 */
export function planCells(config: RunConfig): PlannedCell[] {
  const families = config.workloads.map((w) => getFamily(w));
  const cells: PlannedCell[] = [];
  for (const task of tasksOf(config))
    for (const shapes of shapesOf(config))
      for (const family of families) {
        const preset = config.preset[family.name]!;
        const params = resolveParams(family, preset, setsForFamily(family, config.sets, families));
        for (const batchSize of config.batchSizes)
          for (const padding of shapes === 'stream' ? paddingsOf(config) : [undefined])
            for (const generation of task === 'generate' ? generationsOf(config) : [undefined])
              for (const precision of precisionsOf(config))
                for (const id of config.engines) {
                  const engine = getEngine(id);
                  for (const mode of modesToRun(engine, config.modes, task, shapes)) {
                    for (const threads of config.threads) {
                      const cell = {
                        task,
                        shapes,
                        ...(padding ? { padding } : {}),
                        ...(generation ? { generation } : {}),
                        precision,
                        engine: engine.id,
                        mode,
                        device: config.device,
                        family,
                        preset,
                        batchSize,
                        threads,
                      };
                      cells.push({ ...cell, id: cellId(cell), params });
                    }
                  }
                }
      }
  return cells;
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

/** Why a cell cannot run here, from the engine's probe and descriptor, or undefined if it can. */
export function skipReason(c: PlannedCell, status: EngineStatus | undefined): { reason: string; fix?: string } | undefined {
  const e = ENGINES[c.engine];
  if (!familyTasks(c.family).includes(c.task)) {
    const able = FAMILY_NAMES.filter((f) => familyTasks(FAMILIES[f]).includes(c.task));
    return {
      reason: `the ${c.family.name} family does not do ${c.task}; its models do ${familyTasks(c.family).join(' and ')}`,
      fix: `--workloads ${able.join(',')} with --tasks ${c.task}, or --tasks ${familyTasks(c.family).join(',')} for ${c.family.name}`,
    };
  }
  if (c.generation) {
    const why = generationProblem(c.family, c.params, c.generation);
    if (why) return { reason: why, fix: `a shorter --prompt-len or --new-tokens, or --set ctx=${c.generation.promptLength + c.generation.newTokens}` };
    if (c.shapes !== 'fixed' || c.precision !== 'fp32')
      return { reason: 'a generation cell runs its fixed prompts in fp32', fix: '--shapes fixed --precision fp32 with --tasks generate' };
  }
  const problem = c.task === 'training' ? c.family.trainingProblem?.(c.params, c.batchSize) : undefined;
  if (problem) return { reason: `${c.family.name} cannot train here: ${problem.reason}`, fix: problem.fix };
  if (c.shapes === 'stream') {
    if (c.task !== 'inference')
      return { reason: `a shape stream times inference; a ${c.task} cell runs one fixed shape`, fix: '--tasks inference with --shapes stream' };
    const noStream = streamProblem(c.family);
    if (noStream) return { reason: noStream, fix: '--workloads rnn,transformer with --shapes stream' };
  }
  if (c.precision !== 'fp32') {
    if (c.task !== 'inference' || c.shapes !== 'fixed')
      return {
        reason: `${c.precision} cells time fixed-shape inference; a ${c.task === 'inference' ? 'shape-stream' : c.task} cell runs fp32`,
        fix: '--tasks inference --shapes fixed with --precision',
      };
    const why = precisionProblem(e, c.precision, { device: c.device, family: c.family.name, mode: c.mode });
    if (why) {
      // Name the mode only when the engine's other modes can (TensorFlow's xla at bf16), not for a device or family limit.
      const modes = e.modes.filter((m) => !precisionProblem(e, c.precision, { device: c.device, family: c.family.name, mode: m }));
      const byMode = modes.length > 0;
      const able = Object.values(ENGINES).filter((x) => !precisionProblem(x, c.precision, { device: c.device, family: c.family.name, mode: x.modes[0]! }));
      return {
        reason: `${e.id}${byMode ? ` mode ${c.mode}` : ''} cannot run ${c.precision} on ${c.family.name}/${c.device}: ${why}`,
        fix: byMode
          ? `--modes ${modes.join(',')} run ${c.precision} on ${e.id}`
          : able.length
            ? `--engines ${able.map((x) => x.id).join(',')} run ${c.precision} on ${c.family.name}/${c.device}`
            : `--precision fp32`,
      };
    }
  }
  const cannot = unsupportedReason(e, c.task, c.mode);
  if (cannot) {
    // The fix is what can: the engine's other modes, or the engines that can do the task.
    const modes = e.modes.filter((m) => !unsupportedReason(e, c.task, m));
    const engines = Object.values(ENGINES).filter((x) => x.devices.includes(c.device) && x.modes.some((m) => !unsupportedReason(x, c.task, m)));
    const fix = modes.length
      ? `--modes ${modes.join(',')}`
      : `--engines ${engines.map((x) => x.id).join(',')} (the engines with a ${c.task} step on ${c.device})`;
    return { reason: `${e.id}${modes.length ? ` mode ${c.mode}` : ''} cannot do ${c.task}: ${cannot}`, fix };
  }
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
export function sweepSkip(c: PlannedCell, done: Iterable<Cell>): string | undefined {
  const key = sweepKey({ ...c, workload: c.family.name });
  const fit = largestBatchFit([...done]).find((f) => sweepKey(f) === key);
  if (!fit || c.batchSize <= fit.outOfMemoryAtBatch) return undefined;
  return `not run: batch ${fit.outOfMemoryAtBatch} ran out of memory; largest batch that fit: ${fit.largestBatch ?? 'none'}`;
}

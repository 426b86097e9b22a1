import { InputError } from '../errors.js';
import { onnxruntime } from './onnxruntime.js';
import { tensorflow } from './tensorflow.js';
import { tfjsCpu, tfjsNode, tfjsNodeGpu, tfjsWasm } from './tfjs/index.js';
import { torch } from './torch.js';
import type { Shapes } from '../../workloads/shapes.js';
import type { Task } from '../../workloads/types.js';
import { ENGINE_IDS, type EngineDescriptor, type EngineId, type NodeEngineDescriptor } from './types.js';

/** Every engine, by id. Adding an engine = one file + one line here. */
export const ENGINES: Record<EngineId, EngineDescriptor> = {
  onnxruntime,
  'tfjs-node': tfjsNode,
  'tfjs-node-gpu': tfjsNodeGpu,
  'tfjs-wasm': tfjsWasm,
  'tfjs-cpu': tfjsCpu,
  torch,
  tensorflow,
};

/**
 * The default of `fwbench run`: every engine but the fallbacks. A run that did not name its
 * engines leaves out those that are not available here (each listed once, with its fix).
 */
export const DEFAULT_ENGINES: EngineId[] = ENGINE_IDS.filter((id) => ENGINES[id].inDefaultRun !== false);

/** Looks an engine up by id, or throws an InputError listing the valid ids. */
export function getEngine(id: string): EngineDescriptor {
  const e = (ENGINES as Record<string, EngineDescriptor>)[id];
  if (!e) throw new InputError(`unknown engine '${id}'; valid engines: ${ENGINE_IDS.join(', ')}`);
  return e;
}

/** Looks up an engine the Node worker runs (the Python ones have no Node runtime). */
export function getNodeEngine(id: string): NodeEngineDescriptor {
  const e = getEngine(id);
  if (e.language !== 'node') throw new Error(`engine '${id}' runs in the ${e.language} runner, not the Node worker`);
  return e;
}

/** `--modes`: mode names, or `all` for every mode of every engine; absent means each engine's default modes. */
export type ModeSelection = string[] | 'all';

// Declared next to the precision types so an engine can check its own cells (onnxruntime.ts) without importing this registry.
export { precisionProblem } from './precision.js';

/** Why an engine (or one of its modes) cannot do a task, or undefined when it can. */
export function unsupportedReason(e: EngineDescriptor, task: Task, mode: string): string | undefined {
  const table = e.unsupported?.[task];
  return table?.['*'] ?? table?.[mode];
}

/**
 * The modes one engine runs for a selection: all of them for `all`; without a selection its
 * `defaultModes` (or its first mode) for inference, and for another task every mode that can do it
 * (training's eager and compiled modes side by side; the first mode when none can, so the cell
 * says why) but for generation its `generateModes` (else its default ones), and its `streamModes` for a shape stream; otherwise the listed modes it has, in its own order, or its first mode when it has
 * none of them (so every selected engine keeps a cell).
 */
export function modesToRun(e: EngineDescriptor, selection: ModeSelection | undefined, task: Task = 'inference', shapes: Shapes = 'fixed'): string[] {
  // An engine that cannot do the task at all keeps one cell, which says why.
  if (e.unsupported?.[task]?.['*']) return [e.modes[0]!];
  if (selection === 'all') return [...e.modes];
  // A shape stream is where compiled modes differ most (recompilation): its modes side by side.
  if (selection === undefined && task === 'inference' && shapes === 'stream' && e.streamModes) return [...e.streamModes];
  // Generation: the engine's generate modes, else its default ones (ONNX Runtime's optimization levels do not all need a cell).
  if (selection === undefined && task === 'generate') return [...(e.generateModes ?? e.defaultModes ?? [e.modes[0]!])];
  if (selection === undefined && task !== 'inference') {
    const able = e.modes.filter((m) => !unsupportedReason(e, task, m));
    return able.length > 0 ? able : [e.modes[0]!];
  }
  if (selection === undefined) return e.defaultModes ?? [e.modes[0]!];
  const listed = e.modes.filter((m) => selection.includes(m));
  return listed.length > 0 ? listed : [e.modes[0]!];
}

/** Throws an InputError naming any listed mode that none of the engines has. */
export function checkModes(engines: EngineDescriptor[], selection: ModeSelection | undefined): void {
  if (selection === undefined || selection === 'all') return;
  const known = new Set(engines.flatMap((e) => e.modes));
  const unknown = selection.filter((m) => !known.has(m));
  if (unknown.length > 0) {
    throw new InputError(
      `unknown mode${unknown.length > 1 ? 's' : ''} ${unknown.map((m) => `'${m}'`).join(', ')} for engines ${engines.map((e) => e.id).join(', ')}; their modes: ${engines.map((e) => `${e.id} ${e.modes.join('|')}`).join('; ')}`,
    );
  }
}

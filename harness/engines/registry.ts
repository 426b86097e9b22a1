import { InputError } from '../../workloads/index.js';
import { onnxruntime } from './onnxruntime.js';
import { tfjsCpu, tfjsNode, tfjsNodeGpu, tfjsWasm } from './tfjs/index.js';
import { ENGINE_IDS, type EngineDescriptor, type EngineId } from './types.js';

/** Every engine, by id. Adding an engine = one file + one line here. */
export const ENGINES: Record<EngineId, EngineDescriptor> = {
  onnxruntime,
  'tfjs-node': tfjsNode,
  'tfjs-node-gpu': tfjsNodeGpu,
  'tfjs-wasm': tfjsWasm,
  'tfjs-cpu': tfjsCpu,
};

/** Engines that need nothing but npm: the default of `fwbench run`. */
export const DEFAULT_ENGINES: EngineId[] = ['onnxruntime', 'tfjs-wasm', 'tfjs-cpu'];

/** Looks an engine up by id, or throws an InputError listing the valid ids. */
export function getEngine(id: string): EngineDescriptor {
  const e = (ENGINES as Record<string, EngineDescriptor>)[id];
  if (!e) throw new InputError(`unknown engine '${id}'; valid engines: ${ENGINE_IDS.join(', ')}`);
  return e;
}

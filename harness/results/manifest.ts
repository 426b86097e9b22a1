import { CACHES, FAMILIES, FAMILY_NAMES, familyTasks, GENERATE, PADDINGS, PRECISION, PRECISIONS, SHAPES, SIZES, STREAM, TASKS } from '../../workloads/index.js';
import { ENGINES, modesToRun } from '../engines/registry.js';
import { DEVICES, ENGINE_IDS } from '../engines/types.js';
import { FAULT_KINDS } from '../worker/fault.js';
import { DEFAULT_MEASURE } from '../worker/measure.js';
import { PHASES } from '../worker/protocol.js';

/**
 * results/schema/manifest.json: the identity lists, taken from their one declaration each, for
 * code that cannot import TypeScript (the Python runner validates cells against it and takes its
 * modes, devices, phases and measurement defaults from it). `fwbench schema` writes it beside the
 * JSON Schemas; a test keeps the committed copy current.
 */
export function identityManifest() {
  return {
    title: 'fwbench identity lists, generated from the TypeScript declarations by `fwbench schema` (npm run schemas): do not edit',
    /** harness/engines/registry.ts: each engine's framework, worker language, devices, modes, the modes a run gets without --modes, the tasks it or some of its modes cannot do, with why ('*' = every mode), and how it runs each reduced precision (a way, or why it cannot). */
    engines: Object.fromEntries(
      ENGINE_IDS.map((id) => {
        const e = ENGINES[id];
        return [
          id,
          { framework: e.framework, language: e.language, devices: e.devices, modes: e.modes, defaultModes: modesToRun(e, undefined), unsupported: e.unsupported ?? {}, precisions: e.precisions },
        ];
      }),
    ),
    /** harness/engines/types.ts DEVICES. */
    devices: DEVICES,
    /** workloads/: each family's parameters, presets, the preset of each size class and the tasks its models do. */
    families: Object.fromEntries(
      FAMILY_NAMES.map((name) => {
        const f = FAMILIES[name];
        return [name, { description: f.description, params: f.params, presets: f.presets, sizes: f.sizes, tasks: familyTasks(f) }];
      }),
    ),
    /** workloads/types.ts TASKS: what a cell does with its model (absent from a job = the first). */
    tasks: TASKS,
    /** workloads/generate.ts CACHES: a generation cell's cache. */
    caches: CACHES,
    /** workloads/generate.ts GENERATE: the generation settings' defaults and the warm generations' counts. */
    generate: GENERATE,
    /** workloads/shapes.ts SHAPES: a cell's input shapes (absent from a job = the first, fixed). */
    shapes: SHAPES,
    /** workloads/shapes.ts PADDINGS: a stream cell's padding strategies. */
    paddings: PADDINGS,
    /** workloads/shapes.ts STREAM: the stream's settings (batches, passes, pad token). */
    stream: STREAM,
    /** workloads/precision.ts PRECISIONS: a cell's number format (absent from a job = the first, fp32). */
    precisions: PRECISIONS,
    /** workloads/precision.ts PRECISION: each precision's doc line and its gates against the fp32 reference. */
    precision: PRECISION,
    /** workloads/types.ts SIZES. */
    sizes: SIZES,
    /** harness/worker/protocol.ts PHASES: the phases a worker announces. */
    phases: PHASES,
    /** harness/worker/fault.ts FAULT_KINDS: the test-only FWBENCH_FAULT kinds. */
    faultKinds: FAULT_KINDS,
    /** harness/worker/measure.ts DEFAULT_MEASURE: the timed loop's default settings. */
    measure: DEFAULT_MEASURE,
  };
}

/**
 * Prints the job messages `fwbench run` sends the Python runner, one JSON line each, made by the
 * harness's own compiled code (dist/: planCells, materialize, jobMessage) for every mode of every
 * Python engine on every workload family, each in the task its models do (the decoder generates,
 * in the modes that can: its jobs carry their `generate` fields): tiny presets, batch 2, one
 * thread, --quick measurement. The weights, inputs and prompts they point at are written to
 * FWBENCH_CACHE. test_protocol.py runs it.
 */
import { ENGINES } from '../../dist/harness/engines/registry.js';
import { ENGINE_IDS } from '../../dist/harness/engines/types.js';
import { jobMessage } from '../../dist/harness/run/execute.js';
import { generateJob } from '../../dist/harness/run/generate.js';
import { planCells, skipReason } from '../../dist/harness/run/plan.js';
import { QUICK_MEASURE } from '../../dist/harness/worker/measure.js';
import { FAMILIES, FAMILY_NAMES } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';

const config = {
  engines: ENGINE_IDS.filter((id) => ENGINES[id].language === 'python'),
  workloads: FAMILY_NAMES,
  preset: Object.fromEntries(FAMILY_NAMES.map((name) => [name, FAMILIES[name].sizes.tiny])),
  tasks: ['inference', 'generate'],
  promptLengths: [4],
  newTokens: 3,
  caches: ['kv'],
  batchSizes: [2],
  modes: 'all',
  sets: [],
  device: 'cpu',
  threads: [1],
  seed: 0,
  measure: QUICK_MEASURE,
  cellTimeoutMs: 60_000,
};
const up = { available: true, framework: 'x', devices: ['cpu'] };
for (const cell of planCells(config).filter((c) => !skipReason(c, up))) {
  const m = materialize(cell.family, cell.params, config.seed, cell.batchSize);
  const job = jobMessage(cell, m, config);
  process.stdout.write(`${JSON.stringify(cell.task === 'generate' ? generateJob(job, cell, config, m) : job)}\n`);
}

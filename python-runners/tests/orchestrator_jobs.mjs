/**
 * Prints the job messages `fwbench run` sends the Python runner, one JSON line each, made by the
 * harness's own compiled code (dist/: planCells, materialize, jobMessage) for every mode of every
 * Python engine on every workload family: tiny presets, batch 2, one thread, --quick measurement.
 * The weights and inputs they point at are written to FWBENCH_CACHE. test_protocol.py runs it.
 */
import { ENGINES } from '../../dist/harness/engines/registry.js';
import { ENGINE_IDS } from '../../dist/harness/engines/types.js';
import { jobMessage } from '../../dist/harness/run/execute.js';
import { planCells } from '../../dist/harness/run/plan.js';
import { QUICK_MEASURE } from '../../dist/harness/worker/measure.js';
import { FAMILIES, FAMILY_NAMES } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';

const config = {
  engines: ENGINE_IDS.filter((id) => ENGINES[id].language === 'python'),
  workloads: FAMILY_NAMES,
  preset: Object.fromEntries(FAMILY_NAMES.map((name) => [name, FAMILIES[name].sizes.tiny])),
  batchSizes: [2],
  modes: 'all',
  sets: [],
  device: 'cpu',
  threads: [1],
  seed: 0,
  measure: QUICK_MEASURE,
  cellTimeoutMs: 60_000,
};
for (const cell of planCells(config)) {
  const m = materialize(cell.family, cell.params, config.seed, cell.batchSize);
  process.stdout.write(`${JSON.stringify(jobMessage(cell, m, config))}\n`);
}

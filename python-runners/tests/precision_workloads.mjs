/**
 * Prints, as one JSON line, the canonical workloads the precision tests and measurements need,
 * made by the harness's own compiled code (dist/: materialize, jobMessage): for each
 * `family=preset` argument after the batch size (default: the tiny preset of every family that does inference),
 * {"family/preset": {params, weightsPath, inputsPath, job}}, where `job` is the message
 * `fwbench run` sends a torch eager cell on the CPU (one thread, --quick measurement). The files
 * are written to FWBENCH_CACHE. test_precision_torch.py runs it.
 */
import { jobMessage } from '../../dist/harness/run/execute.js';
import { QUICK_MEASURE } from '../../dist/harness/worker/measure.js';
import { FAMILIES, FAMILY_NAMES, familyTasks } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';

const batch = Number(process.argv[2] ?? 4);
// Precision cells time inference: the families that do it (the decoder only generates).
const wanted =
  process.argv.length > 3
    ? process.argv.slice(3)
    : FAMILY_NAMES.filter((name) => familyTasks(FAMILIES[name]).includes('inference')).map((name) => `${name}=${FAMILIES[name].sizes.tiny}`);
const seed = 0;
const config = { measure: QUICK_MEASURE };
const out = {};
for (const item of wanted) {
  const [name, preset] = item.split('=');
  const family = FAMILIES[name];
  const params = family.presets[preset];
  const m = materialize(family, params, seed, batch);
  const cell = { engine: 'torch', mode: 'eager', device: 'cpu', family, params, batchSize: batch, threads: 1 };
  out[`${name}/${preset}`] = { params, weightsPath: m.weightsPath, inputsPath: m.inputsPath, job: jobMessage(cell, m, config) };
}
process.stdout.write(`${JSON.stringify(out)}\n`);

/**
 * Prints, as one JSON line, the canonical tiny workload of every family for a training test, made
 * by the harness's own compiled code (dist/: materialize, materializeLabels), and the training recipe:
 * {recipe: TRAINING, workloads: {family: {params, weightsPath, inputsPath, labelsPath}}} for the
 * batch given as the first argument (default 4).
 * The files are written to FWBENCH_CACHE. test_training_torch.py runs it.
 */
import { FAMILIES, FAMILY_NAMES } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';
import { TRAINING, materializeLabels } from '../../dist/workloads/training.js';

const batch = Number(process.argv[2] ?? 4);
const seed = 0;
const workloads = {};
for (const name of FAMILY_NAMES) {
  const family = FAMILIES[name];
  const params = family.presets[family.sizes.tiny];
  const m = materialize(family, params, seed, batch);
  workloads[name] = { params, weightsPath: m.weightsPath, inputsPath: m.inputsPath, labelsPath: materializeLabels(family, params, seed, batch) };
}
process.stdout.write(`${JSON.stringify({ recipe: TRAINING, workloads })}\n`);

/**
 * Writes what a training cell reads, with the harness's own compiled code (dist/): the canonical
 * weights and inputs (materialize), the Keras-layout weights (the TensorFlow engine descriptor's
 * nativeWeights, i.e. harness/engines/keras-layout.ts) and the seeded labels (materializeLabels),
 * into FWBENCH_CACHE. Argument: a JSON list of {family, preset, set (params replaced), seed, batch};
 * prints one JSON line per entry: its params, the paths, and the recipe (TRAINING).
 * test_training_tensorflow.py runs it.
 */
import { tensorflow } from '../../dist/harness/engines/tensorflow.js';
import { FAMILIES } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';
import { materializeLabels, TRAINING } from '../../dist/workloads/training.js';

for (const { family: name, preset, set = {}, seed, batch } of JSON.parse(process.argv[2])) {
  const family = FAMILIES[name];
  const params = { ...family.presets[preset], ...set };
  const m = materialize(family, params, seed, batch);
  const line = {
    family: name,
    params,
    recipe: TRAINING,
    weightsPath: m.weightsPath,
    inputsPath: m.inputsPath,
    nativeWeightsPath: tensorflow.nativeWeights(family, params, m),
    labelsPath: materializeLabels(family, params, seed, batch),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

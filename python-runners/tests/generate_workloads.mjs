/**
 * Prints, as one JSON line, what the generation tests need, made by the harness's own compiled code
 * (dist/: materialize, materializePrompt, jobMessage): the decoder's tiny preset at the batch, prompt
 * length and new tokens given as arguments (default 2 8 6), {params, weightsPath, promptPath, job},
 * where `job` is the message `fwbench run` sends a torch eager generation cell with the kv cache
 * (--quick measurement), its `generate` field writing the logits to LOGITS (4th argument, default
 * logits.safetensors in FWBENCH_CACHE). The files are written to FWBENCH_CACHE.
 */
import { join } from 'node:path';
import { jobMessage } from '../../dist/harness/run/execute.js';
import { QUICK_MEASURE } from '../../dist/harness/worker/measure.js';
import { FAMILIES, GENERATE } from '../../dist/workloads/index.js';
import { cacheDir, materialize } from '../../dist/workloads/materialize.js';
import { materializePrompt } from '../../dist/workloads/generate.js';

const [batch, promptLength, newTokens] = [2, 8, 6].map((d, i) => Number(process.argv[2 + i] ?? d));
const logitsPath = process.argv[5] ?? join(cacheDir(), 'logits.safetensors');
const seed = 0;
const family = FAMILIES.decoder;
const params = family.presets.tiny;
const m = materialize(family, params, seed, batch);
const promptPath = materializePrompt(family, params, seed, batch, promptLength);
const generation = { promptLength, newTokens, cache: 'kv' };
const cell = { engine: 'torch', mode: 'eager', device: 'cpu', family, params, batchSize: batch, threads: 1, task: 'generate', generation };
const job = {
  ...jobMessage(cell, m, { measure: QUICK_MEASURE }),
  generate: { promptPath, logitsPath, minPasses: GENERATE.minPasses, maxPasses: GENERATE.maxPasses },
};
process.stdout.write(`${JSON.stringify({ params, weightsPath: m.weightsPath, promptPath, job })}\n`);

/**
 * Prints, as one JSON line, what the shape-stream tests need, made by the harness's own compiled
 * code (dist/: materialize, materializeStream, jobMessage): for rnn and transformer at their tiny
 * presets and the batch given as the first argument (default 4), {family: {params, weightsPath,
 * streams: {padding: {path, batches}}, job}}, where `job` is the message `fwbench run` sends a
 * torch stream cell (mode eager, padding exact, --quick measurement) with its `stream` field.
 * The files are written to FWBENCH_CACHE. test_shapes_torch.py and test_runner_stream.py run it.
 */
import { jobMessage } from '../../dist/harness/run/execute.js';
import { QUICK_MEASURE } from '../../dist/harness/worker/measure.js';
import { FAMILIES } from '../../dist/workloads/index.js';
import { materialize } from '../../dist/workloads/materialize.js';
import { PADDINGS, STREAM, materializeStream } from '../../dist/workloads/shapes.js';

const batch = Number(process.argv[2] ?? 4);
const seed = 0;
const config = { measure: QUICK_MEASURE };
const out = {};
for (const name of ['rnn', 'transformer']) {
  const family = FAMILIES[name];
  const params = family.presets[family.sizes.tiny];
  const m = materialize(family, params, seed, batch);
  const streams = {};
  for (const padding of [...PADDINGS, 'rows']) {
    const s = materializeStream(family, params, seed, batch, padding);
    streams[padding] = { path: s.path, batches: s.batches, lengths: s.stream.lengths };
  }
  const cell = { engine: 'torch', mode: 'eager', device: 'cpu', family, params, batchSize: batch, threads: 1, shapes: 'stream', padding: 'exact' };
  const job = {
    ...jobMessage(cell, m, config),
    stream: { path: streams.exact.path, batches: streams.exact.batches, minPasses: STREAM.minPasses, maxPasses: STREAM.maxPasses },
  };
  out[name] = { params, weightsPath: m.weightsPath, streams, job };
}
process.stdout.write(`${JSON.stringify(out)}\n`);

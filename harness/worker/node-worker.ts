import net from 'node:net';
import readline from 'node:readline';
import { loadTensors } from '../../workloads/safetensors.js';
import { measure } from '../measure.js';
import { FromWorker, PROTOCOL_VERSION, ToWorkerSchema, type ToWorker } from '../protocol.js';
import { getNodeEngine } from '../engines/registry.js';
import { EngineUnavailable } from '../engines/types.js';
import { peakHostBytes } from './memory.js';

/**
 * The Node worker: one process per cell (or per probe). Speaks the protocol on fd 3, leaving
 * stdout/stderr to the frameworks' own logging.
 */
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
const lines = readline.createInterface({ input: channel })[Symbol.asyncIterator]();
type Phase = Extract<FromWorker, { type: 'error' }>['phase'];
let phase: Phase = 'start';

function send(msg: FromWorker): void {
  channel.write(`${JSON.stringify(msg)}\n`);
}

async function receive(): Promise<ToWorker> {
  const next = await lines.next();
  if (next.done) throw new Error('orchestrator closed the channel');
  return ToWorkerSchema.parse(JSON.parse(next.value));
}

async function main(): Promise<void> {
  const first = await receive();
  send({ type: 'hello', protocol: PROTOCOL_VERSION, pid: process.pid, language: 'node', runtime: `node ${process.version}` });
  if (first.type === 'probe') {
    phase = 'probe';
    const runtime = await getNodeEngine(first.engine).load();
    const p = await runtime.probe();
    send({ type: 'probe-result', version: p.version, devices: p.devices, details: p.details });
    return;
  }
  if (first.type === 'peak') {
    phase = 'peak';
    const runtime = await getNodeEngine(first.engine).load();
    if (!runtime.peak) throw new Error(`engine '${first.engine}' cannot measure peak figures`);
    const req = { device: first.device, threads: first.threads, gemmN: first.gemmN, copyElements: first.copyElements, maxMs: first.maxMs };
    send({ type: 'peak-result', ...(await runtime.peak(req)) });
    return;
  }
  if (first.type !== 'job') throw new Error(`expected a job or probe message, got '${first.type}'`);
  const { cell } = first;
  phase = 'load';
  const runtime = await getNodeEngine(cell.engine).load();
  const weights = loadTensors(first.weightsPath).tensors;
  const inputs = loadTensors(first.inputsPath).tensors;
  phase = 'build';
  const t0 = process.hrtime.bigint();
  const model = await runtime.build({ family: cell.family, params: cell.params, batchSize: cell.batchSize, weights, device: cell.device, mode: cell.mode, threads: cell.threads });
  const t1 = process.hrtime.bigint();
  weights.clear();
  send({ type: 'built', buildMs: Number(t1 - t0) / 1e6, settings: model.settings });
  phase = 'first-run';
  const out = await model.run(inputs);
  const t2 = process.hrtime.bigint();
  send({ type: 'parity', firstRunMs: Number(t2 - t1) / 1e6, shape: [cell.batchSize, out.length / cell.batchSize], values: Array.from(out) });
  const verdict = await receive();
  if (verdict.type === 'continue') {
    phase = 'measure';
    const r = await measure(() => model.run(inputs), first.measure);
    send({ type: 'samples', ...r });
  }
  await model.dispose();
  phase = 'memory';
  send({ type: 'memory', peakHostBytes: peakHostBytes() });
}

main()
  .then(() => send({ type: 'done' }))
  .catch((e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    const unavailable = err instanceof EngineUnavailable;
    send({ type: 'error', phase, message: err.message, ...(err.stack ? { stack: err.stack } : {}), ...(unavailable ? { unavailable: true, fix: err.fix } : {}) });
    process.exitCode = unavailable ? 0 : 1;
  })
  .finally(() => {
    channel.end();
    // Frameworks may keep handles (thread pools, timers) alive; the protocol is complete.
    channel.on('close', () => process.exit());
  });

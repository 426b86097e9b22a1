import net from 'node:net';
import readline from 'node:readline';
import { loadTensors } from '../../workloads/safetensors.js';
import { measure } from './measure.js';
import { FromWorker, PROTOCOL_VERSION, ToWorkerSchema, type Phase, type ToWorker } from './protocol.js';
import { getNodeEngine } from '../engines/registry.js';
import { EngineUnavailable } from '../engines/types.js';
import { maybeFault, parseFault } from './fault.js';
import { peakHostBytes, watchWasmGrowth } from './memory.js';

/**
 * The Node worker: one process per cell (or per probe). Speaks the protocol on fd 3, leaving
 * stdout/stderr to the frameworks' own logging.
 */
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
const lines = readline.createInterface({ input: channel })[Symbol.asyncIterator]();
// The orchestrator is gone (even killed with kill -9) when its end of the channel closes: nobody
// will read this cell, and a worker left running would skew the cells of a resumed run.
channel.on('end', () => process.exit());
let phase: Phase = 'start';
const fault = parseFault(process.env.FWBENCH_FAULT);
const wasmGrowthFailure = watchWasmGrowth();

function send(msg: FromWorker): void {
  channel.write(`${JSON.stringify(msg)}\n`);
}

const writeRaw = (text: string): Promise<void> => new Promise((done) => channel.write(text, () => done()));

/** Announces a phase (so a worker that dies silently still leaves it) and fires an injected test fault there. */
async function enter(next: Phase, engine: string, batchSize?: number): Promise<void> {
  phase = next;
  send({ type: 'phase', phase });
  await maybeFault(fault, { phase, engine, ...(batchSize !== undefined ? { batchSize } : {}), writeRaw });
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
    await enter('probe', first.engine);
    const runtime = await getNodeEngine(first.engine).load();
    const p = await runtime.probe();
    send({ type: 'probe-result', version: p.version, devices: p.devices, details: p.details });
    return;
  }
  if (first.type === 'peak') {
    await enter('peak', first.engine);
    const runtime = await getNodeEngine(first.engine).load();
    if (!runtime.peak) throw new Error(`engine '${first.engine}' cannot measure peak figures`);
    const req = { device: first.device, threads: first.threads, gemmN: first.gemmN, copyElements: first.copyElements, maxMs: first.maxMs };
    send({ type: 'peak-result', ...(await runtime.peak(req)) });
    return;
  }
  if (first.type !== 'job') throw new Error(`expected a job or probe message, got '${first.type}'`);
  const { cell } = first;
  const at = (p: Phase): Promise<void> => enter(p, cell.engine, cell.batchSize);
  await at('load');
  // The cold start's segments, each on this process's monotonic clock.
  const msSince = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;
  let t = process.hrtime.bigint();
  const runtime = await getNodeEngine(cell.engine).load();
  await runtime.init?.({ device: cell.device, threads: cell.threads });
  const importMs = msSince(t);
  t = process.hrtime.bigint();
  const weights = loadTensors(first.weightsPath).tensors;
  const inputs = loadTensors(first.inputsPath).tensors;
  const weightsMs = msSince(t);
  await at('build');
  t = process.hrtime.bigint();
  const model = await runtime.build({
    family: cell.family,
    params: cell.params,
    batchSize: cell.batchSize,
    weights,
    device: cell.device,
    mode: cell.mode,
    threads: cell.threads,
  });
  const buildMs = msSince(t);
  weights.clear();
  // No compile segment: ORT optimizes the graph inside session creation (build), TensorFlow.js runs eagerly.
  send({ type: 'built', phases: { importMs, weightsMs, buildMs }, settings: model.settings });
  await at('parity');
  t = process.hrtime.bigint();
  const out = await model.run(inputs);
  send({ type: 'parity', firstRunMs: msSince(t), shape: [cell.batchSize, out.length / cell.batchSize], values: Array.from(out) });
  const verdict = await receive();
  if (verdict.type === 'continue') {
    await at('warmup');
    const r = await measure(
      () => model.run(inputs),
      first.measure,
      process.hrtime.bigint,
      () => at('measure'),
    );
    send({ type: 'samples', ...r });
  }
  await model.dispose();
  await at('memory');
  send({ type: 'memory', peakHostBytes: peakHostBytes() });
}

main()
  .then(() => send({ type: 'done' }))
  .catch((e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    const unavailable = err instanceof EngineUnavailable;
    // The class name says what kind of failure it was (RangeError, a framework's OOM error...).
    const grew = wasmGrowthFailure();
    const message = `${unavailable || err.name === 'Error' ? err.message : `${err.name}: ${err.message}`}${grew ? `, after ${grew}` : ''}`;
    send({ type: 'error', phase, message, ...(err.stack ? { stack: err.stack } : {}), ...(unavailable ? { unavailable: true, fix: err.fix } : {}) });
    process.exitCode = unavailable ? 0 : 1;
  })
  .finally(() => {
    channel.end();
    // Frameworks may keep handles (thread pools, timers) alive; the protocol is complete.
    channel.on('close', () => process.exit());
  });

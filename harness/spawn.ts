import { execa } from 'execa';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EngineDescriptor } from './engines/types.js';
import { FromWorkerSchema, type FromWorker, type ToWorker } from './protocol.js';

/**
 * Runs one worker process for one cell (or one probe) and collects its protocol messages.
 * The orchestrator never loads a framework itself: memory is per cell and a crash costs one cell.
 */

/** Path of the compiled Node worker (tests run from source, workers always run compiled). */
export function nodeWorkerScript(): string {
  const here = new URL('.', import.meta.url);
  const compiled = import.meta.url.endsWith('.ts') ? new URL('../dist/harness/worker/node-worker.js', here) : new URL('./worker/node-worker.js', here);
  const path = fileURLToPath(compiled);
  if (!existsSync(path)) throw new Error(`worker ${path} is missing: run 'npm run build' (npm ci does it)`);
  return path;
}

/** The package root (where python-runners/ lives), from source (tests) or from dist/. */
export function packageRoot(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '..' : '../..', import.meta.url));
}

/** The command that installs the Python runners' CPU requirements into their virtual environment. */
export const PYTHON_SETUP_COMMAND = 'bash python-runners/setup.sh';

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The interpreter for the Python runner: `FWBENCH_PYTHON`, else python-runners/.venv/bin/python,
 * else `python3` on PATH; or why there is none.
 */
export function pythonInterpreter(env: NodeJS.ProcessEnv = process.env): { path: string } | { missing: string } {
  if (env.FWBENCH_PYTHON) return isExecutable(env.FWBENCH_PYTHON) ? { path: env.FWBENCH_PYTHON } : { missing: `FWBENCH_PYTHON=${env.FWBENCH_PYTHON} is not an executable file` };
  const venv = join(packageRoot(), 'python-runners', '.venv', 'bin', 'python');
  if (isExecutable(venv)) return { path: venv };
  const onPath = (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'python3')).find(isExecutable);
  return onPath ? { path: onPath } : { missing: `no Python interpreter: FWBENCH_PYTHON is unset, ${venv} does not exist and python3 is not on PATH` };
}

/**
 * LD_LIBRARY_PATH for one engine's worker: FWBENCH_LD_LIBRARY_PATH_<ENGINE> (engine id upper-cased,
 * '-' as '_', e.g. FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU) goes in front of it. Each engine runs in
 * its own process, so tfjs-node-gpu's libtensorflow can load CUDA 11 while the others load CUDA 12.
 */
export function engineLibraryEnv(engineId: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const extra = env[`FWBENCH_LD_LIBRARY_PATH_${engineId.toUpperCase().replace(/-/g, '_')}`];
  return extra ? { LD_LIBRARY_PATH: [extra, env.LD_LIBRARY_PATH].filter(Boolean).join(delimiter) } : {};
}

/** Environment that pins every framework's thread pools to the same numbers before it starts. */
export function threadEnv(threads: number): Record<string, string> {
  return {
    OMP_NUM_THREADS: String(threads),
    TF_NUM_INTRAOP_THREADS: String(threads),
    TF_NUM_INTEROP_THREADS: '1',
    TF_CPP_MIN_LOG_LEVEL: '2',
  };
}

/** Everything a worker said, with how it ended. */
export interface WorkerOutcome {
  /** Orchestrator clock: spawn -> hello (ms). */
  spawnMs?: number;
  /** Orchestrator clock: spawn -> parity message (ms). */
  toFirstOutputMs?: number;
  hello?: Extract<FromWorker, { type: 'hello' }>;
  probe?: Extract<FromWorker, { type: 'probe-result' }>;
  peak?: Extract<FromWorker, { type: 'peak-result' }>;
  built?: Extract<FromWorker, { type: 'built' }>;
  parity?: Extract<FromWorker, { type: 'parity' }>;
  samples?: Extract<FromWorker, { type: 'samples' }>;
  memory?: Extract<FromWorker, { type: 'memory' }>;
  error?: Extract<FromWorker, { type: 'error' }>;
  /** Completed the protocol with `done`. */
  done: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Last lines the worker printed on stdout/stderr (framework logs, crashes). */
  logTail: string[];
  /** A protocol violation (unparseable or invalid line). */
  protocolError?: string;
}

/** Options for one worker. */
export interface WorkerOptions {
  /** Kill the worker after this long (ms). */
  timeoutMs: number;
  /** Extra environment (threads). */
  env?: Record<string, string>;
  /** Decides after the parity output whether to time the cell. */
  onParity?: (p: Extract<FromWorker, { type: 'parity' }>) => 'continue' | 'stop';
  /** Called for every protocol message (progress). */
  onMessage?: (m: FromWorker) => void;
}

const LOG_TAIL_LINES = 20;

/** Spawns a Node worker, sends `first`, and follows the protocol to the end. */
export async function runNodeWorker(first: ToWorker, opts: WorkerOptions): Promise<WorkerOutcome> {
  return runWorkerProcess(process.execPath, [nodeWorkerScript()], first, opts);
}

/**
 * Runs the worker of `engine`'s language for one cell or probe: the Node worker, or the Python
 * runner (`python -m fwbench_runner`). Without a Python interpreter the outcome is an
 * `unavailable` error carrying the setup command, as if the runner had said so itself.
 */
export async function runEngineWorker(engine: EngineDescriptor, first: ToWorker, optsIn: WorkerOptions): Promise<WorkerOutcome> {
  const opts = { ...optsIn, env: { ...optsIn.env, ...engineLibraryEnv(engine.id) } };
  if (engine.language === 'node') return runNodeWorker(first, opts);
  const python = pythonInterpreter();
  if ('missing' in python) {
    return { done: false, exitCode: null, signal: null, timedOut: false, logTail: [], error: { type: 'error', phase: 'start', message: python.missing, unavailable: true, fix: PYTHON_SETUP_COMMAND } };
  }
  const runners = join(packageRoot(), 'python-runners');
  const pythonPath = [runners, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return runWorkerProcess(python.path, ['-m', 'fwbench_runner'], first, { ...opts, env: { ...opts.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' } });
}

/** Spawns any protocol-speaking command (Node worker or Python runner). */
export async function runWorkerProcess(file: string, args: string[], first: ToWorker, opts: WorkerOptions): Promise<WorkerOutcome> {
  const out: WorkerOutcome = { done: false, exitCode: null, signal: null, timedOut: false, logTail: [] };
  const t0 = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  const child = execa(file, args, {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    buffer: { stdout: false, stderr: false, fd3: false },
    env: { ...opts.env },
    timeout: opts.timeoutMs,
    forceKillAfterDelay: 2000,
    reject: false,
  });
  const keepTail = (line: string): void => {
    out.logTail.push(line);
    if (out.logTail.length > LOG_TAIL_LINES) out.logTail.shift();
  };
  for (const stream of [child.stdout, child.stderr]) readline.createInterface({ input: stream }).on('line', keepTail);
  const channel = child.stdio[3] as unknown as NodeJS.ReadWriteStream;
  channel.on('error', () => undefined); // a dead worker closes the socket; the exit status says why
  const write = (m: ToWorker): void => {
    channel.write(`${JSON.stringify(m)}\n`);
  };
  write(first);
  const reader = readline.createInterface({ input: channel });
  for await (const line of reader) {
    let msg: FromWorker;
    try {
      msg = FromWorkerSchema.parse(JSON.parse(line));
    } catch (e) {
      out.protocolError = `invalid protocol line ${JSON.stringify(line.slice(0, 200))}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
      child.kill();
      break;
    }
    opts.onMessage?.(msg);
    switch (msg.type) {
      case 'hello':
        out.hello = msg;
        out.spawnMs = ms();
        break;
      case 'probe-result':
        out.probe = msg;
        break;
      case 'peak-result':
        out.peak = msg;
        break;
      case 'built':
        out.built = msg;
        break;
      case 'parity':
        out.parity = msg;
        out.toFirstOutputMs = ms();
        write({ type: opts.onParity ? opts.onParity(msg) : 'stop' });
        break;
      case 'samples':
        out.samples = msg;
        break;
      case 'memory':
        out.memory = msg;
        break;
      case 'error':
        out.error = msg;
        break;
      case 'done':
        out.done = true;
        break;
    }
    if (msg.type === 'done' || msg.type === 'error') break;
  }
  const result = await child;
  out.exitCode = result.exitCode ?? null;
  out.signal = result.signal ?? null;
  out.timedOut = result.timedOut;
  return out;
}

/** One line describing why a worker did not finish, for a failed cell's reason. */
export function describeFailure(o: WorkerOutcome): string {
  if (o.timedOut) return `worker timed out and was killed`;
  if (o.error) return o.error.message.split('\n')[0]!;
  if (o.protocolError) return o.protocolError;
  if (o.signal) return `worker killed by ${o.signal}`;
  if (o.exitCode !== 0) return `worker exited with code ${o.exitCode} before finishing`;
  return 'worker ended without completing the protocol';
}

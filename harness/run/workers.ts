import { execa } from 'execa';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EngineDescriptor } from '../engines/types.js';
import { isOutOfMemoryText } from './failure.js';
import type { ParityMessage, WorkerOutcome } from './outcome.js';
import { FromWorkerSchema, type FromWorker, type ToWorker } from '../worker/protocol.js';

/**
 * Runs one worker process for one cell (or one probe) and collects its protocol messages.
 * The orchestrator never loads a framework itself: memory is per cell and a crash costs one cell.
 */

/** Path of the compiled Node worker (tests run from source, workers always run compiled). */
export function nodeWorkerScript(): string {
  const here = new URL('.', import.meta.url);
  const compiled = import.meta.url.endsWith('.ts') ? new URL('../../dist/harness/worker/node-worker.js', here) : new URL('../worker/node-worker.js', here);
  const path = fileURLToPath(compiled);
  if (!existsSync(path)) throw new Error(`worker ${path} is missing: run 'npm run build' (npm ci does it)`);
  return path;
}

/** The package root (where python-runners/ lives), from source (tests) or from dist/. */
export function packageRoot(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../..' : '../../..', import.meta.url));
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
  if (env.FWBENCH_PYTHON)
    return isExecutable(env.FWBENCH_PYTHON) ? { path: env.FWBENCH_PYTHON } : { missing: `FWBENCH_PYTHON=${env.FWBENCH_PYTHON} is not an executable file` };
  const venv = join(packageRoot(), 'python-runners', '.venv', 'bin', 'python');
  if (isExecutable(venv)) return { path: venv };
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'python3'))
    .find(isExecutable);
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

/** Options for one worker. */
export interface WorkerOptions {
  /** Kill the worker (its whole process group) after this long (ms). */
  timeoutMs: number;
  /** Extra environment (threads). */
  env?: Record<string, string>;
  /** Cap on the worker's private memory (MiB): RLIMIT_DATA through prlimit, and V8's heap limit for Node workers. */
  maxMemoryMb?: number;
  /** Decides after the parity output whether to time the cell. */
  onParity?: (p: ParityMessage) => 'continue' | 'stop';
  /** Called for every protocol message (progress). */
  onMessage?: (m: FromWorker) => void;
}

const LOG_TAIL_LINES = 20;

/** Spawns a Node worker, sends `first`, and follows the protocol to the end. */
export async function runNodeWorker(first: ToWorker, opts: WorkerOptions): Promise<WorkerOutcome> {
  // V8's own heap limit makes a JavaScript-heap exhaustion a clean "heap out of memory" abort.
  const heap = opts.maxMemoryMb ? [`--max-old-space-size=${opts.maxMemoryMb}`] : [];
  return runWorkerProcess(process.execPath, [...heap, nodeWorkerScript()], first, opts);
}

/**
 * Runs a worker with a temp folder of its own (TMPDIR), removed when it ends: frameworks leave
 * files in the temp folder — ONNX Runtime's telemetry an empty mat-debug-<pid>.log in every
 * process that loads it, TensorFlow's autograph a generated source file per tf.function — and a
 * run must leave nothing there. (torch.compile's cache lives there too, so each process compiles
 * from a cold cache, as its cold start says.)
 */
async function withOwnTmp(opts: WorkerOptions, run: (opts: WorkerOptions) => Promise<WorkerOutcome>): Promise<WorkerOutcome> {
  const tmp = mkdtempSync(join(tmpdir(), 'fwbench-worker-'));
  try {
    return await run({ ...opts, env: { ...opts.env, TMPDIR: tmp } });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Runs the worker of `engine`'s language for one cell or probe: the Node worker, or the Python
 * runner (`python -m fwbench_runner`). Without a Python interpreter the outcome is an
 * `unavailable` error carrying the setup command, as if the runner had said so itself.
 */
export async function runEngineWorker(engine: EngineDescriptor, first: ToWorker, optsIn: WorkerOptions): Promise<WorkerOutcome> {
  const opts = { ...optsIn, env: { ...optsIn.env, ...engineLibraryEnv(engine.id) } };
  if (engine.language === 'node') return withOwnTmp(opts, (o) => runNodeWorker(first, o));
  const python = pythonInterpreter();
  if ('missing' in python) {
    return {
      done: false,
      exitCode: null,
      signal: null,
      timedOut: false,
      logTail: [],
      error: { type: 'error', phase: 'start', message: python.missing, unavailable: true, fix: PYTHON_SETUP_COMMAND },
    };
  }
  const runners = join(packageRoot(), 'python-runners');
  const pythonPath = [runners, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  return withOwnTmp(opts, (o) =>
    runWorkerProcess(python.path, ['-m', 'fwbench_runner'], first, { ...o, env: { ...o.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' } }),
  );
}

/** util-linux prlimit, which applies --max-memory-mb to a worker before it starts; undefined when absent. */
export function prlimitPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'prlimit'))
    .find(isExecutable);
}

/** How many processes the kernel's OOM killer has killed in this memory cgroup (v2 or v1), when the kernel says. */
export function oomKillCount(): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.events', '/sys/fs/cgroup/memory/memory.oom_control']) {
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
      if (m) return Number(m[1]);
    } catch {
      // not this cgroup version
    }
  }
  return undefined;
}

/** Workers alive now (each leads its own process group), so an interrupted run can stop them all. */
const liveWorkers = new Set<number>();
let stopRequested = false;
const GRACE_MS = 2000;

/** Sends `signal` to a worker's whole process group (its framework's helper processes included). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM to the group, SIGKILL after a grace period if it is still there. */
function terminateGroup(pid: number): void {
  signalGroup(pid, 'SIGTERM');
  setTimeout(() => liveWorkers.has(pid) && signalGroup(pid, 'SIGKILL'), GRACE_MS).unref();
}

/** Stops every running worker (SIGINT/SIGTERM of the orchestrator; `now`: SIGKILL at once) and refuses to start new ones; their outcomes say `interrupted`. */
export function stopAllWorkers(now = false): void {
  stopRequested = true;
  for (const pid of liveWorkers) {
    if (now) signalGroup(pid, 'SIGKILL');
    else terminateGroup(pid);
  }
}

/** How long a worker under --max-memory-mb may take to say hello (a normal start takes a few seconds). */
const CAPPED_START_MS = 60_000;

/** Spawns any protocol-speaking command (Node worker or Python runner). */
export async function runWorkerProcess(file: string, args: string[], first: ToWorker, opts: WorkerOptions): Promise<WorkerOutcome> {
  const out: WorkerOutcome = { done: false, exitCode: null, signal: null, timedOut: false, timeoutMs: opts.timeoutMs, logTail: [], phase: 'start' };
  if (stopRequested) return { ...out, interrupted: true };
  let command = file;
  let commandArgs = args;
  if (opts.maxMemoryMb) {
    const prlimit = prlimitPath();
    if (!prlimit) throw new Error('--max-memory-mb needs prlimit (util-linux), which is not on PATH');
    // RLIMIT_DATA (private writable memory: heaps, anonymous mmaps) rather than RLIMIT_AS: V8
    // and WebAssembly reserve far more address space than they ever use.
    command = prlimit;
    commandArgs = [`--data=${opts.maxMemoryMb * 2 ** 20}`, '--', file, ...args];
  }
  const oomBefore = oomKillCount();
  const t0 = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  const child = execa(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    buffer: { stdout: false, stderr: false, fd3: false },
    env: { ...opts.env, ...(opts.maxMemoryMb ? { FWBENCH_MAX_MEMORY_MB: String(opts.maxMemoryMb) } : {}) },
    // Its own process group: a terminal's Ctrl-C reaches only the orchestrator, which then stops
    // the worker and everything it started, and never records that as a failed cell.
    detached: true,
    reject: false,
  });
  const pid = child.pid;
  if (pid !== undefined) liveWorkers.add(pid);
  const timer = setTimeout(() => {
    out.timedOut = true;
    if (pid !== undefined) terminateGroup(pid);
  }, opts.timeoutMs);
  // A runtime given too little memory to start may hang instead of dying (Node does): under a cap,
  // a worker that has not said hello by then is stopped, and the cap is named as the cause.
  const startTimer = opts.maxMemoryMb
    ? setTimeout(() => {
        if (!out.hello && pid !== undefined) terminateGroup(pid);
      }, CAPPED_START_MS)
    : undefined;
  if (opts.maxMemoryMb) out.memoryCapMb = opts.maxMemoryMb;
  const keepTail = (line: string): void => {
    if (out.outOfMemoryLine === undefined && isOutOfMemoryText(line)) out.outOfMemoryLine = line.trim().slice(0, 200);
    out.logTail.push(line);
    if (out.logTail.length > LOG_TAIL_LINES) out.logTail.shift();
  };
  for (const stream of [child.stdout, child.stderr]) readline.createInterface({ input: stream }).on('line', keepTail);
  const channel = child.stdio[3] as unknown as NodeJS.ReadWriteStream;
  channel.on('error', () => undefined); // a dead worker closes the socket; the exit status says why
  // Registered before readline's own 'end' handler, which hands on an unterminated last line.
  let channelEnded = false;
  channel.on('end', () => {
    channelEnded = true;
  });
  const write = (m: ToWorker): void => {
    channel.write(`${JSON.stringify(m)}\n`);
  };
  write(first);
  const reader = readline.createInterface({ input: channel });
  try {
    for await (const line of reader) if (handle(line)) break;
  } catch {
    // The socket broke (a killed worker resets it): the exit status says why.
  }
  const result = await child;
  clearTimeout(timer);
  clearTimeout(startTimer);
  if (pid !== undefined) liveWorkers.delete(pid);
  out.exitCode = result.exitCode ?? null;
  out.signal = result.signal ?? null;
  if (stopRequested && !out.done) out.interrupted = true;
  const oomAfter = oomKillCount();
  if (oomBefore !== undefined && oomAfter !== undefined && oomAfter > oomBefore) out.oomKillSeen = true;
  return out;

  /** Takes one protocol line; true when the conversation is over. */
  function handle(line: string): boolean {
    let msg: FromWorker;
    try {
      msg = FromWorkerSchema.parse(JSON.parse(line));
    } catch (e) {
      out.protocolError = `invalid protocol line ${JSON.stringify(line.slice(0, 80))} (${e instanceof Error ? e.message.split('\n')[0]!.slice(0, 120) : String(e)})`;
      // A line cut off by the worker's end (a large parity line while it dies of out-of-memory)
      // is not a live worker talking nonsense: there is nothing left to stop.
      if (channelEnded) out.protocolCutOff = true;
      else if (pid !== undefined) terminateGroup(pid);
      return true;
    }
    opts.onMessage?.(msg);
    switch (msg.type) {
      case 'hello':
        out.hello = msg;
        out.spawnMs = ms();
        break;
      case 'phase':
        out.phase = msg.phase;
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
      case 'train-parity':
      case 'stream-parity':
      case 'generate-parity':
        out.parity = msg;
        out.toFirstOutputMs = ms();
        write({ type: opts.onParity ? opts.onParity(msg) : 'stop' });
        break;
      case 'samples':
        out.samples = msg;
        break;
      case 'passes':
        out.passes = msg;
        break;
      case 'memory':
        out.memory = msg;
        break;
      case 'error':
        out.error = msg;
        out.phase = msg.phase;
        break;
      case 'done':
        out.done = true;
        break;
    }
    return msg.type === 'done' || msg.type === 'error';
  }
}

import type { WorkerOutcome } from './outcome.js';

/**
 * Why a worker did not finish, as a cause and one line for the cell's reason: the phase it was
 * in, the exit code or signal, and the last line it printed. Out-of-memory is recognised from
 * every framework's own words (host and CUDA), V8's heap abort and the kernel's OOM killer.
 */
export const FAILURE_CAUSES = ['out-of-memory', 'timeout', 'signal', 'exit-code', 'protocol', 'exception', 'interrupted', 'reference'] as const;
/** What made a cell fail. */
export type FailureCause = (typeof FAILURE_CAUSES)[number];

/**
 * The messages of memory exhaustion: Python's MemoryError; PyTorch's CPU allocator and
 * torch.cuda.OutOfMemoryError ("CUDA out of memory"); TensorFlow's ResourceExhaustedError ("OOM
 * when allocating"); ONNX Runtime's allocation failure and CUDA error 2; V8's heap and
 * ArrayBuffer limits; WebAssembly memory growth; C++ bad_alloc.
 */
const OOM_PATTERNS = [
  /\bMemoryError\b/,
  /OutOfMemoryError/,
  /out of memory/i,
  /ResourceExhaustedError/,
  /\bOOM when allocating\b/,
  /can't allocate memory/i,
  /Cannot allocate memory/,
  /Failed to allocate memory/i,
  /Reached heap limit/,
  /Array buffer allocation failed/,
  /WebAssembly\.Memory.*(grow|allocate)/i,
  /Aborted\(OOM\)/,
  /std::bad_alloc/,
];

/** True when `text` is a framework's or runtime's out-of-memory message. */
export const isOutOfMemoryText = (text: string): boolean => OOM_PATTERNS.some((p) => p.test(text));

const lastLine = (lines: string[]): string | undefined =>
  [...lines]
    .reverse()
    .find((l) => l.trim() !== '')
    ?.trim()
    .slice(0, 200);

/** The cause and one-line reason of a worker that did not complete the protocol (or sent an error). */
export function classifyFailure(o: WorkerOutcome): { cause: FailureCause; reason: string } {
  const phase = `in phase ${o.error?.phase ?? o.phase ?? 'start'}`;
  const status = o.signal ? `killed by ${o.signal}` : o.exitCode !== null && o.exitCode !== 0 ? `exit code ${o.exitCode}` : undefined;
  const output = lastLine(o.logTail);
  const tail = output ? `; last output: ${output}` : '';
  if (o.interrupted) return { cause: 'interrupted', reason: `stopped ${phase}: the run was interrupted` };
  if (o.memoryCapMb !== undefined && !o.hello && !o.timedOut) {
    return {
      cause: 'out-of-memory',
      reason: `the worker could not start under --max-memory-mb ${o.memoryCapMb}: too little memory for the runtime itself (${status ?? 'it hung and was stopped'}${tail}); raise --max-memory-mb`,
    };
  }
  if (o.timedOut) return { cause: 'timeout', reason: `timed out after ${(o.timeoutMs ?? 0) / 1000} s ${phase}; the worker's process group was killed${tail}` };
  const message = o.error?.message.split('\n')[0];
  // runWorkerProcess keeps the first out-of-memory line of all the worker printed, tail or not.
  const oomLine = o.outOfMemoryLine;
  if ((message && isOutOfMemoryText(message)) || (!message && oomLine)) {
    return { cause: 'out-of-memory', reason: `out of memory ${phase}${status ? ` (${status})` : ''}: ${message ?? oomLine!}` };
  }
  if (o.signal === 'SIGKILL' && o.oomKillSeen)
    return {
      cause: 'out-of-memory',
      reason: `out of memory ${phase}: killed by SIGKILL while the kernel's OOM killer fired (memory cgroup oom_kill count rose)${tail}`,
    };
  if (message) return { cause: 'exception', reason: `${message} (${phase})` };
  if (o.protocolError && !o.protocolCutOff) return { cause: 'protocol', reason: `${o.protocolError} ${phase}; the worker was stopped` };
  // A worker that died mid-message: its death is the cause, the cut-off line a consequence.
  const cut = o.protocolCutOff ? '; its last protocol line was cut off' : '';
  if (status) return { cause: o.signal ? 'signal' : 'exit-code', reason: `worker ${status} ${phase}${cut}${tail}` };
  if (o.protocolError) return { cause: 'protocol', reason: `${o.protocolError} ${phase}, then the worker exited` };
  return { cause: 'protocol', reason: `worker ended without completing the protocol ${phase}${tail}` };
}

/** One line describing why a worker did not finish, for a failed cell's or engine's reason. */
export function describeFailure(o: WorkerOutcome): string {
  return classifyFailure(o).reason;
}

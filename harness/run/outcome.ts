import { medianCi } from '../worker/measure.js';
import type { FromWorker, Phase } from '../worker/protocol.js';

/**
 * What one worker process said and how it ended: written by the worker runner (workers.ts), read
 * by the failure classifier (failure.ts) and the cell records (record.ts).
 */

/** A worker's first output, checked before anything is timed: logits (inference), parity steps (training) or a stream's cold pass. */
export type ParityMessage = Extract<FromWorker, { type: 'parity' | 'train-parity' | 'stream-parity' | 'generate-parity' }>;

/** Everything a worker said, with how it ended. */
export interface WorkerOutcome {
  /** --max-memory-mb the worker ran under (MiB), when capped. */
  memoryCapMb?: number;
  /** Orchestrator clock: spawn -> hello (ms). */
  spawnMs?: number;
  /** Orchestrator clock: spawn -> parity message (ms). */
  toFirstOutputMs?: number;
  hello?: Extract<FromWorker, { type: 'hello' }>;
  probe?: Extract<FromWorker, { type: 'probe-result' }>;
  peak?: Extract<FromWorker, { type: 'peak-result' }>;
  built?: Extract<FromWorker, { type: 'built' }>;
  /** The first output: an inference cell's logits, or a training cell's parity steps. */
  parity?: ParityMessage;
  samples?: Extract<FromWorker, { type: 'samples' }>;
  /** A stream cell's warm passes, or a generation cell's warm generations. */
  passes?: Extract<FromWorker, { type: 'passes' }>;
  /** A stream cell's fixed-shape baseline (its `samples` message), once passesOutcome below has made `samples` the passes' totals. */
  fixedSamples?: Extract<FromWorker, { type: 'samples' }>;
  memory?: Extract<FromWorker, { type: 'memory' }>;
  error?: Extract<FromWorker, { type: 'error' }>;
  /** The last phase the worker announced (`start` until it says otherwise). */
  phase?: Phase;
  /** Completed the protocol with `done`. */
  done: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The time limit it ran under (ms). */
  timeoutMs?: number;
  /** Stopped by the orchestrator because the run was interrupted (SIGINT/SIGTERM): not a result. */
  interrupted?: boolean;
  /** The kernel's OOM-killer count (memory cgroup) rose while this worker ran. */
  oomKillSeen?: boolean;
  /** Last lines the worker printed on stdout/stderr (framework logs, crashes). */
  logTail: string[];
  /** A protocol violation (unparseable or invalid line). */
  protocolError?: string;
  /**
   * The invalid line was the channel's last, cut off when the worker's end closed (it died or
   * exited mid-message): how it ended says why, not the cut-off line.
   */
  protocolCutOff?: boolean;
  /**
   * The first out-of-memory message in anything the worker printed, kept even when a long native
   * stack trace after it scrolls it out of `logTail`.
   */
  outOfMemoryLine?: string;
}

/**
 * How the outcome of a worker that made warm passes is recorded: a stream cell (passes over its
 * batches) or a generation cell (warm generations). Its `samples` become the passes' totals (one
 * sample = one pass over the whole stream, or one whole generation, with the 95 % interval of their
 * median), so statistics, contention, replicates and reports treat it like any other cell; a
 * stream cell's fixed-shape baseline (its own timed loop) is kept as `fixedSamples`. Outcomes of
 * other cells are returned as they are.
 */
export function passesOutcome(o: WorkerOutcome, targetInterval: number, maxPasses: number): WorkerOutcome {
  const ps = o.passes;
  const kind = o.parity?.type;
  if ((kind !== 'stream-parity' && kind !== 'generate-parity') || !ps || ps.passesNs.length === 0) return o;
  // A stream cell without its baseline's samples did not finish: it stays as it is, to be classified.
  if (kind === 'stream-parity' && !o.samples) return o;
  const totals = ps.passesNs.map((p) => p.reduce((a, b) => a + b, 0));
  const iv = medianCi(totals);
  const reached = targetInterval > 0 && iv.halfWidthPct <= targetInterval * 100;
  return {
    ...o,
    ...(o.samples ? { fixedSamples: o.samples } : {}),
    samples: {
      type: 'samples',
      warmupNs: [],
      samplesNs: totals,
      stopReason: reached ? 'target-interval' : ps.passesNs.length >= maxPasses ? 'max-samples' : 'max-time',
      warmupStopReason: 'stable',
      interval: iv,
      clockResolutionNs: o.samples?.clockResolutionNs ?? 0,
      ...(ps.load ? { load: ps.load } : {}),
    },
  };
}

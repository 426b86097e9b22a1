import { setTimeout as sleep } from 'node:timers/promises';
import { busyCores, readStat } from '../worker/load.js';
import type { Load } from '../worker/protocol.js';

/**
 * When a replicate's timing cannot be trusted because the machine was busy (docs/methodology.md,
 * "Busy machines"). Two rules, either one marks the replicate `contended`:
 *
 * 1. CPU: during its timed loop the machine was saturated (its busy cores, from /proc/stat, within
 *    SATURATED_SLACK of all cores) while other processes used more than OTHERS_MIN_CORES cores
 *    (the machine's busy cores less the worker's own CPU time over wall time), plus two ticks of
 *    /proc/stat's 10 ms resolution spread over the loop, and the worker got less CPU than its
 *    thread count (a 1-thread worker beside a busy process on 2 cores had its core); or the
 *    hypervisor stole more than
 *    STEAL_MIN_FRACTION of the cores (with the same slack). A machine with idle cores left is not contended: the worker
 *    could have had them.
 * 2. Timing: with other replicates of the cell, its median is more than OUTLIER_RATIO times theirs
 *    (the median of their medians) and its 95 % interval lies wholly above all of theirs. Only
 *    the slow side: a neighbour cannot make a framework faster.
 */

/** Cores other processes may use on a saturated machine before a loop counts as contended. */
export const OTHERS_MIN_CORES = 0.25;
/** A machine within this many cores of all busy is saturated. */
export const SATURATED_SLACK = 0.25;
/** Steal above this fraction of the cores marks a loop contended (a VM whose host is busy). */
export const STEAL_MIN_FRACTION = 0.1;
/** A replicate this many times slower than the others' median, with a disjoint interval, is contended. */
export const OUTLIER_RATIO = 1.5;
/** /proc/stat counts in ticks of 10 ms: two ticks of slack per loop. */
const TICK_SLACK_MS = 20;
/** How many more replicate processes a cell gets, by default, to replace contended ones (`--rerun-contended`). */
export const DEFAULT_CONTENDED_RERUNS = 2;

/** What other processes did during one timed loop, derived from its load figures. */
export interface LoadVerdict {
  /** Cores used by other processes (and stolen), averaged over the loop. */
  othersCores: number;
  /** Why the loop was contended, or undefined when it was not (or the machine figures are missing). */
  reason?: string;
}

const fmt = (x: number): string => x.toFixed(2);

/** Rule 1 for one timed loop of a worker running `threads` intra-op threads. */
export function judgeLoad(load: Load | undefined, threads = Infinity): LoadVerdict | undefined {
  if (!load?.machine || load.wallMs <= 0) return undefined;
  const { cores, busyCores, stealCores } = load.machine;
  const own = load.ownCpuMs / load.wallMs;
  const othersCores = Math.max(0, busyCores - own);
  const verdict: LoadVerdict = { othersCores };
  // Two ticks of slack, spread over the loop, for both figures: /proc/stat counts them in ticks.
  const slack = (TICK_SLACK_MS / load.wallMs) * cores;
  const limit = OTHERS_MIN_CORES + slack;
  if (stealCores > STEAL_MIN_FRACTION * cores + slack) verdict.reason = `the hypervisor stole ${fmt(stealCores)} of ${cores} cores during the timed loop`;
  // A worker that had the cores it runs threads on was not held back, whoever used the rest.
  else if (busyCores >= cores - SATURATED_SLACK && othersCores > limit && own < Math.min(threads, cores) - limit)
    verdict.reason = `other processes used ${fmt(othersCores)} of ${cores} cores while the machine was saturated (${fmt(busyCores)} busy; this worker ${fmt(own)})`;
  return verdict;
}

/** The timing figures rule 2 compares. */
export interface ReplicateTiming {
  medianMs: number;
  interval?: { loMs: number; hiMs: number };
}

/** Rule 2: why replicate `i` is a slow outlier among `all`, or undefined. Needs at least one other replicate. */
export function slowOutlier(all: readonly ReplicateTiming[], i: number): string | undefined {
  const me = all[i];
  const others = all.filter((_, j) => j !== i);
  if (!me || others.length === 0) return undefined;
  const sorted = others.map((r) => r.medianMs).sort((a, b) => a - b);
  const mid = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  const disjoint = others.every((r) => (me.interval?.loMs ?? me.medianMs) > (r.interval?.hiMs ?? r.medianMs));
  if (mid > 0 && me.medianMs > OUTLIER_RATIO * mid && disjoint)
    return `its median ${fmt(me.medianMs)} ms is ${fmt(me.medianMs / mid)}x the other replicates' ${fmt(mid)} ms, with disjoint intervals`;
  return undefined;
}

/** `--wait-idle` without a value: wait at most this long for a quiet machine. */
export const DEFAULT_WAIT_IDLE_S = 300;
/** A machine is quiet when other processes keep fewer cores than this busy for QUIET_SECONDS in a row. */
export const QUIET_MAX_CORES = 0.25;
const QUIET_SECONDS = 3;

/**
 * `fwbench run --wait-idle`: waits, before the first cell, until the machine has been quiet (busy
 * cores below QUIET_MAX_CORES, from /proc/stat once a second) for QUIET_SECONDS in a row, or
 * `maxSeconds` passed. `note` gets a line when it starts waiting and when it ends. Returns whether
 * the machine was quiet; false also where /proc/stat cannot be read (then it does not wait).
 */
export async function waitForQuiet(maxSeconds: number, note: (text: string) => void, signal?: AbortSignal): Promise<boolean> {
  const read = readStat;
  let prev = read();
  if (!prev) {
    note('--wait-idle: /proc/stat is not readable here, so quiet cannot be told: starting now');
    return false;
  }
  const deadline = Date.now() + maxSeconds * 1000;
  let quietFor = 0;
  let busy = 0;
  let announced = false;
  while (!signal?.aborted) {
    await sleep(1000);
    const now = read();
    if (!now) return false;
    busy = busyCores(prev, now, now.cores);
    prev = now;
    quietFor = busy < QUIET_MAX_CORES ? quietFor + 1 : 0;
    if (quietFor >= QUIET_SECONDS) {
      if (announced) note(`--wait-idle: the machine is quiet (${fmt(busy)} of ${now.cores} cores busy): starting`);
      return true;
    }
    if (!announced) {
      note(
        `--wait-idle: ${fmt(busy)} of ${now.cores} cores are busy; waiting up to ${maxSeconds} s for a quiet machine (below ${QUIET_MAX_CORES} for ${QUIET_SECONDS} s)`,
      );
      announced = true;
    }
    if (Date.now() >= deadline) {
      note(`--wait-idle: still ${fmt(busy)} of ${now.cores} cores busy after ${maxSeconds} s: starting anyway; contended replicates will be re-run or marked`);
      return false;
    }
  }
  return false;
}

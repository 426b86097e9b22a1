import { readFileSync } from 'node:fs';
import type { Load } from './protocol.js';

/**
 * What the machine did while a timed loop ran, read the same way by the Node worker and the Python
 * runner (python-runners/fwbench_runner/load.py): the worker's own CPU time (user + sys, every
 * thread, from getrusage), its involuntary context switches, and, from /proc/stat, how many cores
 * the whole machine kept busy and how much was stolen by the hypervisor. The orchestrator subtracts
 * the worker's own share to get what other processes used (harness/run/contention.ts judges it):
 * a framework that spin-waits (PyTorch's OpenMP, ONNX Runtime's pool) loses far more than the CPU
 * a neighbour takes, so a busy neighbour must be seen, not averaged away.
 */

/** One /proc/stat `cpu` line: busy and total ticks of all cores together, steal ticks, and the core count (`cpuN` lines). */
export interface ProcStat {
  busy: number;
  total: number;
  steal: number;
  cores: number;
}

/** Parses /proc/stat's aggregate `cpu` line (user nice system idle iowait irq softirq steal ...); idle and iowait are not busy. */
export function parseProcStat(text: string): ProcStat | undefined {
  const lines = text.split('\n');
  const line = lines.find((l) => /^cpu\s/.test(l));
  if (!line) return undefined;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total, steal: v[7] ?? 0, cores: lines.filter((l) => /^cpu\d+\s/.test(l)).length };
}

/** Average cores kept busy between two /proc/stat readings (of `cores` cores), e.g. 1.6 of 2. */
export function busyCores(before: Pick<ProcStat, 'busy' | 'total'>, after: Pick<ProcStat, 'busy' | 'total'>, cores: number): number {
  const dt = after.total - before.total;
  return dt > 0 ? ((after.busy - before.busy) / dt) * cores : 0;
}

/** Load figures of one timed loop, as the `samples` message carries them. */
export type TimedLoopLoad = Load;

interface Snapshot {
  wallNs: bigint;
  usage: NodeJS.ResourceUsage;
  stat: ProcStat | undefined;
}

/** This machine's /proc/stat, parsed; undefined where it cannot be read. */
export function readStat(): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Starts watching: call the returned function when the loop ends to get its figures. */
export function watchLoad(): () => TimedLoopLoad {
  const a: Snapshot = { stat: readStat(), usage: process.resourceUsage(), wallNs: process.hrtime.bigint() };
  return () => {
    const wallNs = process.hrtime.bigint();
    const usage = process.resourceUsage();
    const stat = readStat();
    const wallMs = Number(wallNs - a.wallNs) / 1e6;
    const ownCpuMs = (usage.userCPUTime + usage.systemCPUTime - a.usage.userCPUTime - a.usage.systemCPUTime) / 1000;
    const load: TimedLoopLoad = { wallMs, ownCpuMs, involuntarySwitches: usage.involuntaryContextSwitches - a.usage.involuntaryContextSwitches };
    if (a.stat && stat && stat.total > a.stat.total && stat.cores > 0) {
      const dt = stat.total - a.stat.total;
      load.machine = { cores: stat.cores, busyCores: busyCores(a.stat, stat, stat.cores), stealCores: ((stat.steal - a.stat.steal) / dt) * stat.cores };
    }
    return load;
  };
}

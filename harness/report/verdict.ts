import { classifyRatio, MIN_SAMPLES_FOR_CI, type Interval } from '../stats/bootstrap.js';
import { cellRatioInterval, engineMode, num, workloadLabel, type CellView, type RunModel, type WorkloadSection } from './model.js';

/**
 * The answer to the question a run is made for — which engine and mode is fastest here, by how
 * much, how sure, which uses the least memory and starts fastest, and what failed — in words,
 * once per workload and batch size. The end of `fwbench run` prints it and the HTML and Markdown
 * reports open with it, from this one function, so the two never disagree.
 */

/** The noise threshold (percent) below which a difference is "no significant difference", as in `report` and `compare`. */
export const DEFAULT_THRESHOLD_PCT = 5;

/** How the fastest cell compares with the next fastest. */
export interface RunnerUp {
  who: string;
  medianMs: number;
  /** Next median / fastest median (the table's medians). */
  ratio: number;
  /** 95 % bootstrap interval of that ratio; absent when a side has too few samples. */
  interval?: Interval & { by: 'replicates' | 'samples' };
  /** Whether the whole interval lies beyond the noise threshold. */
  significant: boolean;
}

/** The answer for one workload and batch size (on one host, device and thread count). */
export interface GroupAnswer {
  /** `cnn/resnet18, batch 8` (with threads or host where the run has several). */
  title: string;
  /** Ok cells compared. */
  compared: number;
  fastest?: { who: string; medianMs: number };
  next?: RunnerUp;
  leastMemory?: { who: string; peakHostMiB: number; nextWho?: string; nextPeakHostMiB?: number };
  fastestColdStart?: { who: string; totalMs: number };
  parityFailed: Array<{ who: string; relL2: number | null; tolerance: number }>;
  failed: Array<{ who: string; reason: string }>;
  /** Cells whose every replicate was contended (a busy machine): no timing, so no verdict from them. */
  unstable: string[];
}

const byMetric = (views: CellView[], metric: (v: CellView) => number | undefined): Array<{ v: CellView; x: number }> =>
  views
    .flatMap((v) => {
      const x = metric(v);
      return x === undefined || !Number.isFinite(x) ? [] : [{ v, x }];
    })
    .sort((a, b) => a.x - b.x);

function groupTitle(s: WorkloadSection, batchSize: number, multiHost: boolean): string {
  return `${workloadLabel(s)}, batch ${batchSize}${s.threadSweep ? `, ${s.threads} threads` : ''}${s.device !== 'cpu' ? ` on ${s.device}` : ''}${multiHost ? ` (${s.host})` : ''}`;
}

/** The answers of a run, in the report's order (workload sections, then batch sizes). */
export function runAnswers(model: RunModel, thresholdPct = DEFAULT_THRESHOLD_PCT): GroupAnswer[] {
  const multiHost = model.hosts.length > 1;
  return model.sections.flatMap((s) =>
    s.groups.map((g) => {
      const ok = g.cells.filter((v) => v.cell.status === 'ok' && v.cell.stats);
      const speed = byMetric(ok, (v) => v.cell.stats?.medianMs);
      const memory = byMetric(ok, (v) => (v.cell.memory ? v.cell.memory.peakHostBytes / 2 ** 20 : undefined));
      const cold = byMetric(ok, (v) => v.cell.coldStart?.totalMs);
      const answer: GroupAnswer = {
        title: groupTitle(s, g.batchSize, multiHost),
        compared: ok.length,
        parityFailed: g.cells
          .filter((v) => v.cell.status === 'parity-failed')
          .map((v) => ({ who: engineMode(v.cell), relL2: v.cell.parity?.relL2 ?? null, tolerance: v.cell.parity?.tolerance ?? 0 })),
        failed: g.cells.filter((v) => v.cell.status === 'failed').map((v) => ({ who: engineMode(v.cell), reason: v.cell.reason ?? 'failed' })),
        unstable: g.cells.filter((v) => v.cell.status === 'unstable').map((v) => engineMode(v.cell)),
      };
      const [first, second] = speed;
      if (first) answer.fastest = { who: engineMode(first.v.cell), medianMs: first.x };
      if (first && second) {
        const enough = (v: CellView): boolean => (v.cell.samplesMs?.length ?? 0) >= MIN_SAMPLES_FOR_CI;
        const interval = enough(first.v) && enough(second.v) ? cellRatioInterval(second.v.cell, first.v.cell) : undefined;
        answer.next = {
          who: engineMode(second.v.cell),
          medianMs: second.x,
          ratio: second.x / first.x,
          ...(interval ? { interval } : {}),
          significant: interval !== undefined && classifyRatio(interval, thresholdPct / 100) === 'higher',
        };
      }
      if (memory[0])
        answer.leastMemory = {
          who: engineMode(memory[0].v.cell),
          peakHostMiB: memory[0].x,
          ...(memory[1] ? { nextWho: engineMode(memory[1].v.cell), nextPeakHostMiB: memory[1].x } : {}),
        };
      if (cold[0]) answer.fastestColdStart = { who: engineMode(cold[0].v.cell), totalMs: cold[0].x };
      return answer;
    }),
  );
}

const ms = (v: number): string => (v >= 1000 ? `${num(v / 1000)} s` : `${num(v)} ms`);

/** One answer as sentences (plain text: the terminal prints it, the reports escape it). */
export function answerText(a: GroupAnswer, thresholdPct = DEFAULT_THRESHOLD_PCT): string {
  const parts: string[] = [];
  if (!a.fastest) parts.push('no engine produced a timing');
  else if (!a.next) parts.push(`only ${a.fastest.who} produced a timing (${ms(a.fastest.medianMs)})`);
  else {
    const n = a.next;
    const fastest = `fastest ${a.fastest.who} ${ms(a.fastest.medianMs)}`;
    if (!n.interval)
      parts.push(
        `${fastest}, ${num(n.ratio)}x faster than the next, ${n.who} ${ms(n.medianMs)} (no interval: fewer than ${MIN_SAMPLES_FOR_CI} samples on a side; a longer --max-time gives more)`,
      );
    else {
      const iv = `95 % interval ${num(n.interval.lo)}-${num(n.interval.hi)}x${n.interval.by === 'samples' ? ', within-process' : ''}`;
      parts.push(
        n.significant
          ? `${fastest}, ${num(n.ratio)}x faster than the next, ${n.who} ${ms(n.medianMs)} (${iv})`
          : `${fastest}, not told apart from ${n.who} ${ms(n.medianMs)}: ratio ${num(n.ratio)}x (${iv}) is not beyond the ${thresholdPct} % noise threshold`,
      );
    }
  }
  if (a.leastMemory)
    parts.push(
      `least memory ${a.leastMemory.who} (${num(a.leastMemory.peakHostMiB)} MiB peak${a.leastMemory.nextWho ? `; next ${a.leastMemory.nextWho} ${num(a.leastMemory.nextPeakHostMiB)} MiB` : ''})`,
    );
  if (a.fastestColdStart) parts.push(`fastest cold start ${a.fastestColdStart.who} (${ms(a.fastestColdStart.totalMs)})`);
  for (const p of a.parityFailed)
    parts.push(
      `PARITY FAILED ${p.who} (relL2 ${p.relL2 === null ? 'not finite' : p.relL2.toExponential(1)} > ${p.tolerance.toExponential(0)}): its output differs from the reference, so it was not timed`,
    );
  if (a.failed.length) parts.push(`failed: ${a.failed.map((f) => f.who).join(', ')} (reasons in the table)`);
  if (a.unstable.length) parts.push(`UNSTABLE ${a.unstable.join(', ')}: the machine was busy in every replicate, so no timing and no verdict from it`);
  return `${a.title}: ${parts.join('; ')}.`;
}

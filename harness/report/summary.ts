import Table from 'cli-table3';
import { sampleUnit, workloadLabel, type RunModel } from './model.js';
import { answerText, DEFAULT_THRESHOLD_PCT, runAnswers } from './verdict.js';
import type { Run } from '../results/schema.js';

const fmt = (v: number | undefined | null, digits = 3): string => (v === undefined || v === null ? '-' : v >= 100 ? v.toFixed(1) : v.toPrecision(digits));

/** Warning lines printed under the table (the rest are counted). */
const WARNINGS_SHOWN = 8;

/** The human summary of a run: one row per cell, for stdout. */
export function summaryTable(run: Run): string {
  const sweep = run.config.threads.length > 1;
  const t = new Table({
    head: [
      'engine',
      'mode',
      'workload',
      sweep ? 'batch/threads' : 'batch',
      'status',
      'median ms',
      '±CI %',
      'p99 ms',
      'n',
      'samples/s',
      'GFLOP/s',
      '% peak',
      'peak MiB',
      'cold ms',
      'relL2',
      'warn',
    ],
    style: { head: [], border: [], compact: true },
    // No rule between rows: a run has many cells and the table must stay readable in a terminal.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const c of run.cells) {
    t.push([
      c.engine,
      c.mode,
      workloadLabel(c),
      sweep ? `${c.batchSize}/t${c.threads ?? '?'}` : c.batchSize,
      c.status,
      fmt(c.stats?.medianMs),
      c.stats?.medianCi && c.stats.medianMs > 0 ? (((c.stats.medianCi.hi - c.stats.medianCi.lo) / 2 / c.stats.medianMs) * 100).toFixed(2) : '-',
      c.stats ? `${fmt(c.stats.p99Ms)}${c.stats.reliablePercentiles && !c.stats.reliablePercentiles.includes('p99') ? '*' : ''}` : '-',
      c.stats?.n ?? '-',
      fmt(c.throughput),
      fmt(c.gflops),
      c.fractionOfPeak === undefined ? '-' : `${(100 * c.fractionOfPeak).toFixed(1)}%`,
      c.memory ? (c.memory.peakHostBytes / 2 ** 20).toFixed(0) : '-',
      fmt(c.coldStart?.totalMs),
      c.parity?.relL2 === undefined || c.parity.relL2 === null ? '-' : c.parity.relL2.toExponential(1),
      c.warnings?.length ?? '-',
    ]);
  }
  // Cells that are not ok for the same reason (an engine unavailable here, say) share one line.
  const notOk = new Map<string, string[]>();
  for (const c of run.cells.filter((x) => x.status !== 'ok')) {
    const why = `${c.status} - ${c.reason}${c.fix ? ` (fix: ${c.fix})` : ''}`;
    notOk.set(why, [...(notOk.get(why) ?? []), c.id]);
  }
  const problems = [...notOk].map(
    ([why, ids]) => `  ${ids.length === 1 ? ids[0] : `${ids[0]} and ${ids.length - 1} more cell${ids.length > 2 ? 's' : ''}`}: ${why}`,
  );
  const warnings = run.cells.flatMap((c) => (c.warnings ?? []).map((w) => `  ${c.id}: ${w.code} - ${w.message}`));
  const starred = run.cells.some((c) => c.stats?.reliablePercentiles && !c.stats.reliablePercentiles.includes('p99'));
  // Counts per kind, then the first few lines: run.json keeps every warning.
  const byCode = new Map<string, number>();
  for (const c of run.cells) for (const w of c.warnings ?? []) byCode.set(w.code, (byCode.get(w.code) ?? 0) + 1);
  const shown = warnings.slice(0, WARNINGS_SHOWN);
  const warningText = warnings.length
    ? `Warnings (${warnings.length}: ${[...byCode].map(([k, n]) => `${k} ${n}`).join(', ')}; all in run.json):\n${shown.join('\n')}\n${warnings.length > shown.length ? `  ... ${warnings.length - shown.length} more\n` : ''}`
    : '';
  return `${t.toString()}\n${starred ? '* p99 from fewer than 662 samples: not trustworthy\n' : ''}${warningText}${problems.length ? `Not ok:\n${problems.join('\n')}\n` : ''}`;
}

/**
 * The end of a run in words: per workload and batch size, the fastest engine and mode with its
 * ratio to the next and that ratio's interval, the lowest-memory one, the fastest cold start and
 * any parity failure; then the default engines this run left out because they cannot run here,
 * each once with its fix.
 */
export function answerBlock(run: Run, model: RunModel): string {
  const lines = runAnswers(model).map((a) => `  ${answerText(a)}`);
  const leftOut = run.config.onlyAvailable
    ? Object.entries(run.engines)
        .filter(([id]) => !run.config.engines.includes(id))
        .map(([id, e]) => `  ${id}: ${e.available ? `available, but not on ${run.config.device}` : e.reason}${e.fix ? `\n    fix: ${e.fix}` : ''}`)
    : [];
  return [
    `Answer (median latency per ${[...new Set(model.sections.map((s) => sampleUnit(s)))].join(' or ')}; ratios with 95 % bootstrap intervals, ${DEFAULT_THRESHOLD_PCT} % noise threshold; details in the report):`,
    ...lines,
    ...(leftOut.length ? ['Left out (not available here; ask for them with --engines once fixed):', ...leftOut] : []),
    '',
  ].join('\n');
}

/**
 * The end of a run on a busy machine, in words: how many replicates were contended and re-run, and
 * why (the first reason of each cell); the cells left unstable. Empty when nothing was contended.
 */
export function contentionText(run: Run): string {
  const hit = run.cells.filter((c) => c.replicates?.some((r) => r.status === 'contended'));
  if (hit.length === 0) return '';
  const reps = hit.flatMap((c) => c.replicates!.filter((r) => r.status === 'contended').map((r) => ({ c, r })));
  const unstable = run.cells.filter((c) => c.status === 'unstable');
  const lines = [
    `Busy machine: ${reps.length} replicate${reps.length > 1 ? 's' : ''} of ${hit.length} cell${hit.length > 1 ? 's' : ''} contended by other processes, kept in run.json and not pooled; each was re-run in a fresh process (--rerun-contended):`,
    ...hit.map((c) => {
      const mine = c.replicates!.filter((r) => r.status === 'contended');
      return `  ${c.id}: replicate ${mine.map((r) => r.index).join(', ')} (${mine[0]!.reason})`;
    }),
  ];
  if (unstable.length)
    lines.push(
      `Unstable (no clean replicate, so no timing and no verdict): ${unstable.map((c) => c.id).join(', ')}. Run them again on a quiet machine (fwbench doctor; fwbench run --wait-idle).`,
    );
  return lines.join('\n');
}

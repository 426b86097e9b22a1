import Table from 'cli-table3';
import { classifyRatio, MIN_SAMPLES_FOR_CI, type BootstrapOptions } from '../stats/bootstrap.js';
import { esc, htmlDocument, sortableTable, td } from './html.js';
import { cellHost, cellKey, cellRatioInterval, cellThreads, num, paramsText, cellGeneration } from './model.js';
import type { Cell, Run } from '../results/schema.js';

/**
 * `fwbench compare A B`: cell by cell, how B's median latency relates to A's. A cell of A matches
 * the cell of B with the same engine, mode, device, workload, parameters, batch size and thread
 * count (hosts may
 * differ: comparing machines is a use). The ratio B/A gets a bootstrap interval from both sides'
 * raw samples, and it is a change only when the whole interval lies beyond the noise threshold
 * (Criterion's rule; an interval that clears the threshold also excludes 1, so the change is
 * significant at the interval's level). When both cells were measured in several processes the
 * bootstrap resamples processes, then samples (replicateRatioInterval), so the interval carries
 * the process-to-process variation a rerun meets; with one process per side it can only reflect
 * the within-process noise, and the pair says so (`interval: 'samples'`).
 */

/** Verdict on one pair of cells. */
export type CompareVerdict = 'faster' | 'slower' | 'no significant change' | 'no interval';

/** One matched pair. */
export interface CellComparison {
  engine: string;
  mode: string;
  device: string;
  workload: string;
  preset: string;
  params: string;
  batchSize: number;
  /** Intra-op threads of both cells. */
  threads: number;
  hostA: string;
  hostB: string;
  medianAMs: number;
  medianBMs: number;
  samplesA: number;
  samplesB: number;
  /** median(B) / median(A): below 1 is faster. */
  ratio: number;
  /** Generation cells (whose samples are whole generations): B/A of the median time to first token and of the median time per output token. */
  generation?: { run: string; cache: string; ttftRatio: number; tpotRatio: number | null };
  /** 95 % bootstrap interval of the ratio; absent with fewer than MIN_SAMPLES_FOR_CI samples on a side. */
  ci?: { lo: number; hi: number };
  /** What the interval resampled: processes then samples (both sides have >= 2 replicates), or pooled samples only. */
  interval?: 'replicates' | 'samples';
  verdict: CompareVerdict;
}

/** Geometric mean of the ratios of one engine's matched cells. */
export interface EngineGeomean {
  engine: string;
  cells: number;
  ratio: number;
}

/** The whole comparison. */
export interface Comparison {
  thresholdPct: number;
  a: { command: string[]; startedAt: string; hosts: string[] };
  b: { command: string[]; startedAt: string; hosts: string[] };
  pairs: CellComparison[];
  geomeans: EngineGeomean[];
  /** Cells present on one side only, or not ok on a side: id and why. */
  unmatched: Array<{ cell: string; why: string }>;
  /** Pairs slower beyond the threshold. */
  regressions: number;
}

const describe = (c: Cell, host: string): string => `${c.id} (${paramsText(c.params)}) on ${host}`;

/** Compares two runs; deterministic for given options (seeded bootstrap). */
export function compareRuns(a: Run, b: Run, opts: { thresholdPct: number } & BootstrapOptions): Comparison {
  const threshold = opts.thresholdPct / 100;
  const byKey = (run: Run): Map<string, Cell[]> => {
    const m = new Map<string, Cell[]>();
    for (const c of run.cells) {
      const key = cellKey(c, cellThreads(run, c));
      m.set(key, [...(m.get(key) ?? []), c]);
    }
    return m;
  };
  const cellsA = byKey(a);
  const cellsB = byKey(b);
  const pairs: CellComparison[] = [];
  const unmatched: Comparison['unmatched'] = [];
  for (const [key, sideA] of cellsA) {
    const sideB = cellsB.get(key) ?? [];
    // One cell per side pairs directly (hosts may differ); merged runs hold one per host, paired by host.
    const matched: Array<[Cell, Cell]> =
      sideA.length === 1 && sideB.length === 1
        ? [[sideA[0]!, sideB[0]!]]
        : sideA.flatMap((ca) =>
            sideB
              .filter((cb) => cellHost(b, cb) === cellHost(a, ca))
              .slice(0, 1)
              .map((cb): [Cell, Cell] => [ca, cb]),
          );
    for (const c of sideA) if (!matched.some(([x]) => x === c)) unmatched.push({ cell: describe(c, cellHost(a, c)), why: 'only in A' });
    for (const c of sideB) if (!matched.some(([, y]) => y === c)) unmatched.push({ cell: describe(c, cellHost(b, c)), why: 'only in B' });
    for (const [ca, cb] of matched) {
      if (ca.status !== 'ok' || cb.status !== 'ok' || !ca.stats || !cb.stats) {
        unmatched.push({ cell: describe(ca, cellHost(a, ca)), why: `not ok: A ${ca.status}, B ${cb.status}` });
        continue;
      }
      const sa = ca.samplesMs ?? [];
      const sb = cb.samplesMs ?? [];
      const ga = ca.generation;
      const gb = cb.generation;
      const base = {
        engine: ca.engine,
        mode: ca.mode,
        device: ca.device,
        workload: ca.workload,
        preset: ca.preset,
        ...(ga?.ttftMs && gb?.ttftMs
          ? {
              generation: {
                run: cellGeneration(ca),
                cache: ga.cache,
                ttftRatio: gb.ttftMs.medianMs / ga.ttftMs.medianMs,
                tpotRatio: ga.tpotMs && gb.tpotMs ? gb.tpotMs.medianMs / ga.tpotMs.medianMs : null,
              },
            }
          : {}),
        params: paramsText(ca.params),
        batchSize: ca.batchSize,
        threads: cellThreads(a, ca),
        hostA: cellHost(a, ca),
        hostB: cellHost(b, cb),
        medianAMs: ca.stats.medianMs,
        medianBMs: cb.stats.medianMs,
        samplesA: sa.length,
        samplesB: sb.length,
      };
      if (sa.length < MIN_SAMPLES_FOR_CI || sb.length < MIN_SAMPLES_FOR_CI) {
        pairs.push({ ...base, ratio: cb.stats.medianMs / ca.stats.medianMs, verdict: 'no interval' });
        continue;
      }
      const ci = cellRatioInterval(cb, ca, opts);
      const change = classifyRatio(ci, threshold);
      pairs.push({
        ...base,
        ratio: ci.estimate,
        ci: { lo: ci.lo, hi: ci.hi },
        interval: ci.by,
        verdict: change === 'higher' ? 'slower' : change === 'lower' ? 'faster' : 'no significant change',
      });
    }
  }
  for (const [key, sideB] of cellsB) if (!cellsA.has(key)) for (const c of sideB) unmatched.push({ cell: describe(c, cellHost(b, c)), why: 'only in B' });
  const engines = [...new Set(pairs.map((p) => p.engine))];
  const geomeans = engines.map((engine) => {
    const rs = pairs.filter((p) => p.engine === engine).map((p) => p.ratio);
    return { engine, cells: rs.length, ratio: Math.exp(rs.reduce((s, r) => s + Math.log(r), 0) / rs.length) };
  });
  const side = (r: Run) => ({ command: r.command, startedAt: r.startedAt, hosts: [...new Set(r.cells.map((c) => cellHost(r, c)))] });
  return {
    thresholdPct: opts.thresholdPct,
    a: side(a),
    b: side(b),
    pairs,
    geomeans,
    unmatched,
    regressions: pairs.filter((p) => p.verdict === 'slower').length,
  };
}

const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${num((ratio - 1) * 100)} %`;

/** A pair's workload as tables show it: a generation's prompt, new tokens and cache included. */
const workloadOf = (p: CellComparison): string =>
  `${p.workload}/${p.preset}${p.generation ? ` generate ${p.generation.run}${p.generation.cache === 'none' ? ' no-cache' : ''}` : ''}`;
/** A generation pair's TTFT and TPOT ratios, or '-'. */
const generationRatios = (p: CellComparison): string =>
  p.generation ? `TTFT ${num(p.generation.ttftRatio)}, TPOT ${p.generation.tpotRatio === null ? '-' : num(p.generation.tpotRatio)}` : '-';

/** Human text: one row per pair, geometric means, unmatched cells, a closing line. */
export function compareText(c: Comparison): string {
  const t = new Table({
    head: ['engine', 'mode', 'workload', 'batch', 'A median ms', 'B median ms', 'B/A', '95% CI', 'change', 'verdict', 'generation B/A'],
    style: { head: [], border: [], compact: true },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const p of c.pairs) {
    t.push([
      p.engine,
      p.mode,
      `${workloadOf(p)}${p.hostA === p.hostB ? '' : ` (${p.hostA} -> ${p.hostB})`}`,
      p.batchSize,
      num(p.medianAMs),
      num(p.medianBMs),
      num(p.ratio),
      p.ci ? `${num(p.ci.lo)}-${num(p.ci.hi)}` : '-',
      pct(p.ratio),
      p.verdict,
      generationRatios(p),
    ]);
  }
  const lines = [
    t.toString(),
    `Geometric mean of B/A per engine: ${c.geomeans.map((g) => `${g.engine} ${num(g.ratio)} (${pct(g.ratio)}, ${g.cells} cells)`).join('; ') || 'no matched cells'}`,
  ];
  if (c.unmatched.length > 0) lines.push(`Not compared:\n${c.unmatched.map((u) => `  ${u.cell}: ${u.why}`).join('\n')}`);
  const count = (v: CompareVerdict): number => c.pairs.filter((p) => p.verdict === v).length;
  lines.push(
    `${c.pairs.length} cells compared at ±${c.thresholdPct} %: ${count('slower')} slower, ${count('faster')} faster, ${count('no significant change')} no significant change, ${count('no interval')} without an interval (< ${MIN_SAMPLES_FOR_CI} samples)`,
  );
  return `${lines.join('\n')}\n`;
}

/** Self-contained HTML page of a comparison (same rules as the report: escaped, no requests). */
export function compareHtml(c: Comparison): string {
  const cls: Record<CompareVerdict, string | undefined> = {
    slower: 'v-contradicted',
    faster: 'v-supported',
    'no significant change': undefined,
    'no interval': 'muted',
  };
  const rows = c.pairs.map((p) => [
    td(esc(p.engine)),
    td(esc(p.mode)),
    td(esc(p.device)),
    td(esc(workloadOf(p))),
    td(esc(p.params)),
    td(String(p.batchSize), p.batchSize),
    td(esc(p.hostA === p.hostB ? p.hostA : `${p.hostA} → ${p.hostB}`)),
    td(num(p.medianAMs), p.medianAMs),
    td(num(p.medianBMs), p.medianBMs),
    td(num(p.ratio), p.ratio),
    td(p.ci ? `${num(p.ci.lo)} – ${num(p.ci.hi)}` : '-', p.ci?.lo ?? null),
    td(esc(p.verdict), undefined, cls[p.verdict]),
    td(esc(generationRatios(p))),
  ]);
  const body = `<h1>fwbench compare</h1>
<p>A: <code>${esc(c.a.command.join(' '))}</code> (${esc(c.a.startedAt)})<br>B: <code>${esc(c.b.command.join(' '))}</code> (${esc(c.b.startedAt)})</p>
<p>Ratio = median(B) / median(A) of latency, below 1 is faster; 95 % bootstrap interval from both sides' raw samples (resampling processes, then samples, where both sides ran several); a change needs the whole interval beyond ±${esc(c.thresholdPct)} %. ${c.regressions} regression${c.regressions === 1 ? '' : 's'}.</p>
${sortableTable(['engine', 'mode', 'device', 'workload', 'parameters', 'batch', 'host', 'A median (ms)', 'B median (ms)', 'B/A', 'B/A 95% CI', 'verdict', 'generation B/A (TTFT, TPOT medians)'], rows, 'compare')}
<h2>Geometric mean of B/A per engine</h2>
${sortableTable(
  ['engine', 'cells', 'B/A'],
  c.geomeans.map((g) => [td(esc(g.engine)), td(String(g.cells), g.cells), td(num(g.ratio), g.ratio)]),
  'geomeans',
)}
${
  c.unmatched.length > 0
    ? `<h2>Not compared</h2>${sortableTable(
        ['cell', 'why'],
        c.unmatched.map((u) => [td(esc(u.cell)), td(esc(u.why))]),
        'unmatched',
      )}`
    : ''
}`;
  return htmlDocument('fwbench compare', body, { id: 'fwbench-compare', data: c });
}

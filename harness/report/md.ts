import { claimSummary } from './claims.js';
import type { Report } from './build.js';
import {
  COLD_START_LEGEND,
  COLD_START_MESSAGES,
  COLD_START_SEGMENTS,
  COLD_START_UNSPLIT,
  coldStartRest,
  engineMode,
  num,
  sectionTitle,
  generationTable,
  precisionTable,
  streamTable,
  trainingTable,
  workloadLabel,
} from './model.js';
import { answerText, runAnswers } from './verdict.js';

/** Table-cell text: pipes and line breaks would end the cell; < > & are escaped so no HTML renders from data. */
const md = (s: string | number): string =>
  String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');

const table = (head: string[], rows: Array<Array<string | number>>): string =>
  [`| ${head.map(md).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(md).join(' | ')} |`)].join('\n');

/** A Markdown report: header, one table per workload (fastest in bold), claims, cells that did not run. */
export function markdownReport(report: Report): string {
  const { model } = report;
  const multiHost = model.hosts.length > 1;
  const out: string[] = [`# fwbench report`, '', `fwbench ${md(model.run.tool.version)}, generated ${md(report.generatedAt)}.`, '', '## Answer', ''];
  // Per workload and batch: fastest with its ratio to the next and interval, least memory, fastest cold start, parity failures.
  for (const a of runAnswers(model, report.thresholdPct)) out.push(`- ${md(answerText(a, report.thresholdPct))}`);
  out.push('');
  for (const h of model.hosts) {
    const gpus = h.host.gpus.gpus.map((g) => g.name).join(', ') || 'no GPU';
    out.push(
      `- **Host** ${md(h.fingerprint)}: ${md(h.host.cpu.brand)}, ${h.host.cpu.physicalCores} physical / ${h.host.cpu.logicalCores} logical cores, ${num(h.host.memory.totalBytes / 2 ** 30)} GiB, ${md(gpus)}; ${md(h.host.os.distro)} ${md(h.host.os.release)}, Node ${md(h.host.node)}; threads ${h.config.threads.join(', ')}; run ${md(h.startedAt)}`,
      // A code span shows markup as text; a backtick would end it and a blank line the list item.
      `  - command: \`${h.command
        .join(' ')
        .replace(/`/g, "'")
        .replace(/[\r\n]+/g, ' ')}\``,
      `  - engines: ${Object.entries(h.engines)
        .map(([id, e]) => md(`${id} ${e.available ? (e.version ?? '') : `unavailable (${e.reason ?? ''})`}`))
        .join('; ')}`,
    );
  }
  out.push(
    '',
    'Latency: median of the timed samples with its 95 % bootstrap interval; × fastest: median / the fastest median of the same workload and batch.',
    '',
  );
  for (const s of model.sections) {
    out.push(`## ${md(sectionTitle(s, multiHost))}`, '', `Parameters: ${md(s.params)}; ${num(s.flopsPerSample / 1e9)} GFLOP per sample.`, '');
    const rows = s.groups.flatMap((g) =>
      g.cells.map((v) => {
        const c = v.cell;
        const median = c.stats ? `${num(c.stats.medianMs)}${v.medianCi ? ` [${num(v.medianCi.lo)}, ${num(v.medianCi.hi)}]` : ''}` : '-';
        return [
          g.batchSize,
          engineMode(c),
          c.status,
          v.fastest ? `**${median}**` : median,
          num(c.stats?.p99Ms),
          num(c.throughput),
          num(c.gflops),
          c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-',
          num(c.coldStart?.totalMs),
          c.parity?.relL2 === undefined || c.parity.relL2 === null ? '-' : `${c.parity.relL2.toExponential(1)} ${c.parity.pass ? 'pass' : 'FAIL'}`,
          v.relativeToFastest === undefined ? '-' : `${num(v.relativeToFastest)}×`,
        ];
      }),
    );
    out.push(
      table(
        ['batch', 'engine/mode', 'status', 'median ms [95% CI]', 'p99 ms', 'samples/s', 'GFLOP/s', 'peak MiB', 'cold start ms', 'parity relL2', '× fastest'],
        rows,
      ),
      '',
    );
  }
  for (const [title, t] of [
    ['Training', trainingTable(model)],
    ['Shape streams', streamTable(model)],
    ['Precision', precisionTable(model)],
    ['Generation', generationTable(model)],
  ] as const)
    if (t) out.push(`## ${title}`, '', t.legend, '', table(t.head, t.rows), '', ...(t.notes?.length ? [...t.notes.map((n) => `- ${n}`), ''] : []));
  const cold = model.cells.filter((v) => v.cell.coldStart);
  if (cold.length > 0) {
    const rows = cold.map((v) => {
      const c = v.cell.coldStart!;
      const rest = coldStartRest(c);
      return [
        `${engineMode(v.cell)} ${workloadLabel(v.cell)} b${v.cell.batchSize}${multiHost ? ` on ${v.host}` : ''}`,
        ...COLD_START_SEGMENTS.map((s) => num(s.ms(c))),
        `${num(rest.ms)}${rest.name === COLD_START_UNSPLIT ? ' (incl. import + weights)' : ''}`,
        num(c.totalMs),
      ];
    });
    out.push(
      '## Cold start',
      '',
      COLD_START_LEGEND,
      '',
      table(['cell', ...COLD_START_SEGMENTS.map((s) => `${s.name} ms`), `${COLD_START_MESSAGES} ms`, 'total ms'], rows),
      '',
    );
  }
  out.push('## Claims', '', `Ratio = subject / baseline; a verdict needs the whole 95 % interval beyond ±${report.thresholdPct} %.`, '');
  out.push(
    table(
      ['claim', 'says', 'verdict'],
      report.claims.map((r) => [r.claim.id, r.claim.claim, claimSummary(r)]),
    ),
    '',
  );
  const measured = report.claims.flatMap((r) => r.evaluations.filter((e) => e.verdict !== 'not measured').map((e) => ({ id: r.claim.id, e })));
  if (measured.length > 0) {
    out.push(
      table(
        ['claim', 'comparison', 'workload', 'batch', 'ratio [95% CI]', 'verdict'],
        measured.map(({ id, e }) => [
          id,
          `${e.subject} vs ${e.baseline}`,
          `${e.workload}${multiHost ? ` on ${e.host}` : ''}`,
          e.batch ?? '',
          `${num(e.ratio)}${e.ci ? ` [${num(e.ci.lo)}, ${num(e.ci.hi)}]` : ''}`,
          e.verdict,
        ]),
      ),
      '',
    );
  }
  const notOk = model.cells.filter((v) => v.cell.status !== 'ok');
  if (notOk.length > 0) {
    out.push(
      '## Cells that did not run',
      '',
      table(
        ['cell', 'host', 'status', 'reason', 'fix'],
        notOk.map((v) => [v.cell.id, v.host, v.cell.status, v.cell.reason ?? '', v.cell.fix ?? '']),
      ),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}

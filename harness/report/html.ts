import { generationCharts, sectionCharts, type Chart } from './charts.js';

import { claimSummary } from './claims.js';
import { summarizeDistribution } from './distribution.js';
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
  type ReportTable,
  workloadLabel,
  type CellView,
  type HostView,
  type RunModel,
} from './model.js';
import { answerText, runAnswers } from './verdict.js';

/** Charts as figures with their captions (nothing for none). */
const chartFigures = (charts: Chart[]): string =>
  charts.length
    ? `<div class="charts">${charts.map((c) => `<figure class="chart" id="${c.id}">${c.svg}<figcaption>${esc(c.caption)}</figcaption></figure>`).join('\n')}</div>`
    : '';

/**
 * The HTML report: one self-contained file that works offline and from a mail attachment. No
 * request of any kind leaves the page (charts are inline SVG rendered at report time, styles and
 * the few lines of table-sorting script are inline, and a Content-Security-Policy forbids every
 * fetch). Every string from run.json is escaped. run.json itself is embedded with each cell's raw
 * samples replaced by fixed-size summaries, so the page stays small however long the cells ran
 * (`--embed-samples` embeds it whole).
 */

/** Escapes text for HTML content and quoted attribute values. */
export const esc = (s: string | number): string =>
  String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

/** JSON safe inside a <script> element: no "</script>" or "<!--" can form, and U+2028/2029 are escaped. */
export const scriptJson = (v: unknown): string =>
  JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** A table cell; numeric cells carry their value for sorting. */
export const td = (text: string, sortValue?: number | null, cls?: string): string =>
  `<td${sortValue !== undefined ? ` data-v="${sortValue === null || !Number.isFinite(sortValue) ? '' : sortValue}"` : ''}${cls ? ` class="${cls}"` : ''}>${text}</td>`;

/** A sortable table (click a header to sort). Header texts are trusted; row cells must be escaped already. */
export const sortableTable = (head: string[], rows: string[][], id?: string): string =>
  `<div class="scroll"><table class="sortable"${id ? ` id="${id}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('')}</tbody></table></div>`;

// Separate borders: collapsed ones stay behind when the sticky first column scrolls over the
// others; the left border belongs to the first column so that it stays with it. Every cell has a
// background so that scrolled cells do not show through it.
const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#1d1d1f}
h1{margin:20px 0 4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
nav a{margin-right:12px}
table{border-collapse:separate;border-spacing:0;margin:8px 0 16px;font-size:13px;font-variant-numeric:tabular-nums;border-top:1px solid #ddd}
.scroll{overflow-x:auto;max-width:100%}
th,td{border:solid #ddd;border-width:0 1px 1px 0;padding:3px 7px;text-align:left;vertical-align:top;background:#fff}
th{background:#f4f4f6;cursor:pointer;user-select:none;white-space:nowrap}
th:first-child,td:first-child{position:sticky;left:0;z-index:1;border-left-width:1px}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
td[data-v]{text-align:right}
.best{background:#d9f2dc;font-weight:600}
.bad{background:#fde2e1}.muted{color:#777}
.v-supported{background:#d9f2dc}.v-contradicted{background:#fde2e1}.v-nsd{background:#fff6d6}
figure{margin:0}figcaption{color:#555;font-size:13px;max-width:580px}
.charts{display:flex;flex-wrap:wrap;gap:16px 24px;margin:12px 0}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0}
code{font-size:12px;background:#f4f4f6;padding:1px 3px;word-break:break-all}
`;

// Click-to-sort for every table.sortable: numeric cells sort by data-v, empty ones last.
const SCRIPT = `
for (const th of document.querySelectorAll('table.sortable th')) {
  th.addEventListener('click', () => {
    const table = th.closest('table');
    const body = table.tBodies[0];
    const i = th.cellIndex;
    const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
    for (const h of table.querySelectorAll('th')) delete h.dataset.dir;
    th.dataset.dir = dir;
    const key = (tr) => {
      const cell = tr.cells[i];
      if (!cell) return '';
      if (cell.dataset.v === undefined) return cell.textContent;
      return cell.dataset.v === '' ? NaN : Number(cell.dataset.v);
    };
    const sign = dir === 'asc' ? 1 : -1;
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (typeof x === 'number' && typeof y === 'number') {
        if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) - Number.isNaN(y);
        return sign * (x - y);
      }
      return sign * String(x).localeCompare(String(y));
    });
    body.append(...rows);
  });
}
`;

/** A complete self-contained page. */
export function htmlDocument(title: string, body: string, embedded?: { id: string; data: unknown }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head><body>
${body}
${embedded ? `<script type="application/json" id="${esc(embedded.id)}">${scriptJson(embedded.data)}</script>` : ''}
<script>${SCRIPT}</script>
</body></html>
`;
}

const gib = (bytes: number): string => `${num(bytes / 2 ** 30)} GiB`;

function hostBlock(h: HostView, cells: CellView[]): string {
  const x = h.host;
  const gpus =
    x.gpus.gpus.length > 0
      ? x.gpus.gpus.map((g) => `${g.name} (${gib(g.memoryBytes)})`).join(', ') + ` — driver ${x.gpus.driver ?? '?'}, CUDA ${x.gpus.cuda ?? '?'}`
      : `none (${x.gpus.reason ?? 'not detected'})`;
  const facts: Array<[string, string]> = [
    ['CPU', `${x.cpu.brand} (${x.cpu.manufacturer}), ${x.cpu.physicalCores} physical / ${x.cpu.logicalCores} logical cores, ${x.cpu.speedGHz} GHz`],
    ['SIMD', x.cpu.simd.join(' ') || 'none of the DL-relevant flags'],
    ['Memory', gib(x.memory.totalBytes)],
    ['GPUs', gpus],
    ['OS', `${x.os.distro} ${x.os.release} (${x.os.platform} ${x.os.arch}, kernel ${x.os.kernel}), Node ${x.node}, host name ${x.hostname}`],
    [
      'Threads',
      h.config.threads.length > 1
        ? `${h.config.threads.join(', ')} intra-op threads: every cell at each count`
        : `${h.config.threads[0]} intra-op threads for every engine`,
    ],
    ['Run', `${h.startedAt} → ${h.finishedAt}, fwbench ${h.toolVersion}`],
  ];
  const settingsOf = (engine: string): string => {
    const seen = new Set<string>();
    for (const v of cells) {
      if (v.cell.engine !== engine || v.host !== h.fingerprint || !v.cell.settings) continue;
      seen.add(
        `${v.cell.mode}: ${Object.entries(v.cell.settings)
          .map(([k, val]) => `${k}=${val}`)
          .join(', ')}`,
      );
    }
    return [...seen].map((s) => esc(s)).join('<br>') || '<span class="muted">no cell ran</span>';
  };
  const engines = Object.entries(h.engines).map(([id, e]) => [
    td(esc(id)),
    td(e.available ? 'available' : 'unavailable', undefined, e.available ? undefined : 'bad'),
    td(esc(e.available ? `${e.framework} ${e.version ?? ''}` : e.framework)),
    td(esc(e.devices?.join(', ') ?? '-')),
    td(e.available ? settingsOf(id) : esc(`${e.reason ?? ''}${e.fix ? ` — fix: ${e.fix}` : ''}`)),
  ]);
  return `<h3>${esc(h.fingerprint)}</h3>
<dl>${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}<dt>Command</dt><dd><code>${esc(h.command.join(' '))}</code></dd></dl>
${sortableTable(['engine', 'status', 'framework / version', 'devices', 'effective settings (per mode) or reason'], engines)}`;
}

function overviewMatrix(report: Report): string {
  const { model } = report;
  const multiHost = model.hosts.length > 1;
  const columns = [...new Set(model.cells.map((v) => engineMode(v.cell)))];
  const rows = model.sections.flatMap((s) =>
    s.groups.map((g) => [
      td(esc(`${s.workload}/${s.preset}${multiHost ? ` on ${s.host}` : ''}`)),
      td(esc(s.device)),
      td(String(g.batchSize), g.batchSize),
      ...columns.map((name) => {
        const v = g.cells.find((x) => engineMode(x.cell) === name);
        if (!v) return td('', null);
        if (v.cell.status !== 'ok' || !v.cell.stats) return td(esc(v.cell.status), null, 'bad');
        return td(
          `${num(v.cell.stats.medianMs)} ms <span class="muted">${num(v.relativeToFastest)}×</span>`,
          v.cell.stats.medianMs,
          v.fastest ? 'best' : undefined,
        );
      }),
    ]),
  );
  return sortableTable(['workload', 'device', 'batch', ...columns.map((c) => `${c} median (× fastest)`)], rows, 'overview-matrix');
}

function cellTable(report: Report): string {
  const multiHost = report.model.hosts.length > 1;
  const device = report.model.cells.some((v) => v.cell.memory?.peakDeviceBytes !== undefined);
  const rows = report.model.cells.map((v) => {
    const c = v.cell;
    const ci = v.medianCi ? `${num(v.medianCi.lo)} – ${num(v.medianCi.hi)}` : '-';
    const parity = c.parity ? `${c.parity.relL2 === null ? '-' : c.parity.relL2.toExponential(1)} ${c.parity.pass ? 'pass' : 'FAIL'}` : '-';
    return [
      td(esc(c.id)),
      ...(multiHost ? [td(esc(v.host))] : []),
      td(String(c.batchSize), c.batchSize),
      td(esc(c.status), undefined, c.status === 'ok' ? undefined : 'bad'),
      td(num(c.stats?.medianMs), c.stats?.medianMs ?? null, v.fastest ? 'best' : undefined),
      td(ci, v.medianCi?.lo ?? null),
      td(num(c.stats?.p99Ms), c.stats?.p99Ms ?? null),
      td(String(c.stats?.n ?? '-'), c.stats?.n ?? null),
      td(num(c.throughput), c.throughput ?? null),
      td(num(c.gflops), c.gflops ?? null),
      td(c.fractionOfPeak === undefined ? '-' : `${(100 * c.fractionOfPeak).toFixed(1)} %`, c.fractionOfPeak ?? null),
      td(c.memory ? num(c.memory.peakHostBytes / 2 ** 20) : '-', c.memory?.peakHostBytes ?? null),
      ...(device ? [td(c.memory?.peakDeviceBytes !== undefined ? num(c.memory.peakDeviceBytes / 2 ** 20) : '-', c.memory?.peakDeviceBytes ?? null)] : []),
      td(esc(parity), undefined, c.parity && !c.parity.pass ? 'bad' : undefined),
      td(v.relativeToFastest === undefined ? '-' : `${num(v.relativeToFastest)}×`, v.relativeToFastest ?? null),
    ];
  });
  // The cell id (engine/mode/device/workload/preset/batch/threads) comes first: the column that stays in view when the table scrolls sideways.
  return sortableTable(
    [
      'cell',
      ...(multiHost ? ['host'] : []),
      'batch',
      'status',
      'median (ms)',
      'median 95% CI (ms)',
      'p99 (ms)',
      'samples',
      'throughput (samples/s)',
      'GFLOP/s',
      '% of machine peak GEMM',
      'peak host memory (MiB)',
      ...(device ? ['peak GPU memory (MiB)'] : []),
      'parity relL2',
      '× fastest',
    ],
    rows,
    'cells',
  );
}

function claimsSection(report: Report): string {
  const summary = report.claims.map((r) => [
    td(esc(r.claim.id)),
    td(esc(r.claim.claim)),
    td(esc(r.claim.source)),
    td(esc(r.claim.metric)),
    td(esc(claimSummary(r))),
  ]);
  const cls = { supported: 'v-supported', contradicted: 'v-contradicted', 'no significant difference': 'v-nsd', 'not measured': 'muted' } as const;
  const multiHost = report.model.hosts.length > 1;
  const details = report.claims.flatMap((r) =>
    r.evaluations.map((e) => [
      td(esc(r.claim.id)),
      td(esc(e.comparison)),
      td(esc(`${e.workload ?? '-'}${multiHost && e.host ? ` on ${e.host}` : ''}`)),
      td(esc(e.batch ?? '-')),
      td(esc(e.subject && e.baseline ? `${e.subject} / ${e.baseline}` : '-')),
      td(num(e.ratio), e.ratio ?? null),
      td(e.ci ? `${num(e.ci.lo)} – ${num(e.ci.hi)}` : '-', e.ci?.lo ?? null),
      td(esc(e.verdict), undefined, cls[e.verdict]),
      td(esc(e.note)),
    ]),
  );
  return `<p>Each claim of the PyTorch-vs-TensorFlow literature becomes a ratio subject / baseline of its metric (latency: median; memory: peak host RSS; cold start: spawn to first output), per workload and batch size, with both cells parity-passing. A verdict needs the whole 95 % bootstrap interval beyond ±${esc(report.thresholdPct)} % (one-measurement metrics: the point ratio); "not measured" says what is missing.</p>
${sortableTable(['claim', 'says', 'where it was made', 'metric', 'verdicts in this run'], summary, 'claims-summary')}
${sortableTable(['claim', 'comparison', 'workload', 'batch', 'cells (subject / baseline)', 'ratio', 'ratio 95% CI', 'verdict', 'note'], details, 'claims-detail')}`;
}

/** The HTML report. */
export function htmlReport(report: Report): string {
  const { model } = report;
  const multiHost = model.hosts.length > 1;
  const sections = model.sections.map((s, i) => {
    const charts = sectionCharts(s, i);
    return `<section id="workload-${i}"><h2>${esc(sectionTitle(s, multiHost))}</h2>
<p>Parameters: <code>${esc(s.params)}</code>; ${esc(num(s.flopsPerSample / 1e9))} GFLOP per sample (analytic).</p>
${charts.length === 0 ? '<p class="muted">No cell of this workload ran.</p>' : chartFigures(charts)}
</section>`;
  });
  const cold = model.cells
    .filter((v) => v.cell.coldStart)
    .map((v) => {
      const c = v.cell.coldStart!;
      const rest = coldStartRest(c);
      return [
        td(esc(`${engineMode(v.cell)} ${workloadLabel(v.cell)} b${v.cell.batchSize}${multiHost ? ` on ${v.host}` : ''}`)),
        ...COLD_START_SEGMENTS.map((s) => td(num(s.ms(c)), s.ms(c))),
        td(`${num(rest.ms)}${rest.name === COLD_START_UNSPLIT ? ' (incl. import + weights)' : ''}`, rest.ms),
        td(num(c.totalMs), c.totalMs),
      ];
    });
  const parity = model.cells
    .filter((v) => v.cell.parity)
    .map((v) => {
      const p = v.cell.parity!;
      return [
        td(esc(v.cell.id)),
        td(esc(p.reference)),
        td(p.relL2 === null ? '-' : p.relL2.toExponential(2), p.relL2),
        td(p.maxAbs === null ? '-' : p.maxAbs.toExponential(2), p.maxAbs),
        td(p.tolerance.toExponential(0), p.tolerance),
        td(p.pass ? 'pass' : 'FAIL', undefined, p.pass ? undefined : 'bad'),
      ];
    });
  const training = trainingTable(model);
  const stream = streamTable(model);
  const precision = precisionTable(model);
  const generation = generationTable(model);
  const genCharts = generationCharts(model);
  /** A formatted table of the model (training, shape streams, precision, generation) as a section of its own, with its charts; FAIL cells marked. */
  const tableSection = (id: string, title: string, t: ReportTable | undefined, charts: Chart[] = []): string =>
    t
      ? `<section id="${id}"><h2>${title}</h2><p>${esc(t.legend)}</p>\n${sortableTable(
          t.head,
          t.rows.map((r) => r.map((x) => td(esc(x), undefined, x.includes('FAIL') ? 'bad' : undefined))),
          `${id}-table`,
        )}${t.notes?.length ? `<ul>${t.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}${chartFigures(charts)}</section>`
      : '';
  const notOk = model.cells
    .filter((v) => v.cell.status !== 'ok')
    .map((v) => [
      td(esc(v.cell.id)),
      ...(multiHost ? [td(esc(v.host))] : []),
      td(esc(v.cell.status), undefined, 'bad'),
      td(esc(v.cell.phase ?? '-')),
      td(esc(v.cell.reason ?? '')),
      td(esc(v.cell.fix ?? '-')),
    ]);
  const body = `<header><h1>fwbench report</h1>
<p>fwbench ${esc(model.run.tool.version)} · run ${esc(model.run.startedAt)} · report generated ${esc(report.generatedAt)} · ${model.cells.length} cells on ${model.hosts.length} host${multiHost ? 's' : ''}</p>
<p>Command: <code>${esc(model.run.command.join(' '))}</code></p>
<p id="raw-samples">${report.embedSamples ? "This page embeds the run's run.json whole, every raw sample included (<code>script#fwbench-run</code>)." : "Raw samples are in the run folder's run.json, not in this page: its embedded copy (<code>script#fwbench-run</code>) carries each cell's quantiles and box instead (<code>samplesMsSummary</code>, <code>warmupMsSummary</code>); <code>fwbench report DIR --embed-samples</code> embeds them all."}</p>
<nav><a href="#answer">Answer</a><a href="#hosts">Hosts</a><a href="#overview">Overview</a>${model.sections.map((s, i) => `<a href="#workload-${i}">${esc(sectionTitle(s, false))}</a>`).join('')}${training ? '<a href="#training">Training</a>' : ''}${stream ? '<a href="#shape-streams">Shape streams</a>' : ''}${precision ? '<a href="#precision">Precision</a>' : ''}${generation ? '<a href="#generation">Generation</a>' : ''}<a href="#cold-start">Cold start</a><a href="#parity">Parity</a><a href="#claims">Claims</a><a href="#not-ok">Skipped / failed</a></nav></header>
<section id="answer"><h2>Answer</h2>
<p>Per workload and batch size: the fastest engine/mode by median latency, its ratio to the next fastest with the 95 % bootstrap interval of that ratio (a difference within the ${report.thresholdPct} % noise threshold, or not significant, is said so), the lowest peak memory, the fastest cold start, and any parity failure.</p>
<ul>${runAnswers(model, report.thresholdPct)
    .map((a) => `<li${a.parityFailed.length || a.failed.length ? ' class="bad"' : ''}>${esc(answerText(a, report.thresholdPct))}</li>`)
    .join('')}</ul></section>
<section id="hosts"><h2>Host${multiHost ? 's' : ''} and engines</h2>${model.hosts.map((h) => hostBlock(h, model.cells)).join('\n')}</section>
<section id="overview"><h2>Overview</h2>
<p>Median latency per engine/mode (columns) for each workload and batch size (rows); the fastest of each row is highlighted, × = median / that fastest median. Click a header to sort.</p>
${overviewMatrix(report)}
<p>Every cell: median latency with its 95 % bootstrap confidence interval (2000 seeded resamples; cells with fewer than 10 samples have none), p99, throughput = batch / median, achieved GFLOP/s = analytic FLOPs / median, peak resident memory of the worker process, parity against the reference output.</p>
${cellTable(report)}</section>
${sections.join('\n')}
${tableSection('training', 'Training', training)}
${tableSection('shape-streams', 'Shape streams', stream)}
${tableSection('precision', 'Precision', precision)}
${tableSection('generation', 'Generation', generation, genCharts)}
<section id="cold-start"><h2>Cold start</h2><p>${esc(COLD_START_LEGEND)}</p>
${sortableTable(['cell', ...COLD_START_SEGMENTS.map((s) => `${s.name} (ms)`), `${COLD_START_MESSAGES} (ms)`, 'total (ms)'], cold, 'cold-start-table')}</section>
<section id="parity"><h2>Parity</h2><p>Each engine's output on the parity batch against the reference output: relative L2 error and max absolute error; a cell over the tolerance is never timed.</p>
${sortableTable(['cell', 'reference', 'relL2', 'max abs', 'tolerance (relL2)', 'result'], parity, 'parity-table')}</section>
<section id="claims"><h2>Claims</h2>${claimsSection(report)}</section>
<section id="not-ok"><h2>Cells without a timing (skipped, failed, parity-failed, unstable)</h2>${notOk.length === 0 ? '<p>Every cell ran and passed parity.</p>' : sortableTable(['cell', ...(multiHost ? ['host'] : []), 'status', 'phase', 'reason', 'fix'], notOk, 'not-ok-table')}</section>`;
  return htmlDocument(`fwbench report — ${model.hosts.map((h) => h.fingerprint).join(', ')}`, body, {
    id: 'fwbench-run',
    data: report.embedSamples ? model.run : leanRun(model),
  });
}

/**
 * The run as the page embeds it by default: each cell's samplesMs and warmupMs replaced by their
 * summaries (samplesMsSummary, warmupMsSummary), and its outlier indices, which point into
 * samplesMs, by their counts.
 */
function leanRun(model: RunModel): unknown {
  return {
    ...model.run,
    cells: model.cells.map(({ cell, latency }) => {
      const { samplesMs, warmupMs, outliers, ...rest } = cell;
      return {
        ...rest,
        ...(outliers ? { outliers: { mild: outliers.mild, severe: outliers.severe, mad: outliers.mad } } : {}),
        ...(latency ? { samplesMsSummary: latency } : {}),
        ...(warmupMs?.length ? { warmupMsSummary: summarizeDistribution(warmupMs) } : {}),
      };
    }),
  };
}

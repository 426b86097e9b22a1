import type { Report } from './build.js';
import { cellRow, type CellRow } from './model.js';

/**
 * RFC 4180 field: quoted when it holds a comma, quote or line break; quotes doubled. Text that a
 * spreadsheet would run as a formula (starting with = + - @, tab or CR: a reason or an id from a
 * results file made elsewhere) gets a leading apostrophe (OWASP's CSV-injection advice); numbers
 * are written as they are, negative ones included.
 */
function field(v: CellRow[keyof CellRow]): string {
  const raw = v === null ? '' : String(v);
  const text = typeof v === 'string' && /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One line per cell with every figure at full precision (units in the column names), for spreadsheets and scripts. */
export function csvReport(report: Report): string {
  const rows = report.model.cells.map(cellRow);
  const columns = Object.keys(cellRow(report.model.cells[0] ?? emptyView)) as Array<keyof CellRow>;
  return [columns.join(','), ...rows.map((r) => columns.map((c) => field(r[c])).join(','))].map((l) => `${l}\r\n`).join('');
}

// The header must not depend on the run having cells; a skeleton cell gives the column names.
const emptyView = {
  host: '',
  threads: 0,
  fastest: false,
  cell: {
    id: '',
    engine: '',
    framework: '',
    mode: '',
    device: 'cpu',
    workload: 'cnn',
    preset: '',
    params: {},
    batchSize: 0,
    seed: 0,
    status: 'skipped',
    reason: null,
    flops: 0,
    startedAt: '',
    durationMs: 0,
  },
} as const satisfies Parameters<typeof cellRow>[0];

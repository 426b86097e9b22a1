import { csvReport } from './csv.js';
import { htmlReport } from './html.js';
import { jsonReport } from './json.js';
import { markdownReport } from './md.js';

export { buildReport } from './build.js';

/** Report formats: one writer per file in this folder. */
export const REPORT_FORMATS = { html: htmlReport, md: markdownReport, csv: csvReport, json: jsonReport } as const;
/** A report format name (also the file extension). */
export type ReportFormat = keyof typeof REPORT_FORMATS;

import { RUN_FLAGS, type RunFlagSpec, type RunFlagTable } from './flags.js';

/**
 * The reference of `fwbench run`'s flags in docs/cli.md, generated from the flags table
 * (harness/run/flags.ts) between two markers; `npm run docs` writes it, and a test checks that the
 * committed page is current.
 */

export const BEGIN = '<!-- run flags: generated from harness/run/flags.ts by `npm run docs`; edit the table there, not here -->';
export const END = '<!-- end of run flags -->';

/** Text for a Markdown table cell. */
const cell = (text: string): string => text.replace(/\|/g, '\\|');
const code = (text: string): string => `\`${text}\``;

/** The default as the reference shows it. */
function defaultText(f: RunFlagSpec): string {
  const d = f.default;
  if (!d) return '';
  if ('compute' in d) return d.doc;
  if (d.help !== undefined) return d.help;
  return Array.isArray(d.value) ? d.value.join(',') : String(d.value);
}

/** What a resume does with the flag: the run.json config fields it must match, or why it may differ. */
function resumeText(f: RunFlagSpec): string {
  const r = f.results;
  if ('field' in r) return code(r.field);
  if ('sets' in r) return r.sets.map(code).join(', ');
  return `free: ${r.none}`;
}

/** The flags of a table as a Markdown table. */
export function runFlagsReference(table: RunFlagTable = RUN_FLAGS): string {
  const rows = Object.entries(table).map(([name, f]) => {
    const flag = code(`--${name}${f.arg ? ` ${f.arg}` : ''}`);
    const key = f.file ? code(name) : 'command line only';
    return `| ${[flag, key, defaultText(f), resumeText(f), f.help].map(cell).join(' | ')} |`;
  });
  return ['| flag | config file key | default | resume must match (run.json config) | what it does |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** A page with its generated section (between BEGIN and END) replaced by the table's reference. */
export function withRunFlagsReference(page: string, table: RunFlagTable = RUN_FLAGS): string {
  const begin = page.indexOf(BEGIN);
  const end = page.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`the page has no section between '${BEGIN}' and '${END}'`);
  return `${page.slice(0, begin + BEGIN.length)}\n${runFlagsReference(table)}\n${page.slice(end)}`;
}

import { type Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { FLAG } from '../run/config.js';
import { escapeControl } from '../io/escape.js';
import { mergeRuns, writeMerged } from '../results/merge.js';
import { checkOutputDir, checkOutputFile, insideDir, writeOutputFile } from '../io/output.js';
import type { ReportFormat } from '../report/index.js';
import { loadRunWithCells } from '../results/read.js';

/**
 * The commands that read finished runs: report, compare, merge. They read only run.json files,
 * so they work on runs from any machine and any version of the engines. The report writers (and
 * the chart library under them) are loaded when a command needs them, so that every other
 * command, and every bad-input error, answers without loading them.
 */

/** The report formats (harness/report/index.ts REPORT_FORMATS has one writer for each). */
const FORMATS = ['html', 'md', 'csv', 'json'] as const satisfies readonly ReportFormat[];

const note = (text: string): void => void process.stderr.write(`fwbench: ${escapeControl(text)}\n`);

/** Writes to a file, or to stdout for '-' (hyperfine's convention), and says where on stderr. */
function emit(text: string, out: string, what: string): void {
  if (out === '-') {
    process.stdout.write(text);
    return;
  }
  writeOutputFile(out, text);
  process.stderr.write(`fwbench: wrote ${what} to ${resolve(out)} (${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB)\n`);
}

const THRESHOLD_OPTION = ['--threshold <pct>', 'noise threshold of the claim verdicts (percent)', FLAG.percent, 5] as const;
const CLAIMS_OPTION = ['--claims <file>', 'claims file (default: the bundled harness/report/claims.json)'] as const;

/** Adds `report`, `claims`, `compare` and `merge` to the program. */
export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('write a report of a run: self-contained HTML (charts, tables, claim verdicts), Markdown, CSV or JSON')
    .argument('<dir>', 'run folder (or its run.json)')
    .addOption(new Option('--format <format>', 'report format').choices(FORMATS).default('html'))
    .option('--out <file>', "output file, '-' for stdout (default: DIR/report.<format>)")
    .option(...THRESHOLD_OPTION)
    .option(...CLAIMS_OPTION)
    .option('--embed-samples', 'html: embed every raw sample (the whole run.json) in the page, not per-cell quantiles; the page grows with the samples (MBs)')
    .action(async (dir: string, o: { format: ReportFormat; out?: string; threshold: number; claims?: string; embedSamples?: boolean }) => {
      if (o.claims !== undefined && !existsSync(o.claims)) throw new InputError(`--claims ${o.claims}: no such file`);
      if (o.embedSamples && o.format !== 'html')
        throw new InputError(`--embed-samples: only --format html embeds the run (the ${o.format} report never carries raw samples)`);
      const out = o.out === undefined ? undefined : checkOutputFile(o.out, '--out');
      const run = loadRunWithCells(dir, note);
      const { buildReport, REPORT_FORMATS } = await import('../report/index.js');
      const report = buildReport(run, { thresholdPct: o.threshold, embedSamples: o.embedSamples ?? false, ...(o.claims ? { claimsPath: o.claims } : {}) });
      const runDir = dir.endsWith('.json') ? dirname(resolve(dir)) : dir;
      emit(REPORT_FORMATS[o.format](report), out ?? insideDir(runDir, `report.${o.format}`), `${o.format} report`);
    });

  program
    .command('claims')
    .description(
      "judge the PyTorch-vs-TensorFlow literature's claims on a run: per claim, task, workload and batch, the ratio with its 95 % interval and the verdict",
    )
    .argument('<dir>', 'run folder (or its run.json)')
    .option(...THRESHOLD_OPTION)
    .option(...CLAIMS_OPTION)
    .option('--json', 'print the verdicts as JSON')
    .action(async (dir: string, o: { threshold: number; claims?: string; json?: boolean }) => {
      if (o.claims !== undefined && !existsSync(o.claims)) throw new InputError(`--claims ${o.claims}: no such file`);
      const run = loadRunWithCells(dir, note);
      const { buildReport } = await import('../report/index.js');
      const { claimsText } = await import('../report/claims.js');
      const report = buildReport(run, { thresholdPct: o.threshold, embedSamples: false, ...(o.claims ? { claimsPath: o.claims } : {}) });
      process.stdout.write(o.json ? `${JSON.stringify(report.claims, null, 2)}\n` : claimsText(report.claims));
    });

  program
    .command('compare')
    .description('compare two runs cell by cell: ratio of medians B/A with a bootstrap 95% CI; exit 1 when some cell got slower beyond the threshold')
    .argument('<a>', 'baseline run folder (or run.json)')
    .argument('<b>', 'candidate run folder (or run.json)')
    .option('--threshold <pct>', 'noise threshold (percent): a change needs the whole CI beyond it', FLAG.percent, 5)
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'html']).default('text'))
    .option('--out <file>', "output file (default: stdout; '-' for stdout)", '-')
    .action(async (a: string, b: string, o: { threshold: number; format: 'text' | 'json' | 'html'; out: string }) => {
      checkOutputFile(o.out, '--out');
      const [runA, runB] = [loadRunWithCells(a, note), loadRunWithCells(b, note)];
      const { compareHtml, compareRuns, compareText } = await import('../report/compare.js');
      const c = compareRuns(runA, runB, { thresholdPct: o.threshold });
      emit(o.format === 'json' ? `${JSON.stringify(c, null, 2)}\n` : o.format === 'html' ? compareHtml(c) : compareText(c), o.out, `${o.format} comparison`);
      if (c.regressions > 0) process.exitCode = 1;
    });

  program
    .command('merge')
    .description('merge runs from several machines into one run (the host becomes a dimension; every cell is kept)')
    .argument('<dirs...>', 'run folders (or run.json files), plain or merged')
    .requiredOption('--out <dir>', 'output folder for the merged cells.jsonl and run.json')
    .action((dirs: string[], o: { out: string }) => {
      checkOutputDir(o.out, '--out');
      const merged = mergeRuns(
        dirs.map((d) => loadRunWithCells(d, note)),
        ['fwbench', ...process.argv.slice(2)],
        { note },
      );
      const path = writeMerged(merged, resolve(o.out));
      process.stderr.write(`fwbench: merged ${merged.cells.length} cells from ${merged.sources?.length ?? 1} runs into ${path}\n`);
    });
}

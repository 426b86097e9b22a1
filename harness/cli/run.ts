import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { progressHooks } from '../run/progress.js';
import type { RunConfig } from '../results/schema.js';
import { loadResume, requireResumeFolder, resumeConfig } from '../run/resume.js';
import { InterruptedBeforeStart, runMatrix } from '../run/execute.js';
import { planCells } from '../run/plan.js';
import { prlimitPath, stopAllWorkers } from '../run/workers.js';
import { answerBlock, contentionText, summaryTable } from '../report/summary.js';
import { waitForQuiet } from '../run/contention.js';
import { escapeControl } from '../io/escape.js';
import { lockFolder } from '../io/lock.js';
import { checkOutputDir, insideDir, writeOutputFile } from '../io/output.js';
import { DEFAULT_THRESHOLD_PCT } from '../report/verdict.js';
import { runSettings } from '../run/config.js';
import { runOptions } from '../run/flags.js';
import { EXIT } from './program.js';

/** How `fwbench run` ended; the CLI maps it to an exit code (0, 1, 130, 143). */
export type RunEnd = 'ok' | 'cellsFailed' | 'SIGINT' | 'SIGTERM';

/** What `fwbench run` was asked, beyond the configuration. */
export interface RunRequest {
  /** `--out`: a new run's folder. */
  out: string;
  /** `--resume DIR`: the run to continue. */
  resume?: string;
  /** Commander names of the options given on the command line (not defaulted), to check a resume against. */
  explicitOptions: string[];
  /** `--json`: print run.json on stdout. */
  json?: boolean;
  /** `--wait-idle`: wait at most this many seconds for a quiet machine before the first cell. */
  waitIdleS?: number;
  /** The command line, recorded in run.json. */
  command: string[];
}

/**
 * Runs (or resumes) the matrix with SIGINT/SIGTERM handled: the first signal stops every worker
 * and keeps a valid partial run (run.json state `interrupted`, every finished cell) and says how
 * to continue; a second one quits at once (cells.jsonl still holds every finished cell).
 */
export async function runCommand(given: RunConfig, req: RunRequest): Promise<RunEnd> {
  const warn = (t: string): boolean => process.stderr.write(`fwbench: ${escapeControl(t)}\n`);
  if (req.resume && req.explicitOptions.includes('out')) throw new InputError('--resume DIR continues the run in DIR: leave --out out');
  if (req.resume) requireResumeFolder(req.resume);
  // The lock comes first: a second run or resume of this folder is refused before it reads or writes
  // anything (a run that has not yet written its run.json is still named as the folder's writer).
  const release = lockFolder(req.resume ?? req.out, req.command, warn);
  try {
    if (!req.resume && ['run.json', 'cells.jsonl'].some((f) => existsSync(join(req.out, f))))
      throw new InputError(`${req.out} already holds a run: continue it with --resume ${req.out}, or choose another --out`);
    return await runLocked(given, req, warn);
  } finally {
    release();
  }
}

async function runLocked(given: RunConfig, req: RunRequest, warn: (t: string) => boolean): Promise<RunEnd> {
  const resume = req.resume ? loadResume(req.resume, warn) : undefined;
  const config = resume ? resumeConfig(req.resume!, resume.run.config, given, req.explicitOptions) : given;
  if (config.maxMemoryMb && !prlimitPath()) throw new InputError('--max-memory-mb needs prlimit (util-linux), which is not on PATH');
  const outDir = req.resume ?? req.out;
  if (resume) warn(`resuming ${outDir}: ${resume.cells.length} cells already finished (run state ${resume.run.state ?? 'complete'})`);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      warn(`${signal} again: quitting now; every finished cell is in ${outDir}/cells.jsonl. Continue with: fwbench run --resume ${outDir}`);
      stopAllWorkers(true);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    warn(`${signal}: stopping the workers and keeping every finished cell (${signal} again to quit at once)`);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (req.waitIdleS !== undefined) await waitForQuiet(req.waitIdleS, warn, controller.signal);
    const run = await runMatrix(config, outDir, req.command, progressHooks(), { signal: controller.signal, ...(resume ? { resume } : {}) });
    if (run.state === 'interrupted') {
      warn(
        `interrupted by ${run.interruption?.signal}: ${run.cells.length} of ${planCells(run.config).length} cells finished and kept in ${outDir} (run.json state "interrupted"). Continue with: fwbench run --resume ${outDir}`,
      );
      return run.interruption?.signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    }
    // The HTML report is written beside run.json, and the run ends with its opening answer in words.
    const { buildReport, REPORT_FORMATS } = await import('../report/index.js');
    const report = buildReport(run, { thresholdPct: DEFAULT_THRESHOLD_PCT });
    const reportPath = insideDir(outDir, 'report.html');
    writeOutputFile(reportPath, REPORT_FORMATS.html(report));
    const busy = contentionText(run);
    if (req.json) {
      process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
      if (busy) warn(busy);
      warn(`report: ${reportPath}`);
    } else
      process.stdout.write(
        `${summaryTable(run)}${answerBlock(run, report.model)}${busy ? `${busy}\n` : ''}Report:  ${reportPath}\nResults: ${outDir}/run.json\n`,
      );
    // An unstable cell is a busy machine, not a broken engine: said in the answer and above, exit 0.
    return run.cells.some((c) => c.status === 'failed' || c.status === 'parity-failed') ? 'cellsFailed' : 'ok';
  } catch (e) {
    if (!(e instanceof InterruptedBeforeStart)) throw e;
    warn(e.message);
    return e.signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Adds `fwbench run` (its flags, from the run-flag table, and the action that runs the matrix) to `program`. */
export function registerRunCommand(program: Command): Command {
  const run = program.command('run').description('run the benchmark matrix (engines x workloads x batch sizes); each cell in its own process');
  for (const option of runOptions()) run.addOption(option);
  return run.action(async (o: Record<string, unknown>, cmd: Command) => {
    const { config, out, json, waitIdleS, given } = await runSettings(o, (key) => cmd.getOptionValueSource(key) === 'cli');
    const resume = typeof o.resume === 'string' ? { resume: resolve(checkOutputDir(o.resume, '--resume')) } : {};
    const wait = waitIdleS === undefined ? {} : { waitIdleS };
    const end = await runCommand(config, {
      out: resolve(out),
      ...resume,
      ...wait,
      explicitOptions: given,
      json,
      command: ['fwbench', ...process.argv.slice(2)],
    });
    process.exitCode = EXIT[end];
  });
}

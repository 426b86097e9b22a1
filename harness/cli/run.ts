import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FAMILY_NAMES, parseSetText, SIZES } from '../../workloads/index.js';
import { DEFAULT_ENGINES, ENGINES } from '../engines/registry.js';
import { DEVICES, ENGINE_IDS } from '../engines/types.js';
import { InputError } from '../errors.js';
import { progressHooks } from '../run/progress.js';
import type { RunConfig } from '../results/schema.js';
import { loadResume, requireResumeFolder, resumeConfig } from '../run/resume.js';
import { InterruptedBeforeStart, runMatrix } from '../run/execute.js';
import { planCells } from '../run/plan.js';
import { prlimitPath, stopAllWorkers } from '../run/workers.js';
import { answerBlock, summaryTable } from '../report/summary.js';
import { escapeControl } from '../io/escape.js';
import { lockFolder } from '../io/lock.js';
import { checkOutputDir, insideDir, writeOutputFile } from '../io/output.js';
import { DEFAULT_THRESHOLD_PCT } from '../report/verdict.js';
import { PRESET_NAMES, PRESET_PER_FAMILY_EXAMPLE, runFlag, runSettings } from '../run/config.js';
import { DEFAULT_MEASURE, PRESET_REPLICATES, QUICK_MEASURE, RIGOROUS_MEASURE } from '../worker/measure.js';
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
    if (req.json) {
      process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
      warn(`report: ${reportPath}`);
    } else process.stdout.write(`${summaryTable(run)}${answerBlock(run, report.model)}Report:  ${reportPath}\nResults: ${outDir}/run.json\n`);
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

/** Adds `fwbench run` (its flags, and the action that runs the matrix) to `program`. */
export function registerRunCommand(program: Command): Command {
  return program
    .command('run')
    .description('run the benchmark matrix (engines x workloads x batch sizes); each cell in its own process')
    .option(
      '--config <file>',
      'YAML or JSON file whose keys are these flags without dashes (engines: [onnxruntime], batch-sizes: [1, 8], target-interval: 1); flags given here override it',
    )
    .addOption(
      new Option('--engines <list>', `comma-separated engines (${ENGINE_IDS.join(', ')})`)
        .argParser(runFlag('engines'))
        .default(DEFAULT_ENGINES, `every engine available here but ${ENGINE_IDS.filter((id) => !DEFAULT_ENGINES.includes(id)).join(', ')}`),
    )
    .option('--workloads <list>', `comma-separated workloads (${FAMILY_NAMES.join(', ')})`, runFlag('workloads'), [...FAMILY_NAMES])
    .option(
      '--modes <list>',
      `comma-separated execution modes (e.g. eager,compile), or 'all' for every mode of every engine; default: ${ENGINE_IDS.filter(
        (id) => ENGINES[id].defaultModes,
      )
        .map((id) => `${ENGINES[id].defaultModes!.join(' and ')} of ${id}`)
        .join(', ')}, the first mode of the others; an engine with none of the listed modes runs its first`,
      runFlag('modes'),
    )
    .option(
      '--preset <presets>',
      `preset of every workload (${PRESET_NAMES.join(', ')}), or one per workload (${PRESET_PER_FAMILY_EXAMPLE}); workloads it does not name take their --size preset`,
      runFlag('preset'),
    )
    .option(
      '--size <class>',
      `size class of every workload's preset (${SIZES.join(', ')}); default small (${PRESET_PER_FAMILY_EXAMPLE}), tiny with --quick`,
      runFlag('size'),
    )
    .addOption(new Option('--batch-sizes <list>', 'comma-separated batch sizes').argParser(runFlag('batch-sizes')).default([1, 8], '1,8; 1 with --quick'))
    .option('--out <dir>', 'output folder for cells.jsonl and run.json', runFlag('out'), `results/run-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    .option(
      '--set <key=value,...>',
      'override workload parameters, e.g. seq=37,hidden=96,heads=3 (list values continue after commas: depths=1,1,2,1)',
      (v: string, prev: Array<[string, string]>) => [...prev, ...parseSetText(v)],
      [] as Array<[string, string]>,
    )
    .option('--device <device>', `device for every cell (${DEVICES.join(', ')})`, runFlag('device'), 'cpu')
    .option(
      '--threads <list>',
      'intra-op threads, or a comma-separated list to sweep (each count is a matrix dimension: every cell runs at each); default: physical cores, capped at the CPUs allowed',
      runFlag('threads'),
    )
    .option('--seed <n>', 'seed of weights and inputs', runFlag('seed'), 0)
    .option(
      '--quick',
      `smoke run: --size tiny and batch 1 unless given, measured with ±${QUICK_MEASURE.targetInterval * 100} % target, >= ${QUICK_MEASURE.minSamples} samples, ${QUICK_MEASURE.minTimeMs}-${QUICK_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.quick} process per cell`,
    )
    .option(
      '--rigorous',
      `measurement preset: ±${RIGOROUS_MEASURE.targetInterval * 100} % target, >= ${RIGOROUS_MEASURE.minSamples} samples (p99), ${RIGOROUS_MEASURE.minTimeMs}-${RIGOROUS_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.rigorous} processes per cell`,
    )
    .option(
      '--target-interval <pct>',
      `stop once the 95 % interval of the median is within ±PCT % of it (default ${DEFAULT_MEASURE.targetInterval * 100}; 0 = run to --max-time)`,
      runFlag('target-interval'),
    )
    .option('--replicates <n>', `fresh worker processes per cell, interleaved across cells (default ${PRESET_REPLICATES.default})`, runFlag('replicates'))
    .option(
      '--min-samples <n>',
      `timed loop: at least this many samples (default ${DEFAULT_MEASURE.minSamples}: p90 needs 64, p99 662)`,
      runFlag('min-samples'),
    )
    .option('--min-time <ms>', `timed loop: at least this long (ms, default ${DEFAULT_MEASURE.minTimeMs})`, runFlag('min-time'))
    .option('--max-time <ms>', `timed loop: at most this long (ms, default ${DEFAULT_MEASURE.maxTimeMs})`, runFlag('max-time'))
    .option('--warmup-max-time <ms>', `warm-up: at most this long (ms, default ${DEFAULT_MEASURE.warmupMaxMs})`, runFlag('warmup-max-time'))
    .option('--timeout <s>', "kill a cell's worker after this many seconds", runFlag('timeout'), 600)
    .option('--json', 'print run.json on stdout instead of the summary table')
    .option(
      '--resume <dir>',
      'continue the interrupted or killed run in DIR: run only its missing cells, with its configuration (flags given again must match it)',
    )
    .option(
      '--max-memory-mb <n>',
      "cap each cell worker's private memory (RLIMIT_DATA via prlimit; Node workers also get V8's heap limit); running past it is an out-of-memory cell, and a batch-size sweep stops there",
      runFlag('max-memory-mb'),
    )
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const { config, out, json, given } = await runSettings(o, (key) => cmd.getOptionValueSource(key) === 'cli');
      const resume = typeof o.resume === 'string' ? { resume: resolve(checkOutputDir(o.resume, '--resume')) } : {};
      const end = await runCommand(config, { out: resolve(out), ...resume, explicitOptions: given, json, command: ['fwbench', ...process.argv.slice(2)] });
      process.exitCode = EXIT[end];
    });
}

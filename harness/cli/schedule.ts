import { type Command, InvalidArgumentError, Option } from 'commander';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { escapeControl } from '../io/escape.js';
import { lockFolder } from '../io/lock.js';
import { ownFolder } from '../io/output.js';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { newProgram } from './program.js';
import { registerRunCommand } from './run.js';
import { FLAG, runSettings } from '../run/config.js';
import { mergeRuns, writeMerged } from '../results/merge.js';
import { loadRunWithCells } from '../results/read.js';
import type { Run, RunConfig } from '../results/schema.js';
import { summaryTable } from '../report/summary.js';
import { k8s } from '../schedule/k8s.js';
import {
  readState,
  requireClients,
  SCHEDULERS,
  shJoin,
  splitJobs,
  SPLITS,
  STATE_FILE,
  writeState,
  type Job,
  type JobStatus,
  ScheduleOptionsSchema,
  type ScheduleOptions,
  type ScheduleState,
  type Scheduler,
  type SchedulerName,
} from '../schedule/plan.js';
import { skypilot } from '../schedule/skypilot.js';
import { slurm } from '../schedule/slurm.js';
import { ssh } from '../schedule/ssh.js';

/**
 * `fwbench schedule` (split the matrix into jobs, render the scheduler's native spec, submit it
 * with the scheduler's own client, record what was submitted) and `fwbench collect` (wait for the
 * jobs, fetch their results, merge them into one run).
 */

/** Every scheduler, by the name `--on` takes. */
export const SCHEDULER_IMPLS: Record<SchedulerName, Scheduler> = { slurm, k8s, skypilot, ssh };

/** Options every scheduler takes; the others belong to the schedulers that list them. */
const COMMON_OPTIONS = new Set<keyof ScheduleOptions>(['on', 'split', 'image', 'gpus']);
const FLAG_OF: Partial<Record<keyof ScheduleOptions, string>> = {
  resultsDir: '--results-dir',
  gpuType: '--gpu-type',
  pvcSize: '--pvc-size',
  sshConfig: '--ssh-config',
};
const flagOf = (k: keyof ScheduleOptions): string => FLAG_OF[k] ?? `--${k}`;

const hostList = (text: string): string[] => {
  const hosts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (hosts.length === 0) throw new InvalidArgumentError('empty host list; give user@host[,user@host...]');
  return [...new Set(hosts)];
};

/**
 * Parses the run flags with `fwbench run`'s own parser and checks (a typo must not cost a queue
 * wait): a fresh program with only the `run` command, whose action only builds the validated
 * configuration.
 */
async function checkRunFlags(flags: string[]): Promise<RunConfig> {
  const program = newProgram();
  const run = registerRunCommand(program);
  let config: RunConfig | undefined;
  run.action(async (o: Record<string, unknown>) => {
    if (run.getOptionValueSource('out') === 'cli')
      throw new InputError('--out in the run flags: schedule decides where each job writes (--results-dir), and collect where the merged run goes (--out)');
    // The job would read the file on the remote machine, where it does not exist.
    if (run.getOptionValueSource('config') === 'cli')
      throw new InputError('--config in the run flags: a job cannot read a local config file; give its settings as run flags after --');
    config = (await runSettings(o, (key) => run.getOptionValueSource(key) === 'cli')).config;
  });
  program.exitOverride();
  run.exitOverride();
  run.configureOutput({ outputError: (s, write) => write(`fwbench schedule: in the run flags after --: ${s.replace(/^error: /, '')}`) });
  await program.parseAsync(['run', ...flags], { from: 'user' });
  if (!config) throw new InputError('the run flags after -- did not parse to a run');
  return config;
}

const scheduleId = (): string =>
  new Date()
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');

const progress = (line: string): void => void process.stderr.write(`fwbench: ${line.split('\n').map(escapeControl).join('\n')}\n`);

interface ScheduleFlags {
  on: SchedulerName;
  split: 'host' | 'engine';
  hosts?: string[];
  out?: string;
  resultsDir?: string;
  image?: string;
  workdir?: string;
  gpus?: number;
  gpuType?: string;
  container?: 'pyxis' | 'apptainer';
  partition?: string;
  time?: string;
  cpus?: number;
  mem?: string;
  namespace?: string;
  pvc?: string;
  pvcSize: string;
  cloud?: string;
  sshConfig?: string;
  dryRun?: boolean;
}

async function schedule(runFlags: string[], f: ScheduleFlags, cmd: Command): Promise<void> {
  const impl = SCHEDULER_IMPLS[f.on];
  const allowed = new Set([...COMMON_OPTIONS, ...impl.options]);
  for (const key of [
    'hosts',
    'workdir',
    'gpuType',
    'container',
    'partition',
    'time',
    'cpus',
    'mem',
    'namespace',
    'pvc',
    'pvcSize',
    'cloud',
    'sshConfig',
    'resultsDir',
  ] as const) {
    if (cmd.getOptionValueSource(key) === 'cli' && !allowed.has(key)) {
      throw new InputError(
        `${flagOf(key)} does not apply to --on ${f.on}; its options: ${[...impl.options].map(flagOf).join(', ')}, and ${[...COMMON_OPTIONS]
          .filter((k) => k !== 'on')
          .map(flagOf)
          .join(', ')}`,
      );
    }
  }
  if (runFlags.length === 0) progress('no run flags after --: every job runs the default matrix');
  const config = await checkRunFlags(runFlags);
  // GPUs reserved for a run that measures only the CPU would be paid for and left idle.
  if (f.gpus && config.device !== 'cuda')
    throw new InputError(
      `--gpus ${f.gpus} but the run flags select no GPU device (--device ${config.device}): add --device cuda to the run flags after -- (or drop --gpus)`,
    );
  if (config.device === 'cuda' && !f.gpus && f.on !== 'ssh')
    progress('warning: the run asks --device cuda but no --gpus: the job may land on a machine without a GPU');

  const id = scheduleId();
  const dir = resolve(f.out ?? join('results', `schedule-${id}`));
  if (existsSync(join(dir, STATE_FILE))) throw new InputError(`${join(dir, STATE_FILE)} exists: schedule writes into a new or empty folder`);
  const { out: _out, dryRun: _dryRun, hosts, resultsDir, sshConfig, ...rest } = f;
  const options = ScheduleOptionsSchema.parse({
    ...rest,
    hosts: hosts ?? [],
    resultsDir: resultsDir ?? impl.defaultResultsDir(id, dir),
    ...(sshConfig ? { sshConfig: resolve(sshConfig) } : {}),
  });
  impl.check(options);
  if (!f.dryRun) requireClients(impl.clients.submit, `--on ${f.on}`);
  mkdirSync(dir, { recursive: true });
  const state: ScheduleState = {
    stateVersion: 1,
    id,
    createdAt: new Date().toISOString(),
    dryRun: !!f.dryRun,
    options,
    specFiles: [],
    submitCommands: [],
    jobs: splitJobs(options, config.engines, runFlags),
  };
  const { files, submitCommands } = impl.render(state, dir);
  for (const file of files) {
    writeFileAtomic(join(dir, file.name), file.text);
    if (file.executable) chmodSync(join(dir, file.name), 0o755);
  }
  state.specFiles = files.map((x) => x.name);
  state.submitCommands = submitCommands;
  const commands = submitCommands.map((c) => `  (cd ${dir} && ${shJoin(c.argv)}${c.stdinFile ? ` < ${c.stdinFile}` : ''})`);
  if (f.dryRun) {
    const path = writeState(dir, state);
    progress(
      `dry run: wrote ${state.specFiles.join(', ')} for ${state.jobs.length} job(s) (${state.jobs.map((j) => j.name).join(', ')}) and ${path}; nothing submitted. Submit with:\n${commands.join('\n')}`,
    );
    process.stdout.write(`${files.map((x) => join(dir, x.name)).join('\n')}\n`);
    return;
  }
  progress(`submitting ${state.jobs.length} job(s) to ${f.on}:\n${commands.join('\n')}`);
  // The state is rewritten as each job gets its id, so a failure part-way loses none that started.
  const record = (job: Job): void => {
    state.jobs = state.jobs.map((j) => (j.name === job.name ? job : j));
    writeState(dir, state);
  };
  try {
    await impl.submit(state, dir, record);
  } catch (e) {
    const n = state.jobs.filter((j) => j.submittedId).length;
    progress(`submission failed: ${(e as Error).message}`);
    if (n > 0)
      progress(
        `${n} of ${state.jobs.length} job(s) were submitted before that; ${writeState(dir, state)} records them and fwbench collect ${dir} collects them`,
      );
    process.exitCode = 1;
    return;
  }
  const path = writeState(dir, state);
  progress(
    `submitted ${state.jobs.map((j) => `${j.name} (${j.submittedId})`).join(', ')}; results land in ${options.resultsDir}${f.on === 'slurm' ? '' : ` on ${f.on === 'ssh' ? 'the hosts' : f.on === 'k8s' ? 'the claims' : 'the clusters'}`}`,
  );
  progress(`collect with: fwbench collect ${dir}`);
  process.stdout.write(`${path}\n`);
}

/** A job as collect names it: its name and the scheduler's id. */
const label = (job: Job): string => `${job.name} (${job.submittedId ?? 'not submitted'})`;

/** The files a collect writes into its default merged/ folder (merge: cells.jsonl, run.json; report: report.*), the only ones a later collect removes. */
const MERGED_FILES = ['cells.jsonl', 'run.json', 'report.html', 'report.md', 'report.csv', 'report.json'];

interface CollectFlags {
  out?: string;
  poll: number;
  timeout?: number;
  wait: boolean;
}

/** How many failed polls in a row make a job failed: a scheduler restarting or a network blip should not. */
const POLL_ATTEMPTS = 30;

async function collect(target: string, f: CollectFlags): Promise<void> {
  const { state, dir } = readState(resolve(target));
  // collect writes collected/ and merged/ here: one collect of a schedule at a time.
  const release = lockFolder(dir, ['fwbench', ...process.argv.slice(2)], progress);
  try {
    await collectLocked(state, dir, f);
  } finally {
    release();
  }
}

async function collectLocked(state: ScheduleState, dir: string, f: CollectFlags): Promise<void> {
  // Checked before any waiting: collect deletes inside these two folders, so neither may be a link elsewhere.
  const localRoot = ownFolder(join(dir, 'collected'));
  const defaultOut = ownFolder(join(dir, 'merged'));
  const out = resolve(f.out ?? defaultOut);
  if (state.dryRun)
    throw new InputError(
      `${join(dir, STATE_FILE)} is from a dry run: nothing was submitted (submit the spec files yourself, or run schedule without --dry-run)`,
    );
  const impl = SCHEDULER_IMPLS[state.options.on];
  requireClients(impl.clients.collect, `collect for ${state.options.on}`);
  const status = new Map<string, JobStatus>();
  const pollErrors = new Map<string, number>();
  const started = Date.now();
  for (;;) {
    for (const job of state.jobs) {
      if (status.get(job.name)?.state === 'done') continue;
      if (!job.submittedId) {
        status.set(job.name, { state: 'done', ok: false, detail: 'never submitted (its submission failed)' });
        continue;
      }
      let s: JobStatus;
      try {
        s = await impl.poll(state, job, dir);
        pollErrors.delete(job.name);
      } catch (e) {
        const n = (pollErrors.get(job.name) ?? 0) + 1;
        pollErrors.set(job.name, n);
        s =
          n >= POLL_ATTEMPTS
            ? { state: 'done', ok: false, detail: `cannot ask ${state.options.on}: ${(e as Error).message}` }
            : {
                state: status.get(job.name)?.state === 'running' ? 'running' : 'pending',
                detail: `asking ${state.options.on} failed (${(e as Error).message}); will ask again`,
              };
      }
      const before = status.get(job.name);
      if (!before || before.state !== s.state || before.detail !== s.detail)
        progress(`job ${label(job)}: ${s.state === 'done' ? (s.ok ? 'done' : 'FAILED') : s.state} — ${s.detail}`);
      status.set(job.name, s);
    }
    const open = state.jobs.filter((j) => status.get(j.name)?.state !== 'done');
    if (open.length === 0 || !f.wait) break;
    if (f.timeout !== undefined && Date.now() - started > f.timeout * 1000) {
      progress(`gave up waiting after ${f.timeout} s for ${open.map((j) => j.name).join(', ')}`);
      break;
    }
    await new Promise((r) => setTimeout(r, f.poll * 1000));
  }

  const runs: Run[] = [];
  const problems: string[] = [];
  for (const job of state.jobs) {
    const s = status.get(job.name)!;
    if (s.state !== 'done') {
      problems.push(`${label(job)}: still ${s.state}; run collect again later`);
      continue;
    }
    if (!s.ok) problems.push(`${label(job)}: ${s.detail}`);
    try {
      const local = await impl.fetch(state, job, localRoot);
      runs.push(loadRunWithCells(join(local, 'run'), progress));
    } catch (e) {
      // A failed job may have written no run at all; its reason is already listed.
      if (s.ok) problems.push(`${label(job)}: ${(e as Error).message}`);
      else progress(`job ${job.name}: no results to merge (${(e as Error).message})`);
    }
  }
  for (const p of problems) progress(`job ${p}`);
  if (runs.length === 0) {
    progress(`no job of ${join(dir, STATE_FILE)} produced a run to merge`);
    process.exitCode = 1;
    return;
  }
  // The default folder is collect's own: a later collect replaces the files it wrote there (and nothing else) with the newer picture.
  if (out === defaultOut) for (const name of MERGED_FILES) rmSync(join(out, name), { force: true });
  // Jobs split by engine ran one engine each on machines of one kind: compare them side by side.
  const merged = mergeRuns(runs, ['fwbench', ...process.argv.slice(2)], { sameFingerprintSameHost: state.options.split === 'engine', note: progress });
  const path = writeMerged(merged, out);
  process.stdout.write(`${summaryTable(merged)}Results: ${path}\n`);
  progress(`merged ${merged.cells.length} cells from ${runs.length} of ${state.jobs.length} job(s) into ${path}; report with: fwbench report ${out}`);
  if (problems.length > 0 || merged.cells.some((c) => c.status === 'failed' || c.status === 'parity-failed')) process.exitCode = 1;
}

/** Adds `schedule` and `collect` to the program. */
export function registerScheduleCommands(program: Command): void {
  program
    .command('schedule')
    .description(
      'split the matrix into jobs and submit them to Slurm, Kubernetes, SkyPilot or hosts over ssh (or only write the specs with --dry-run); run flags follow --',
    )
    .usage('--on <scheduler> [options] -- [run flags]')
    .argument('[runFlags...]', 'flags of fwbench run, after --')
    .addOption(new Option('--on <scheduler>', 'scheduler').choices([...SCHEDULERS]).makeOptionMandatory())
    .addOption(new Option('--split <how>', 'one job per host (the whole matrix on each), or one per engine').choices([...SPLITS]).default('host'))
    .option('--hosts <list>', 'ssh: comma-separated destinations (user@host or Host aliases of the ssh config)', hostList)
    .option('--out <dir>', 'folder for the spec files and state.json (default: results/schedule-<id>)')
    .option(
      '--results-dir <path>',
      'where jobs write on the machines that run them (slurm: a shared-filesystem path, default <out>/results; ssh, skypilot: default fwbench-results/<id> under the home folder)',
    )
    .option('--image <ref>', 'container image with fwbench (see the Dockerfile); without it jobs run a checkout')
    .option(
      '--workdir <path>',
      'slurm, ssh: the fwbench checkout on the machines (slurm default: this checkout); skypilot: the local checkout to sync (default: this one)',
    )
    .option('--gpus <n>', 'GPUs per job', FLAG.positiveInt)
    .option('--gpu-type <name>', 'slurm: gres type; skypilot: accelerator (H100, A100-80GB, L4, ...)')
    .addOption(new Option('--container <runtime>', 'slurm: how to run --image').choices(['pyxis', 'apptainer']))
    .option('--partition <name>', 'slurm: partition')
    .option('--time <limit>', 'slurm: time limit (MINUTES, HH:MM:SS or D-HH:MM:SS)')
    .option(
      '--cpus <n>',
      'slurm, k8s, skypilot: CPUs per job (slurm without it: a whole node per job, --exclusive, so no job times its neighbour)',
      FLAG.positiveInt,
    )
    .option('--mem <size>', 'slurm (16G), k8s (16Gi), skypilot (GB, 16 or 16+): memory per job')
    .option('--namespace <ns>', 'k8s: namespace')
    .option('--pvc <claim>', 'k8s: existing PersistentVolumeClaim for the results (default: one new claim per job)')
    .option('--pvc-size <size>', 'k8s: size of the claims fwbench creates', '1Gi')
    .option('--cloud <name>', 'skypilot: cloud (aws, gcp, azure, kubernetes, ...)')
    .option('--ssh-config <file>', 'ssh: ssh client config (-F) for ssh and scp')
    .option('--dry-run', 'write the specs and state.json, print the submit commands, submit nothing')
    .action(async (runFlags: string[], f: ScheduleFlags, cmd: Command) => schedule(runFlags, f, cmd));

  program
    .command('collect')
    .description('wait for the jobs of a schedule, fetch their results and merge them into one run (then: fwbench report)')
    .argument('<state>', 'the folder fwbench schedule wrote (or its state.json)')
    .option('--out <dir>', 'folder for the merged run (default: <state folder>/merged)')
    .option('--poll <s>', 'seconds between polls', FLAG.positiveInt, 10)
    .option('--timeout <s>', 'stop waiting after this many seconds and merge what finished', FLAG.positiveInt)
    .option('--no-wait', 'poll once and merge what has finished')
    .action(async (target: string, f: CollectFlags) => collect(target, f));
}

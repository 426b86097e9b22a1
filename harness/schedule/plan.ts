import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { delimiter, join, posix } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';

/**
 * What every scheduler shares: the options of `fwbench schedule`, how the matrix is split into
 * jobs, the state file that `fwbench collect` reads, and the one interface each scheduler file
 * (slurm.ts, k8s.ts, skypilot.ts, ssh.ts) implements.
 */

/** The schedulers fwbench speaks to, each through its own client. */
export const SCHEDULERS = ['slurm', 'k8s', 'skypilot', 'ssh'] as const;
/** One of SCHEDULERS. */
export type SchedulerName = (typeof SCHEDULERS)[number];

/** How the matrix becomes jobs: one whole-matrix job per host, or one job per engine (and host). */
export const SPLITS = ['host', 'engine'] as const;

/** Options of `fwbench schedule` that outlive the submission (collect needs several of them). */
export const ScheduleOptionsSchema = z.object({
  /** The scheduler. */
  on: z.enum(SCHEDULERS),
  /** How the matrix is split into jobs. */
  split: z.enum(SPLITS),
  /** ssh destinations (user@host or a Host alias of the ssh config); one job per host. */
  hosts: z.array(z.string()),
  /** Container image that holds fwbench (built from the Dockerfile); without it the job runs a checkout. */
  image: z.string().optional(),
  /** fwbench checkout on the machine that runs the job (Slurm, ssh) or the local folder SkyPilot syncs. */
  workdir: z.string().optional(),
  /** Root folder of the jobs' results on the machines that run them. */
  resultsDir: z.string(),
  /** GPUs per job. */
  gpus: z.number().int().positive().optional(),
  /** GPU model (Slurm gres type, SkyPilot accelerator name). */
  gpuType: z.string().optional(),
  /** Slurm container runtime for --image: pyxis/enroot (`srun --container-image`) or apptainer. */
  container: z.enum(['pyxis', 'apptainer']).optional(),
  /** Slurm partition. */
  partition: z.string().optional(),
  /** Slurm time limit (HH:MM:SS, or D-HH:MM:SS). */
  time: z.string().optional(),
  /** CPUs per job. */
  cpus: z.number().int().positive().optional(),
  /** Memory per job (Slurm: 16G; Kubernetes: 16Gi; SkyPilot: 16 or 16+, in GB). */
  mem: z.string().optional(),
  /** Kubernetes namespace. */
  namespace: z.string().optional(),
  /** Existing PersistentVolumeClaim for the results (default: one claim per job, created with the Job). */
  pvc: z.string().optional(),
  /** Size of the claims fwbench creates. */
  pvcSize: z.string(),
  /** SkyPilot cloud. */
  cloud: z.string().optional(),
  /** ssh client config file (-F) for ssh and scp. */
  sshConfig: z.string().optional(),
});
/** Validated options of `fwbench schedule`. */
export type ScheduleOptions = z.infer<typeof ScheduleOptionsSchema>;

/** One job: one `fwbench run` on one machine. */
export const JobSchema = z.object({
  /** Unique within the schedule, usable in DNS names (Kubernetes, SkyPilot clusters). */
  name: z.string(),
  /** ssh destination, for ssh jobs. */
  host: z.string().optional(),
  /** Engines this job runs. */
  engines: z.array(z.string()),
  /** Arguments of the job's fwbench, from `run` on, without --out (each scheduler adds where results go). */
  runArgs: z.array(z.string()),
  /** The job's folder on the machine that runs it: run/ (the fwbench run), exit-code, log. */
  dir: z.string(),
  /** The scheduler's id of the job, once submitted (Slurm array task, Kubernetes Job, SkyPilot cluster, ssh host:pid). */
  submittedId: z.string().optional(),
});
/** One job of a schedule. */
export type Job = z.infer<typeof JobSchema>;

/** A client command line, with the spec file it reads on stdin if any. */
export const SubmitCommandSchema = z.object({
  /** Program and arguments (spawned without a shell). */
  argv: z.array(z.string()),
  /** Spec file (in the schedule folder) given on stdin. */
  stdinFile: z.string().optional(),
});
/** A client command line. */
export type SubmitCommand = z.infer<typeof SubmitCommandSchema>;

/** The state file `fwbench schedule` writes and `fwbench collect` reads. */
export const StateSchema = z.object({
  /** Version of this file's layout. */
  stateVersion: z.literal(1),
  /** Schedule id (names the jobs). */
  id: z.string(),
  /** When it was scheduled (ISO 8601). */
  createdAt: z.string(),
  /** Only written, not submitted. */
  dryRun: z.boolean(),
  /** The schedule's options. */
  options: ScheduleOptionsSchema,
  /** Spec files written next to the state file. */
  specFiles: z.array(z.string()),
  /** The client commands that submit the specs (run in the state file's folder). */
  submitCommands: z.array(SubmitCommandSchema),
  /** The jobs. */
  jobs: z.array(JobSchema),
});
/** A schedule's state. */
export type ScheduleState = z.infer<typeof StateSchema>;

/** A file a scheduler renders (job script, manifest, task YAML). */
export interface SpecFile {
  /** File name inside the schedule folder. */
  name: string;
  /** Contents. */
  text: string;
  /** Mark executable (scripts). */
  executable?: boolean;
}

/** Where a job stands. */
export type JobStatus = { state: 'pending' | 'running'; detail: string } | { state: 'done'; ok: boolean; detail: string };

/** Each scheduler file implements this. */
export interface Scheduler {
  /** Programs the scheduler's client needs on PATH: to submit, and to collect. */
  clients: { submit: readonly string[]; collect: readonly string[] };
  /** Options of `fwbench schedule` this scheduler takes besides the common ones. */
  options: ReadonlyArray<keyof ScheduleOptions>;
  /** Checks combinations of options (one-line InputError). */
  check(o: ScheduleOptions): void;
  /** The default root folder of the results on the machines that run the jobs. */
  defaultResultsDir(id: string, scheduleDir: string): string;
  /** Renders the native spec files and the client commands that would submit them. */
  render(state: ScheduleState, scheduleDir: string): { files: SpecFile[]; submitCommands: SubmitCommand[] };
  /** Submits through the scheduler's client, calling `submitted` with each job and its id as soon as it has one. */
  submit(state: ScheduleState, scheduleDir: string, submitted: (job: Job) => void): Promise<void>;
  /** Asks the scheduler's client where a job stands. */
  poll(state: ScheduleState, job: Job, scheduleDir: string): Promise<JobStatus>;
  /** Brings a finished job's folder (run/, exit-code, log) to this machine; returns the local folder. */
  fetch(state: ScheduleState, job: Job, localDir: string): Promise<string>;
}

/** DNS-1123 label piece: lowercase letters, digits and '-'. */
export const dnsName = (text: string): string =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '') || 'job';

/** Removes every occurrence of a long option and its value (`--x v` or `--x=v`) from argv. */
export function withoutOption(args: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === name) i++;
    else if (!a.startsWith(`${name}=`)) out.push(a);
  }
  return out;
}

/** Splits the matrix into jobs: per host (ssh hosts; one machine for the cluster schedulers) and, with --split engine, per engine. */
export function splitJobs(o: ScheduleOptions, engines: readonly string[], runFlags: readonly string[]): Job[] {
  const hosts: Array<string | undefined> = o.on === 'ssh' ? o.hosts : [undefined];
  const groups: string[][] = o.split === 'engine' ? engines.map((e) => [e]) : [[...engines]];
  const jobs: Job[] = [];
  for (const host of hosts) {
    for (const group of groups) {
      const parts = [host && hosts.length > 1 ? host : undefined, o.split === 'engine' ? group[0] : undefined].filter((p): p is string => !!p);
      const name = parts.length ? dnsName(parts.join('-')) : 'all';
      if (jobs.some((j) => j.name === name)) throw new InputError(`two jobs would be named '${name}': give distinct --hosts`);
      const runArgs = o.split === 'engine' ? ['run', ...withoutOption(runFlags, '--engines'), '--engines', group.join(',')] : ['run', ...runFlags];
      jobs.push({ name, ...(host ? { host } : {}), engines: group, runArgs, dir: posix.join(o.resultsDir, name) });
    }
  }
  return jobs;
}

/** Quotes one word for a POSIX shell (job scripts and remote ssh commands are shell text). */
export function shq(word: string): string {
  return /^[A-Za-z0-9_/.,:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes an argv for a POSIX shell. */
export const shJoin = (argv: readonly string[]): string => argv.map(shq).join(' ');

/** Name of the state file inside a schedule folder. */
export const STATE_FILE = 'state.json';

/** Writes the state file atomically. */
export function writeState(dir: string, state: ScheduleState): string {
  const path = join(dir, STATE_FILE);
  writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
  return path;
}

/**
 * Refuses a state file (edited by hand, or from elsewhere) whose names could lead collect outside
 * its folders: a job name becomes a local folder name, and a job's folder is always the results
 * folder and the job name, as schedule wrote it.
 */
function checkStatePaths(path: string, state: ScheduleState): void {
  const show = (s: string): string => JSON.stringify(s);
  if (state.options.resultsDir.split('/').includes('..'))
    throw new InputError(`${path}: options.resultsDir ${show(state.options.resultsDir)} contains '..'; refusing to collect from it`);
  const seen = new Set<string>();
  for (const job of state.jobs) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(job.name))
      throw new InputError(
        `${path}: job name ${show(job.name)} is not a plain name (lowercase letters, digits and '-', as schedule writes them); refusing to collect`,
      );
    if (seen.has(job.name)) throw new InputError(`${path}: job name ${show(job.name)} appears twice; refusing to collect`);
    seen.add(job.name);
    const expected = posix.join(state.options.resultsDir, job.name);
    if (job.dir !== expected)
      throw new InputError(
        `${path}: job ${job.name} has folder ${show(job.dir)}, not ${show(expected)} (the results folder and the job name); refusing to collect`,
      );
  }
}

/** Reads a state file (or the one in a schedule folder), with a one-line error when it is not one. */
export function readState(pathOrDir: string): { state: ScheduleState; dir: string } {
  const path = pathOrDir.endsWith('.json') ? pathOrDir : join(pathOrDir, STATE_FILE);
  if (!existsSync(path)) throw new InputError(`${path} does not exist: give the folder (or its ${STATE_FILE}) that fwbench schedule wrote`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`${path} is not JSON (${(e as Error).message})`);
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success)
    throw new InputError(`${path} is not an fwbench schedule state file: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  checkStatePaths(path, parsed.data);
  return { state: parsed.data, dir: join(path, '..') };
}

/** The last non-empty lines of a client's output, joined for a one-line reason. */
export const tailLines = (text: string, n = 3): string =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');

/** The telling line of a job's log for a one-line reason: the last error-like line (a stack trace ends in noise), else the last line. */
export function logReason(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.findLast((l) => /\b(error|exception|fatal|killed|traceback|oom)\b/i.test(l)) ?? lines.at(-1) ?? '(empty log)';
}

/** Refuses to go on when a client program is not on PATH (a one-line error instead of polling a missing program). */
export function requireClients(programs: readonly string[], what: string): void {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const found = (p: string): boolean =>
    dirs.some((d) => {
      try {
        accessSync(join(d, p), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  const missing = programs.filter((p) => !found(p));
  if (missing.length)
    throw new InputError(`${what} needs ${missing.join(', ')} on PATH; install the scheduler's client (or use --dry-run to only write the specs)`);
}

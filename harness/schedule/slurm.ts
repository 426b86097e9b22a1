import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { InputError } from '../errors.js';
import { packageRoot } from '../run/workers.js';
import { logReason, shJoin, shq, tailLines, type Job, type Scheduler, type ScheduleState } from './plan.js';

/**
 * Slurm: one sbatch script, a job array with one task per job. Results go to a folder every node
 * sees (the shared filesystem clusters have), so collecting reads them in place. The job runs a
 * checkout, or the image through pyxis/enroot (`srun --container-image`) or apptainer.
 */

const SCRIPT = 'fwbench.sbatch';

/** The command line that starts fwbench inside an array task. */
function launcher(state: ScheduleState): string[] {
  const o = state.options;
  if (!o.image) return ['node', join(o.workdir ?? packageRoot(), 'bin', 'fwbench.js')];
  if (o.container === 'pyxis') return ['srun', `--container-image=${o.image}`, `--container-mounts=${o.resultsDir}:${o.resultsDir}`, 'fwbench'];
  return ['apptainer', 'exec', ...(o.gpus ? ['--nv'] : []), '--bind', o.resultsDir, o.image, 'fwbench'];
}

function renderScript(state: ScheduleState): string {
  const o = state.options;
  const directives = [
    `--job-name=fwbench-${state.id}`,
    `--array=0-${state.jobs.length - 1}`,
    `--output=${join(o.resultsDir, 'slurm-%A_%a.out')}`,
    ...(o.partition ? [`--partition=${o.partition}`] : []),
    ...(o.time ? [`--time=${o.time}`] : []),
    // A benchmark shares its node with nothing unless the user sizes it: without --cpus each array
    // task gets a whole node, so two tasks never time each other (the contention rule would mark
    // both unstable). With --cpus N, tasks may share a node N cores each.
    ...(o.cpus ? [`--cpus-per-task=${o.cpus}`] : ['--exclusive']),
    ...(o.mem ? [`--mem=${o.mem}`] : []),
    ...(o.gpus ? [`--gres=gpu:${o.gpuType ? `${o.gpuType}:` : ''}${o.gpus}`] : []),
  ];
  const cases = state.jobs.map((j, i) => `  ${i}) dir=${shq(j.dir)}\n     set -- ${shJoin(j.runArgs)} ;;`);
  return [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    `# fwbench schedule ${state.id}: array task i runs job i; each writes DIR/run (the fwbench run) and DIR/exit-code.`,
    'set -u',
    'case "${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}" in',
    ...cases,
    '  *) echo "fwbench: no job for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
    'esac',
    'mkdir -p "$dir"',
    `${shJoin(launcher(state))} "$@" --out "$dir/run"`,
    'code=$?',
    'echo "$code" > "$dir/exit-code"',
    'exit "$code"',
    '',
  ].join('\n');
}

/** Slurm's own words about a job that left the queue: scontrol while it remembers, else sacct. */
async function slurmVerdict(id: string): Promise<string | undefined> {
  const sc = await execa('scontrol', ['show', 'job', '-o', id], { reject: false });
  if (sc.exitCode === 0 && sc.stdout.trim()) {
    const field = (k: string): string | undefined => new RegExp(`\\b${k}=(\\S+)`).exec(sc.stdout)?.[1];
    return `JobState=${field('JobState')} Reason=${field('Reason')} ExitCode=${field('ExitCode')}`;
  }
  const sa = await execa('sacct', ['-n', '-P', '-X', '-j', id, '-o', 'State,ExitCode,Reason'], { reject: false });
  return sa.exitCode === 0 && sa.stdout.trim() ? `sacct: ${sa.stdout.trim().split('\n')[0]}` : undefined;
}

/** The Slurm scheduler (sbatch job array). */
export const slurm: Scheduler = {
  clients: { submit: ['sbatch'], collect: ['squeue', 'scontrol'] },
  options: ['resultsDir', 'workdir', 'partition', 'time', 'cpus', 'mem', 'gpuType', 'container'],

  check(o) {
    if (o.image && !o.container) throw new InputError('--image on Slurm needs --container pyxis (enroot) or --container apptainer');
    if (o.container && !o.image) throw new InputError(`--container ${o.container} needs --image`);
    if (o.gpuType && !o.gpus) throw new InputError('--gpu-type needs --gpus N');
    if (!isAbsolute(o.resultsDir)) throw new InputError(`--results-dir must be an absolute path on the cluster's shared filesystem, got '${o.resultsDir}'`);
    if (o.time && !/^(\d+-)?\d+(:\d{2}){0,2}$/.test(o.time)) throw new InputError(`--time must be MINUTES, HH:MM:SS or D-HH:MM:SS, got '${o.time}'`);
  },

  defaultResultsDir: (_id, scheduleDir) => join(scheduleDir, 'results'),

  render(state) {
    return { files: [{ name: SCRIPT, text: renderScript(state), executable: true }], submitCommands: [{ argv: ['sbatch', '--parsable', SCRIPT] }] };
  },

  async submit(state, scheduleDir, submitted) {
    // sbatch does not create the folder of --output; a missing one loses the job's log silently.
    mkdirSync(state.options.resultsDir, { recursive: true });
    const r = await execa('sbatch', ['--parsable', SCRIPT], { cwd: scheduleDir, reject: false });
    const arrayId = /^(\d+)/.exec(r.stdout.trim())?.[1];
    if (r.exitCode !== 0 || !arrayId) throw new Error(`sbatch failed (exit ${r.exitCode}): ${tailLines(`${r.stdout}\n${r.stderr}`)}`);
    state.jobs.forEach((j, i) => submitted({ ...j, submittedId: `${arrayId}_${i}` }));
  },

  async poll(state, job) {
    const id = job.submittedId!;
    const q = await execa('squeue', ['-h', '-j', id, '-o', '%T|%r'], { reject: false });
    // squeue refuses ids it has forgotten; any other failure (controller down) is no verdict on the job.
    if (q.exitCode !== 0 && !/Invalid job id/i.test(q.stderr)) throw new Error(`squeue failed (exit ${q.exitCode}): ${tailLines(q.stderr)}`);
    const line = q.exitCode === 0 ? q.stdout.trim().split('\n')[0] : undefined;
    if (line) {
      const [st = '', reason = ''] = line.split('|');
      const detail = `Slurm ${st}${reason && reason !== 'None' ? ` (${reason})` : ''}`;
      return { state: ['PENDING', 'CONFIGURING', 'REQUEUED', 'SUSPENDED'].includes(st) ? 'pending' : 'running', detail };
    }
    const log = join(state.options.resultsDir, `slurm-${id}.out`);
    const logTail = existsSync(log) ? logReason(readFileSync(log, 'utf8')) : '';
    const exitFile = join(job.dir, 'exit-code');
    if (existsSync(exitFile)) {
      const code = readFileSync(exitFile, 'utf8').trim();
      return code === '0'
        ? { state: 'done', ok: true, detail: 'fwbench run exited 0' }
        : { state: 'done', ok: false, detail: `fwbench run exited ${code}${logTail ? `; ${log}: ${logTail}` : ''}` };
    }
    const verdict = await slurmVerdict(id);
    return {
      state: 'done',
      ok: false,
      detail: `left the queue without an exit code (${verdict ?? 'Slurm no longer knows the job: cancelled before it started, or purged from memory, and no accounting for sacct'})${logTail ? `; ${log}: ${logTail}` : ''}`,
    };
  },

  // The results folder is on the shared filesystem: read in place.
  fetch: async (_state: ScheduleState, job: Job): Promise<string> => job.dir,
};

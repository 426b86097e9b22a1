import { execa } from 'execa';
import { mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, posix, resolve } from 'node:path';
import { stringify } from 'yaml';
import { InputError } from '../errors.js';
import { packageRoot } from '../run/workers.js';
import { shJoin, shq, tailLines, type Job, type ScheduleState, type Scheduler } from './plan.js';

/**
 * SkyPilot: one task YAML per job, launched on its own cluster (`sky launch -c`), so jobs split
 * by engine run side by side. The task runs the image (`resources.image_id: docker:...`) or the
 * local checkout SkyPilot syncs as `workdir` and sets up with `npm ci && npm run setup`. Results
 * stay on the cluster until collect copies them with rsync through the ssh alias SkyPilot writes
 * for every cluster; `sky down` is left to the user.
 */

/** Statuses of a SkyPilot job (sky.JobStatus), as `sky queue` prints them. */
const RUNNING = ['SETTING_UP', 'RUNNING'];
const PENDING = ['INIT', 'PENDING'];
const FAILED = ['FAILED', 'FAILED_SETUP', 'FAILED_DRIVER', 'FAILED_PRECHECKS', 'FAILED_NO_RESOURCE', 'FAILED_CONTROLLER', 'CANCELLED'];

const taskFile = (job: Job): string => `${job.name}.sky.yaml`;
/** Cluster and task name of a job. */
export const clusterName = (state: ScheduleState, job: Job): string => `fwbench-${state.id}-${job.name}`;

/** A job folder in the run script: relative folders are under $HOME on the cluster. */
const shellDir = (dir: string): string => (isAbsolute(dir) ? shq(dir) : `"$HOME"/${shq(dir)}`);

/** The SkyPilot task of one job (a plain object; the YAML file is its dump). */
export function taskSpec(state: ScheduleState, job: Job): Record<string, unknown> {
  const o = state.options;
  const resources: Record<string, unknown> = {
    ...(o.cloud ? { cloud: o.cloud } : {}),
    ...(o.gpus ? { accelerators: `${o.gpuType}:${o.gpus}` } : {}),
    ...(o.cpus ? { cpus: `${o.cpus}+` } : {}),
    ...(o.mem ? { memory: o.mem } : {}),
    ...(o.image ? { image_id: `docker:${o.image}` } : {}),
  };
  const fwbench = o.image ? ['fwbench'] : ['node', 'bin/fwbench.js'];
  const run = [
    `dir=${shellDir(job.dir)}`,
    'mkdir -p "$dir"',
    `${shJoin([...fwbench, ...job.runArgs])} --out "$dir/run"`,
    'code=$?',
    'echo "$code" > "$dir/exit-code"',
    'exit "$code"',
  ].join('\n');
  return {
    name: clusterName(state, job),
    resources,
    ...(o.image
      ? {}
      : {
          workdir: resolve(o.workdir ?? packageRoot()),
          // The CUDA builds of the engines when GPUs are asked for (see python-runners/setup.sh and the Dockerfile).
          ...(o.gpus ? { envs: { FWBENCH_SETUP_DEVICE: 'cuda', ONNXRUNTIME_NODE_INSTALL: 'cuda12' } } : {}),
          setup: "command -v node >/dev/null || conda install -y -c conda-forge 'nodejs=20'\nnpm ci --no-audit --no-fund && npm run setup\n",
        }),
    run: `${run}\n`,
  };
}

async function client(argv: string[]): Promise<string> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false });
  if (r.exitCode !== 0) throw new Error(`${argv.slice(0, 2).join(' ')} failed (exit ${r.exitCode}): ${tailLines(`${r.stdout}\n${r.stderr}`)}`);
  return r.stdout;
}

/** The SkyPilot scheduler (one cluster per job). */
export const skypilot: Scheduler = {
  clients: { submit: ['sky'], collect: ['sky', 'rsync'] },
  options: ['resultsDir', 'workdir', 'gpuType', 'cloud', 'cpus', 'mem'],

  check(o) {
    if (o.gpus && !o.gpuType)
      throw new InputError('--gpus on SkyPilot needs --gpu-type (an accelerator name such as H100, A100-80GB, L4; sky show-gpus lists them)');
    if (o.gpuType && !o.gpus) throw new InputError('--gpu-type needs --gpus N');
    if (o.mem && !/^\d+(\.\d+)?\+?$/.test(o.mem))
      throw new InputError(`--mem on SkyPilot is in GB, optionally with '+' for at least: e.g. 32 or 32+, got '${o.mem}'`);
  },

  defaultResultsDir: (id) => posix.join('fwbench-results', id),

  render(state) {
    return {
      files: state.jobs.map((j) => ({ name: taskFile(j), text: stringify(taskSpec(state, j), { blockQuote: 'literal', lineWidth: 0 }) })),
      submitCommands: state.jobs.map((j) => ({ argv: ['sky', 'launch', '--yes', '--detach-run', '--cluster', clusterName(state, j), taskFile(j)] })),
    };
  },

  async submit(state, scheduleDir, submitted) {
    for (const j of state.jobs) {
      await client(['sky', 'launch', '--yes', '--detach-run', '--cluster', clusterName(state, j), join(scheduleDir, taskFile(j))]);
      submitted({ ...j, submittedId: clusterName(state, j) });
    }
  },

  async poll(state, job) {
    const table = await client(['sky', 'queue', job.submittedId!]);
    const line = table.split('\n').find((l) => l.includes(clusterName(state, job)));
    const status = line?.split(/\s+/).find((w) => [...RUNNING, ...PENDING, 'SUCCEEDED', ...FAILED].includes(w));
    if (!status) return { state: 'pending', detail: 'not in sky queue yet' };
    if (status === 'SUCCEEDED') return { state: 'done', ok: true, detail: 'SkyPilot job SUCCEEDED' };
    if (FAILED.includes(status)) return { state: 'done', ok: false, detail: `SkyPilot job ${status}; sky logs ${job.submittedId} shows why` };
    return { state: RUNNING.includes(status) ? 'running' : 'pending', detail: `SkyPilot job ${status}` };
  },

  async fetch(_state, job, localDir) {
    const target = join(localDir, job.name);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    await client(['rsync', '-a', `${job.submittedId}:${job.dir}/`, `${target}/`]);
    return target;
  },
};

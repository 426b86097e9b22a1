import { execa } from 'execa';
import { mkdirSync, rmSync } from 'node:fs';
import { join, posix } from 'node:path';
import { InputError } from '../errors.js';
import {
  logReason,
  shJoin,
  shq,
  tailLines,
  type Job,
  type ScheduleOptions,
  type ScheduleState,
  type SpecFile,
  type SubmitCommand,
  type Scheduler,
} from './plan.js';

/**
 * Plain ssh: each job is a small shell script copied to its folder on the host and started there
 * with nohup, so it outlives the ssh session (and the laptop that submitted it). The script runs
 * a checkout (`node WORKDIR/bin/fwbench.js`) or the image (`docker run`), then writes exit-code.
 * Polling asks over ssh; results come back with scp.
 */

/** ssh/scp options shared by every call: never prompt (a password prompt would hang collect), the user's config file when given. */
const sshOptions = (o: ScheduleOptions): string[] => [...(o.sshConfig ? ['-F', o.sshConfig] : []), '-o', 'BatchMode=yes'];

const scriptName = (job: Job): string => `${job.name}.sh`;

function jobScript(state: ScheduleState, job: Job): string {
  const o = state.options;
  const run = o.image
    ? `docker run --rm ${o.gpus ? `--gpus ${o.gpus} ` : ''}-v "$dir:/results" ${shq(o.image)} ${shJoin(job.runArgs)} --out /results/run`
    : `node ${shq(posix.join(o.workdir!, 'bin', 'fwbench.js'))} ${shJoin(job.runArgs)} --out "$dir/run"`;
  return [
    '#!/bin/sh',
    `# fwbench schedule ${state.id}, job ${job.name} on ${job.host}: writes run/ (the fwbench run) and exit-code next to this script.`,
    'dir=$(cd "$(dirname "$0")" && pwd)',
    run,
    'echo $? > "$dir/exit-code"',
    '',
  ].join('\n');
}

/** Copies the script into the job's folder on the host and starts it detached; prints its pid. */
function submitCommand(state: ScheduleState, job: Job): SubmitCommand {
  const d = shq(job.dir);
  const remote = `mkdir -p ${d} && cat > ${d}/job.sh && { nohup sh ${d}/job.sh > ${d}/log 2>&1 < /dev/null & echo $!; }`;
  return { argv: ['ssh', ...sshOptions(state.options), job.host!, remote], stdinFile: scriptName(job) };
}

/** The plain-ssh scheduler (detached job scripts). */
export const ssh: Scheduler = {
  clients: { submit: ['ssh'], collect: ['ssh', 'scp'] },
  options: ['resultsDir', 'hosts', 'workdir', 'sshConfig'],

  check(o) {
    if (o.hosts.length === 0) throw new InputError('--on ssh needs --hosts user@host[,user@host...] (or Host aliases of your ssh config)');
    for (const h of o.hosts) if (h.startsWith('-') || /\s/.test(h)) throw new InputError(`bad ssh destination '${h}': give user@host or a Host alias`);
    if (!o.image && !o.workdir)
      throw new InputError('--on ssh needs --image (docker run on the host) or --workdir (an fwbench checkout on the host, set up with npm run setup)');
    if (o.gpus && !o.image) throw new InputError('--gpus on ssh needs --image (docker run --gpus); a checkout uses the GPUs the host has');
  },

  defaultResultsDir: (id) => posix.join('fwbench-results', id),

  render(state) {
    const files: SpecFile[] = state.jobs.map((j) => ({ name: scriptName(j), text: jobScript(state, j), executable: true }));
    return { files, submitCommands: state.jobs.map((j) => submitCommand(state, j)) };
  },

  async submit(state, scheduleDir, submitted) {
    for (const job of state.jobs) {
      const c = submitCommand(state, job);
      const r = await execa(c.argv[0]!, c.argv.slice(1), { cwd: scheduleDir, inputFile: join(scheduleDir, c.stdinFile!), reject: false });
      const pid = /^(\d+)$/m.exec(r.stdout)?.[1];
      if (r.exitCode !== 0 || !pid)
        throw new Error(`ssh ${job.host} failed to start job ${job.name} (exit ${r.exitCode}): ${tailLines(`${r.stdout}\n${r.stderr}`)}`);
      submitted({ ...job, submittedId: `${job.host}:${pid}` });
    }
  },

  async poll(state, job) {
    const pid = job.submittedId!.split(':').at(-1)!;
    const d = shq(job.dir);
    const probe = `if [ -f ${d}/exit-code ]; then echo "exit $(cat ${d}/exit-code)"; elif kill -0 ${pid} 2>/dev/null; then echo running; else echo gone; fi; tail -n 40 ${d}/log 2>/dev/null`;
    const r = await execa('ssh', [...sshOptions(state.options), job.host!, probe], { reject: false });
    if (r.exitCode !== 0) return { state: 'running', detail: `cannot ask ${job.host} (ssh exit ${r.exitCode}: ${tailLines(r.stderr, 1)}); will ask again` };
    const [status = '', ...log] = r.stdout.split('\n');
    const logTail = logReason(log.join('\n'));
    if (status === 'running') return { state: 'running', detail: `process ${pid} on ${job.host}` };
    if (status === 'exit 0') return { state: 'done', ok: true, detail: 'fwbench run exited 0' };
    if (status.startsWith('exit ')) return { state: 'done', ok: false, detail: `fwbench run exited ${status.slice(5)}; log: ${logTail}` };
    return {
      state: 'done',
      ok: false,
      detail: `process ${pid} on ${job.host} ended without writing exit-code (killed, or the host rebooted); log: ${logTail}`,
    };
  },

  async fetch(state, job, localDir) {
    const target = join(localDir, job.name);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(localDir, { recursive: true });
    const r = await execa('scp', [...sshOptions(state.options), '-q', '-r', `${job.host}:${job.dir}`, target], { reject: false });
    if (r.exitCode !== 0) throw new Error(`scp from ${job.host} failed (exit ${r.exitCode}): ${tailLines(r.stderr)}`);
    return target;
  },
};

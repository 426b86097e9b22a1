import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRun } from '../harness/results/read.js';
import { readState } from '../harness/schedule/plan.js';
import { expectOkCells, fwbench, QUICK, tempDir } from './helpers.js';

// A real OpenSSH server on 127.0.0.1 (own port, host key and user key made here, config in a temp
// folder), started and stopped by tests/daemons/sshd.sh. The "remote" host is this machine, so the
// job runs this checkout; its results folder is a separate temp folder reached only through ssh/scp.
const SSHD = 'tests/daemons/sshd.sh';
const sshDir = tempDir('fwbench-sshd-');
const port = String(20000 + Math.floor(Math.random() * 20000));
const sshConfig = join(sshDir, 'ssh_config');

beforeAll(async () => {
  await execa('bash', [SSHD, 'up', sshDir, port], { stdio: 'inherit' });
}, 30_000);
afterAll(async () => {
  await execa('bash', [SSHD, 'down', sshDir], { stdio: 'inherit' });
});

describe('fwbench schedule --on ssh + collect (real sshd on 127.0.0.1)', () => {
  it('starts a detached remote job over ssh, polls it and brings its results back with scp', async () => {
    const dir = join(tempDir('fwbench-ssh-'), 'sched');
    const remoteResults = join(tempDir('fwbench-remote-'), 'results');
    const s = await fwbench([
      'schedule',
      '--on',
      'ssh',
      '--hosts',
      'fwbench-test',
      '--ssh-config',
      sshConfig,
      '--workdir',
      process.cwd(),
      '--results-dir',
      remoteResults,
      '--out',
      dir,
      '--',
      '--engines',
      'onnxruntime',
      '--workloads',
      'rnn',
      '--batch-sizes',
      '2',
      ...QUICK,
    ]);
    expect(s.exitCode, s.stderr).toBe(0);
    const { state } = readState(dir);
    expect(state.jobs).toHaveLength(1);
    expect(state.jobs[0]!.submittedId).toMatch(/^fwbench-test:\d+$/);

    // Right after submission the job is still starting: --no-wait reports it and merges nothing yet.
    const early = await fwbench(['collect', dir, '--no-wait']);
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toMatch(/job all \(fwbench-test:\d+\): still running; run collect again later/);

    const c = await fwbench(['collect', dir, '--poll', '1', '--timeout', '100']);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/job all \(fwbench-test:\d+\): done/);
    // Fetched by scp into the schedule folder: the run, the job's exit code and its log.
    const local = join(dir, 'collected', 'all');
    expect(readFileSync(join(local, 'exit-code'), 'utf8').trim()).toBe('0');
    expect(existsSync(join(local, 'log'))).toBe(true);
    const merged = loadRun(join(dir, 'merged'));
    expectOkCells(merged.cells, 1);
    expect(merged.cells[0]).toMatchObject({ engine: 'onnxruntime', workload: 'rnn', batchSize: 2 });
    // The sshd really served the session (its log names the test key's login).
    expect(readFileSync(join(sshDir, 'sshd.log'), 'utf8')).toMatch(/Accepted publickey/);
  });

  it('reports a remote job whose fwbench fails with the exit code and the log tail', async () => {
    const dir = join(tempDir('fwbench-ssh-'), 'sched');
    const s = await fwbench([
      'schedule',
      '--on',
      'ssh',
      '--hosts',
      'fwbench-test',
      '--ssh-config',
      sshConfig,
      '--workdir',
      join(sshDir, 'no-checkout-here'),
      '--results-dir',
      join(tempDir('fwbench-remote-'), 'r'),
      '--out',
      dir,
      '--',
      '--engines',
      'onnxruntime',
      '--workloads',
      'rnn',
      '--batch-sizes',
      '1',
      ...QUICK,
    ]);
    expect(s.exitCode, s.stderr).toBe(0);
    const c = await fwbench(['collect', dir, '--poll', '1', '--timeout', '60']);
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toMatch(/job all \(fwbench-test:\d+\): fwbench run exited 1; log: .*Cannot find module/);
    expect(c.stderr).toMatch(/no job of .* produced a run to merge/);
  });
  it('records the jobs that started when a later host cannot be reached, and collect merges them', async () => {
    // A second Host alias whose port nothing listens on (the test's sshd is the only one started).
    const config = join(tempDir('fwbench-sshcfg-'), 'ssh_config');
    writeFileSync(
      config,
      `${readFileSync(sshConfig, 'utf8')}\nHost fwbench-nowhere\n  HostName 127.0.0.1\n  Port ${Number(port) + 1}\n  ConnectTimeout 3\n  BatchMode yes\n`,
    );
    const dir = join(tempDir('fwbench-ssh-'), 'sched');
    const s = await fwbench([
      'schedule',
      '--on',
      'ssh',
      '--hosts',
      'fwbench-test,fwbench-nowhere',
      '--ssh-config',
      config,
      '--workdir',
      process.cwd(),
      '--results-dir',
      join(tempDir('fwbench-remote-'), 'r'),
      '--out',
      dir,
      '--',
      '--engines',
      'onnxruntime',
      '--workloads',
      'rnn',
      '--batch-sizes',
      '1',
      ...QUICK,
    ]);
    expect(s.exitCode).toBe(1);
    expect(s.stderr).toMatch(/submission failed: ssh fwbench-nowhere failed to start job fwbench-nowhere \(exit 255\): .*Connection refused/);
    expect(s.stderr).toMatch(/1 of 2 job\(s\) were submitted before that/);
    const { state } = readState(dir);
    expect(state.jobs.map((j) => [j.name, j.submittedId !== undefined])).toEqual([
      ['fwbench-test', true],
      ['fwbench-nowhere', false],
    ]);

    const c = await fwbench(['collect', dir, '--poll', '1', '--timeout', '100']);
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toMatch(/job fwbench-nowhere \(not submitted\): never submitted/);
    const merged = loadRun(join(dir, 'merged'));
    expectOkCells(merged.cells, 1);
  });
});

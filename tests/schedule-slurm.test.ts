import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRun } from '../harness/results/read.js';
import { readState } from '../harness/schedule/plan.js';
import { expectOkCells, fwbench, QUICK, tempDir } from './helpers.js';

// A real single-node Slurm on localhost (munged, slurmctld, slurmd), started by tests/daemons/slurm.sh
// unless one already answers; stopped afterwards only if this file started it.
const SLURM = 'tests/daemons/slurm.sh';
const RUN_FLAGS = ['--engines', 'onnxruntime,tfjs-wasm', '--workloads', 'cnn', '--batch-sizes', '1', ...QUICK];

beforeAll(async () => {
  await execa('bash', [SLURM, 'up'], { stdio: 'inherit' });
}, 60_000);
afterAll(async () => {
  await execa('bash', [SLURM, 'down'], { stdio: 'inherit' });
});

describe('fwbench schedule --on slurm + collect (real Slurm on localhost)', () => {
  it('submits a CPU job array split by engine and collect merges both jobs into one run', async () => {
    const dir = join(tempDir('fwbench-slurm-'), 'sched');
    const s = await fwbench(['schedule', '--on', 'slurm', '--split', 'engine', '--out', dir, '--', ...RUN_FLAGS]);
    expect(s.exitCode, s.stderr).toBe(0);
    const { state } = readState(dir);
    expect(state.jobs.map((j) => j.name)).toEqual(['onnxruntime', 'tfjs-wasm']);
    const arrayId = /^(\d+)_0$/.exec(state.jobs[0]!.submittedId!)?.[1];
    expect(arrayId).toBeDefined();
    expect(state.jobs[1]!.submittedId).toBe(`${arrayId}_1`);
    const script = readFileSync(join(dir, 'fwbench.sbatch'), 'utf8');
    expect(script).toContain('#SBATCH --array=0-1');
    // Without --cpus each task has the node to itself: the two tasks run one after the other.
    expect(script).toContain('#SBATCH --exclusive');

    const c = await fwbench(['collect', dir, '--poll', '1', '--timeout', '300']);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stderr).toMatch(new RegExp(`job onnxruntime \\(${arrayId}_0\\): done`));
    const merged = loadRun(join(dir, 'merged'));
    expectOkCells(merged.cells, 2);
    expect(merged.cells.map((x) => x.engine).sort()).toEqual(['onnxruntime', 'tfjs-wasm']);
    expect(merged.cells.every((x) => x.workload === 'cnn' && x.batchSize === 1)).toBe(true);
    // One task at a time on the node: neither run saw the other as a neighbour.
    const [a, b] = state.jobs.map((j) => loadRun(join(j.dir, 'run')));
    expect(a!.finishedAt! <= b!.startedAt! || b!.finishedAt! <= a!.startedAt!).toBe(true);
    expect(merged.sources).toHaveLength(2);
    // Split by engine on one kind of machine: one host in the merged run, engines side by side.
    expect(new Set(merged.cells.map((x) => x.hostFingerprint)).size).toBe(1);
    // Each array task wrote its own run on the shared filesystem and its exit code.
    for (const j of state.jobs) expect(readFileSync(join(j.dir, 'exit-code'), 'utf8').trim()).toBe('0');
  }, 400_000);

  it('reports a running array task cancelled with scancel, with its id and reason and still merges the other job', async () => {
    const dir = join(tempDir('fwbench-slurm-'), 'sched');
    const s = await fwbench(['schedule', '--on', 'slurm', '--split', 'engine', '--out', dir, '--', ...RUN_FLAGS]);
    expect(s.exitCode, s.stderr).toBe(0);
    const { state } = readState(dir);
    const cancelled = state.jobs[1]!.submittedId!;
    // Cancelled once running: a task cancelled while still pending leaves no record without Slurm accounting.
    // Whole-node tasks run one after the other: task 1 starts once task 0 has finished.
    for (let i = 0; i < 1800; i++) {
      if ((await execa('squeue', ['-h', '-j', cancelled, '-o', '%T'], { reject: false })).stdout.trim() === 'RUNNING') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await execa('scancel', [cancelled]);

    const c = await fwbench(['collect', dir, '--poll', '1', '--timeout', '300']);
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toContain(`job tfjs-wasm (${cancelled}): `);
    expect(c.stderr).toMatch(/JobState=CANCELLED/);
    const merged = loadRun(join(dir, 'merged'));
    expectOkCells(merged.cells, 1);
    expect(merged.cells[0]!.engine).toBe('onnxruntime');
  }, 400_000);

  it('refuses a typo in the run flags before anything reaches the queue', async () => {
    const dir = join(tempDir('fwbench-slurm-'), 'sched');
    const before = (await execa('squeue', ['-h', '-o', '%i'])).stdout;
    const s = await fwbench(['schedule', '--on', 'slurm', '--out', dir, '--', '--engines', 'onnxruntime', '--batch-sizes', '0']);
    expect(s.exitCode).toBe(2);
    expect(s.stderr).toMatch(
      /in the run flags after --: option '--batch-sizes <list>' argument '0' is invalid\. must be a positive integer up to 65536, got 0/,
    );
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
    expect((await execa('squeue', ['-h', '-o', '%i'])).stdout).toBe(before);
  });
});

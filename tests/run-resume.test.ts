import { execa, type ResultPromise } from 'execa';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { CellLineSchema, RunSchema, type Run } from '../harness/results/schema.js';
import { configDifferences, environmentDifferences } from '../harness/run/resume.js';
import { expectOkCells, fwbench, QUICK, tempDir } from './helpers.js';

/** 2 engines x 2 workloads x 2 batch sizes: 8 short cells. */
const MATRIX = ['--engines', 'onnxruntime,tfjs-wasm', '--workloads', 'rnn,transformer', '--batch-sizes', '1,2', ...QUICK];

const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
const cellLines = (dir: string): string[] =>
  existsSync(join(dir, 'cells.jsonl')) ? readFileSync(join(dir, 'cells.jsonl'), 'utf8').split('\n').filter(Boolean) : [];

/** Starts the CLI in the background (the orchestrator is the process itself: no shell in between). */
const start = (args: string[], env: Record<string, string> = {}): ResultPromise =>
  execa(process.execPath, ['bin/fwbench.js', ...args], { reject: false, env: { FORCE_COLOR: '0', ...env } });

async function until(what: string, ok: () => boolean, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Pids of the worker processes the orchestrator `pid` has started and that are alive now. */
const workersOf = (pid: number): number[] => {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim())
      .map(Number);
  } catch {
    return [];
  }
};
/** The one worker of `orchestrator` that stays alive over 1.5 s (the reference and earlier cells' workers come and go). */
async function hungWorker(orchestrator: number): Promise<number> {
  let last: number | undefined;
  let since = Date.now();
  await until('a hung worker', () => {
    const now = workersOf(orchestrator);
    if (now.length !== 1 || now[0] !== last) {
      last = now.length === 1 ? now[0] : undefined;
      since = Date.now();
    }
    return last !== undefined && Date.now() - since >= 1500;
  });
  return last!;
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('kill -9 of the orchestrator, then --resume', () => {
  it('loses at most the cell in flight, drops a truncated last line with a warning, and ends with the same cells as an uninterrupted run', async () => {
    const whole = tempDir('fwbench-whole-');
    const a = await fwbench(['run', ...MATRIX, '--out', whole]);
    expect(a.exitCode, a.stderr).toBe(0);
    const reference = readRun(whole);
    expectOkCells(reference.cells, 8);

    const dir = tempDir('fwbench-killed-');
    const child = start(['run', ...MATRIX, '--out', dir]);
    await until('3 finished cells', () => cellLines(dir).length >= 3);
    const seen = cellLines(dir).length;
    child.kill('SIGKILL');
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');
    // The configuration was on disk before the first cell; the run says it never finished.
    const partial = readRun(dir);
    expect(partial.state).toBe('running');
    expect(partial.config).toEqual(reference.config);
    const before = cellLines(dir);
    expect(before.length).toBeGreaterThanOrEqual(seen);
    expect(before.length).toBeLessThan(8);
    // What a kill in the middle of an append leaves: a last line without its end.
    appendFileSync(join(dir, 'cells.jsonl'), '{"schemaVersion":1,"id":"tfjs-wasm/eager/cpu/transfor');

    const r = await fwbench(['run', '--resume', dir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cells\.jsonl: dropped a truncated last line \(\d+ bytes, line \d+\); that cell will run again/);
    expect(r.stderr).toContain(`resuming ${dir}: ${before.length} cells already finished (run state running)`);
    expect(r.stderr).toContain(`fwbench: ${8 - before.length} cells`);
    const run = readRun(dir);
    expect(run.state).toBe('complete');
    expect(run.cells.map((c) => c.id)).toEqual(reference.cells.map((c) => c.id));
    expectOkCells(run.cells, 8);
    expect(run.resumes).toMatchObject([{ command: ['fwbench', 'run', '--resume', dir], cellsBefore: before.length }]);
    expect(run.startedAt).toBe(partial.startedAt);
    // Append-only: the cells measured before the kill are kept byte for byte, every line is versioned.
    const after = cellLines(dir);
    expect(after).toHaveLength(8);
    expect(after.slice(0, before.length)).toEqual(before);
    for (const l of after) expect(CellLineSchema.parse(JSON.parse(l)).schemaVersion).toBe(1);
  });
});

describe('workers of a killed orchestrator', () => {
  it.each(['tfjs-wasm', 'torch'])('a hung %s worker exits when its orchestrator is killed with kill -9', async (engine) => {
    const dir = tempDir('fwbench-orphan-');
    const child = start(
      ['run', '--engines', engine, '--modes', 'eager', '--workloads', 'rnn', '--batch-sizes', '1', ...QUICK, '--timeout', '600', '--out', dir],
      { FWBENCH_FAULT: `hang@load:${engine}` },
    );
    const hung = await hungWorker(child.pid!);
    child.kill('SIGKILL');
    await child;
    await until('the orphaned worker to exit', () => !alive(hung), 5000);
  });
});

describe('SIGINT and SIGTERM', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s stops the hung worker (its process group), keeps a valid partial run and says how to continue (exit %d)', async (signal, code) => {
    const dir = tempDir('fwbench-int-');
    // The tfjs-wasm worker hangs in its load phase with a 600 s timeout: only the orchestrator's
    // stop can end it, and it must not be recorded as a failed cell.
    const child = start(
      ['run', '--engines', 'onnxruntime,tfjs-wasm', '--workloads', 'rnn', '--batch-sizes', '1,2', ...QUICK, '--timeout', '600', '--out', dir],
      { FWBENCH_FAULT: 'hang@load:tfjs-wasm' },
    );
    await until('the first cell', () => cellLines(dir).length >= 1);
    const hung = await hungWorker(child.pid!);
    const early = await fwbench(['run', '--resume', dir]);
    // The folder's lock names the run that holds it.
    expect(early.exitCode, early.stderr).toBe(2);
    expect(early.stderr).toMatch(
      new RegExp(
        `^fwbench: ${dir} is in use by fwbench pid ${child.pid} on ${hostname()} \\(fwbench run .*\\): one fwbench writes a folder at a time; wait for it to finish, or remove ${dir}/\\.fwbench\\.lock if that process is gone$`,
      ),
    );
    child.kill(signal);
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(code);
    expect(r.stderr).toContain(
      `interrupted by ${signal}: 1 of 4 cells finished and kept in ${dir} (run.json state "interrupted"). Continue with: fwbench run --resume ${dir}`,
    );
    await until('the worker to be gone', () => !alive(hung), 5000);
    const run = readRun(dir);
    expect(run.state).toBe('interrupted');
    expect(run.interruption!.signal).toBe(signal);
    expectOkCells(run.cells, 1);
    expect(run.cells[0]!.engine).toBe('onnxruntime');
    expect(cellLines(dir)).toHaveLength(1);
  });
});

describe('--resume refusals', () => {
  it("refuses a changed configuration naming each field, --out with --resume, a new run into a run's folder, a folder without run.json and a corrupt cells.jsonl", async () => {
    const dir = tempDir('fwbench-refuse-');
    const ok = await fwbench(['run', '--engines', 'onnxruntime', '--workloads', 'rnn', '--batch-sizes', '1', ...QUICK, '--out', dir]);
    expect(ok.exitCode, ok.stderr).toBe(0);

    const changed = await fwbench(['run', '--resume', dir, '--engines', 'tfjs-wasm', '--batch-sizes', '2', '--seed', '3', '--workloads', 'rnn']);
    expect(changed.exitCode).toBe(2);
    const line = changed.stderr.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toBe(
      `fwbench: cannot resume ${dir}: the configuration differs: --engines (engines): the run has ["onnxruntime"], this command gives ["tfjs-wasm"]; --batch-sizes (batchSizes): the run has [1], this command gives [2]; --seed (seed): the run has 0, this command gives 3 (leave those flags out to continue the run as it was, or start a new run with --out)`,
    );

    const same = await fwbench(['run', '--resume', dir, '--engines', 'onnxruntime', '--workloads', 'rnn']);
    expect(same.exitCode, same.stderr).toBe(0);
    expect(same.stderr).toContain('fwbench: 0 cells');

    const out = await fwbench(['run', '--resume', dir, '--out', tempDir()]);
    expect(out).toMatchObject({ exitCode: 2, stderr: 'fwbench: --resume DIR continues the run in DIR: leave --out out' });

    const again = await fwbench(['run', '--engines', 'onnxruntime', '--workloads', 'rnn', '--batch-sizes', '1', ...QUICK, '--out', dir]);
    expect(again).toMatchObject({ exitCode: 2, stderr: `fwbench: ${dir} already holds a run: continue it with --resume ${dir}, or choose another --out` });

    const empty = tempDir();
    const none = await fwbench(['run', '--resume', empty]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toBe(
      `fwbench: cannot resume ${empty}: it has no run.json (a run writes it before its first cell; this one never got that far, so start it again)`,
    );
    expect(readdirSync(empty)).toEqual([]);
    const missing = join(empty, 'nothing-here');
    const gone = await fwbench(['run', '--resume', missing]);
    expect(gone).toMatchObject({ exitCode: 2, stderr: `fwbench: cannot resume ${missing}: no such folder` });
    expect(existsSync(missing)).toBe(false);

    writeFileSync(join(dir, 'cells.jsonl'), `not json\n${readFileSync(join(dir, 'cells.jsonl'), 'utf8')}`);
    const corrupt = await fwbench(['run', '--resume', dir]);
    expect(corrupt.exitCode).toBe(2);
    expect(corrupt.stderr).toBe(`fwbench: cannot resume ${dir}: ${dir}/cells.jsonl:1 is not a cell record of schema version 1 (not JSON)`);
  });
});

describe('resume comparisons', () => {
  const run = readRunFixture();
  it('names only the flags given, with the field and both values', () => {
    const given = { ...run.config, engines: ['torch'], measure: { ...run.config.measure, minSamples: 99 } };
    expect(configDifferences(run.config, given, ['engines', 'minSamples', 'preset', 'json'])).toEqual([
      '--engines (engines): the run has ["onnxruntime"], this command gives ["torch"]',
      '--min-samples (measure.minSamples): the run has 5, this command gives 99',
    ]);
    expect(configDifferences(run.config, given, [])).toEqual([]);
  });
  it('names a changed host and a changed or vanished engine', () => {
    const engines = { onnxruntime: { ...run.engines.onnxruntime!, version: '9.9.9' } };
    expect(environmentDifferences(run, 'other host', engines)).toEqual([
      `host: the run has ${JSON.stringify(run.hostFingerprint)}, this machine is "other host"`,
      `engine onnxruntime: version ${run.engines.onnxruntime!.version} in the run, 9.9.9 now`,
    ]);
    expect(environmentDifferences(run, run.hostFingerprint, { onnxruntime: { ...run.engines.onnxruntime!, available: false } })).toEqual([
      'engine onnxruntime: available in the run, unavailable now',
    ]);
    expect(environmentDifferences(run, run.hostFingerprint, run.engines)).toEqual([]);
  });
});

/** A minimal run header for the pure comparisons. */
function readRunFixture(): Pick<Run, 'config' | 'engines' | 'hostFingerprint'> {
  return {
    hostFingerprint: 'Intel Xeon, 2 cores',
    engines: { onnxruntime: { available: true, framework: 'ONNX Runtime', version: '1.30.0' } },
    config: {
      engines: ['onnxruntime'],
      workloads: ['rnn'],
      preset: { rnn: 'tiny' },
      batchSizes: [1],
      sets: [],
      device: 'cpu',
      threads: [2],
      seed: 0,
      measure: {
        warmupMinIters: 3,
        warmupMaxIters: 50,
        warmupMaxMs: 200,
        warmupTolerance: 0.1,
        warmupWindow: 3,
        minSamples: 5,
        minTimeMs: 50,
        maxTimeMs: 1000,
        maxSamples: 100000,
        targetInterval: 0.05,
      },
      replicates: 1,
      cellTimeoutMs: 600000,
    },
  };
}

import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRun } from '../harness/results/read.js';
import { fwbench, tempDir } from './helpers.js';

/**
 * Faults made for real: a full disk (a small tmpfs), a read-only file system (a read-only tmpfs),
 * two fwbench processes on one folder, a hostile state.json and a symlinked merged/ for collect,
 * a damaged cache file, formulas in CSV text, and the system temp folder around a real run.
 */

const RUN = [
  'run',
  '--engines',
  'onnxruntime',
  '--workloads',
  'rnn',
  '--size',
  'tiny',
  '--batch-sizes',
  '1',
  '--replicates',
  '1',
  '--min-samples',
  '5',
  '--min-time',
  '50',
  '--max-time',
  '500',
  '--warmup-max-time',
  '100',
];

/** Why a tmpfs cannot be mounted here (not root, no CAP_SYS_ADMIN), or undefined when it can. */
function mountProblem(): string | undefined {
  const probe = tempDir('fwbench-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe]);
    return undefined;
  } catch (e) {
    return `mount -t tmpfs is not permitted here: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  }
}
const noMount = mountProblem();
const mounted: string[] = [];
/** A fresh tmpfs of `size` (mount options `opts`), unmounted after the file. */
function tmpfs(size: string, opts = ''): string {
  const dir = tempDir('fwbench-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${opts ? `,${opts}` : ''}`, 'tmpfs', dir]);
  mounted.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of mounted) execFileSync('umount', [dir]);
});

/** One line on stderr, starting with fwbench:, no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines.at(-1)).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr).not.toMatch(/internal error/);
}

let run: string;
let cache: string;
let privateTmp: string;
beforeAll(async () => {
  cache = tempDir('fwbench-faults-cache-');
  // The run's own temp folder: whatever a run leaves in the system temp folder would land here.
  privateTmp = tempDir('fwbench-faults-tmp-');
  run = join(tempDir('fwbench-faults-'), 'run');
  const r = await fwbench([...RUN, '--out', run], { env: { FWBENCH_CACHE: cache, TMPDIR: privateTmp } });
  expect(r.exitCode, r.stderr).toBe(0);
}, 180_000);

describe('the system temp folder', () => {
  it('holds nothing after a real run (ONNX Runtime workers used to leave mat-debug-<pid>.log)', () => {
    expect(readdirSync(privateTmp)).toEqual([]);
  });
});

describe.skipIf(noMount !== undefined)(`full and read-only disks${noMount ? ` (skipped: ${noMount})` : ''}`, () => {
  it('merge onto a full disk: exit 2, one line naming the path and ENOSPC, no partial file left', async () => {
    const disk = tmpfs('8k');
    const r = await fwbench(['merge', run, '--out', join(disk, 'merged')]);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /^fwbench: cannot write .*merged\/(cells\.jsonl|run\.json): ENOSPC \(no space left on device\)$/);
    const left = readdirSync(join(disk, 'merged'));
    // No temporary file, no run.json, and no cut line in cells.jsonl.
    expect(left.filter((f) => f.endsWith('.tmp') || f === 'run.json' || f.startsWith('.fwbench.lock'))).toEqual([]);
    if (left.includes('cells.jsonl')) expect(readFileSync(join(disk, 'merged', 'cells.jsonl'), 'utf8')).toMatch(/(^$|\n$)/);
  });

  it('a run whose disk fills up: exit 2 (never 0), one line, cells.jsonl never ends in part of a line', async () => {
    const disk = tmpfs('12k');
    const out = join(disk, 'run');
    const r = await fwbench([...RUN, '--out', out], { env: { FWBENCH_CACHE: cache } });
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /^fwbench: cannot write .*run\/(cells\.jsonl|run\.json|report\.html): ENOSPC \(no space left on device\)$/);
    if (existsSync(join(out, 'cells.jsonl'))) expect(readFileSync(join(out, 'cells.jsonl'), 'utf8')).toMatch(/(^$|\n$)/);
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('report onto a read-only file system: exit 2, one line naming the path and EROFS', async () => {
    const disk = tmpfs('64k', 'ro');
    const r = await fwbench(['report', run, '--format', 'md', '--out', join(disk, 'report.md')]);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /^fwbench: cannot write .*report\.md: EROFS \(read-only file system\)$/);
  });

  it('a run into a read-only file system: exit 2, one line', async () => {
    const disk = tmpfs('64k', 'ro');
    const r = await fwbench([...RUN, '--out', join(disk, 'run')], { env: { FWBENCH_CACHE: cache } });
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /^fwbench: cannot create .*run: EROFS \(read-only file system\)$/);
  });
});

describe('one writer per folder', () => {
  it('a second run and a resume of a folder a run is writing are refused, naming the holder', async () => {
    const out = join(tempDir('fwbench-lock-'), 'run');
    const first = execa(process.execPath, ['bin/fwbench.js', ...RUN, '--out', out], { reject: false, env: { FWBENCH_CACHE: cache } });
    const lock = join(out, '.fwbench.lock');
    for (let i = 0; i < 300 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(lock)).toBe(true);
    const [second, resume] = await Promise.all([fwbench([...RUN, '--out', out]), fwbench(['run', '--resume', out])]);
    for (const r of [second, resume]) {
      expect(r.exitCode, r.stderr).toBe(2);
      expectOneLine(
        r.stderr,
        new RegExp(`^fwbench: ${out} is in use by fwbench pid ${first.pid} on ${hostname()} \\(fwbench run .*\\): one fwbench writes a folder at a time`),
      );
    }
    const done = await first;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(existsSync(lock)).toBe(false);
    expect(loadRun(out).cells).toHaveLength(1);
  });

  it('a lock left by a dead process on this host is taken over with a note', async () => {
    const out = tempDir('fwbench-stale-');
    // pid 2^22 + 1 is above Linux's pid_max limit: never a live process.
    writeFileSync(
      join(out, '.fwbench.lock'),
      JSON.stringify({ pid: 4194305, hostname: hostname(), command: ['fwbench', 'run'], since: '2026-01-01T00:00:00Z' }),
    );
    const r = await fwbench(['merge', run, '--out', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/taking over the lock of fwbench pid 4194305, which is no longer running/);
    expect(existsSync(join(out, '.fwbench.lock'))).toBe(false);
  });
});

describe('collect stays inside its folders', () => {
  /** A dry-run schedule folder, as schedule writes it. */
  async function schedule(): Promise<string> {
    const dir = join(tempDir('fwbench-collect-'), 'sched');
    const s = await fwbench(['schedule', '--on', 'slurm', '--dry-run', '--out', dir, '--', '--engines', 'onnxruntime', '--quick']);
    expect(s.exitCode, s.stderr).toBe(0);
    return dir;
  }

  it.each([
    ['../../escape', /job name "\.\.\/\.\.\/escape" is not a plain name/],
    ['/etc', /job name "\/etc" is not a plain name/],
  ])('refuses a state.json whose job is named %s', async (name, message) => {
    const dir = await schedule();
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { jobs: Array<{ name: string; dir: string }>; dryRun: boolean };
    state.dryRun = false;
    state.jobs[0]!.name = name;
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    const r = await fwbench(['collect', dir, '--no-wait']);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, message);
  });

  it("refuses a job folder that is not the results folder and the job's name", async () => {
    const dir = await schedule();
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { jobs: Array<{ name: string; dir: string }> };
    state.jobs[0]!.dir = '/home/someone';
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    const r = await fwbench(['collect', dir, '--no-wait']);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /job all has folder "\/home\/someone", not ".*\/results\/all"/);
  });

  it('refuses a merged/ folder that is a symbolic link, and leaves its target alone', async () => {
    const dir = await schedule();
    const victim = tempDir('fwbench-victim-');
    writeFileSync(join(victim, 'run.json'), 'precious');
    symlinkSync(victim, join(dir, 'merged'));
    const r = await fwbench(['collect', dir, '--no-wait']);
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, /merged is a symbolic link; fwbench deletes and writes only inside its own folders/);
    expect(readFileSync(join(victim, 'run.json'), 'utf8')).toBe('precious');
  });
});

describe('the cache checks itself', () => {
  it('a damaged weights file is rebuilt from the seed with a note, and the cell is ok', async () => {
    const weights = readdirSync(cache).find((f) => /^rnn-.*\.weights\.safetensors$/.test(f))!;
    const path = join(cache, weights);
    const bytes = readFileSync(path);
    bytes.fill(0x58, 200, 216);
    writeFileSync(path, bytes);
    const r = await fwbench([...RUN, '--out', join(tempDir('fwbench-damaged-'), 'run')], { env: { FWBENCH_CACHE: cache } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`cache file ${path}: its content does not match its hash (damaged or edited); rebuilding it from the seed`);
  });

  it('FWBENCH_CACHE naming a file is one line, exit 2', async () => {
    const file = join(tempDir('fwbench-cachefile-'), 'not-a-folder');
    writeFileSync(file, 'x');
    const r = await fwbench(['export', '--workload', 'rnn', '--format', 'weights', '--out', join(tempDir(), 'w.safetensors')], {
      env: { FWBENCH_CACHE: file },
    });
    expect(r.exitCode, r.stderr).toBe(2);
    expectOneLine(r.stderr, new RegExp(`^fwbench: FWBENCH_CACHE=${file} is a file, not a folder; point FWBENCH_CACHE at a folder$`));
  });
});

describe('an interrupted run', () => {
  it('report uses the finished cells of cells.jsonl when run.json lists fewer, and says incomplete: N of M', async () => {
    const dir = join(tempDir('fwbench-interrupted-'), 'run');
    mkdirSync(dir);
    const r0 = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { cells: unknown[]; state: string };
    // As a run killed between appending its cell and rewriting run.json leaves it.
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ ...r0, cells: [], state: 'running' }));
    writeFileSync(join(dir, 'cells.jsonl'), readFileSync(join(run, 'cells.jsonl')));
    const r = await fwbench(['report', dir, '--format', 'csv', '--out', '-']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `${dir}: run.json lists 0 cells, cells.jsonl 1: using every finished cell of cells.jsonl (fwbench run --resume ${dir} rewrites run.json from it)`,
    );
    expect(r.stderr).toContain(`incomplete: 1 of 1 cells (run state running); continue it with fwbench run --resume ${dir}`);
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
  });
});

describe('a broken FWBENCH_PYTHON', () => {
  it('is named as the cause of the Python engines being unavailable', async () => {
    const r = await fwbench(['detect', '--json'], { env: { FWBENCH_PYTHON: '/bin/true' } });
    expect(r.exitCode, r.stderr).toBe(0);
    const { engines } = JSON.parse(r.stdout) as { engines: Record<string, { available: boolean; reason?: string; fix?: string }> };
    for (const id of ['torch', 'tensorflow']) {
      expect(engines[id]!.available).toBe(false);
      expect(engines[id]!.reason).toMatch(/^FWBENCH_PYTHON=\/bin\/true did not start the Python runner: /);
      expect(engines[id]!.fix).toMatch(/python-runners\/\.venv\/bin\/python/);
    }
  });
});

describe('a memory cap too small for the runtime', () => {
  it('is named as the cause of the cell failing, not the engine', async () => {
    const out = join(tempDir('fwbench-cap-'), 'run');
    const r = await fwbench([...RUN.map((a) => (a === 'onnxruntime' ? 'torch' : a)), '--max-memory-mb', '20', '--out', out], { env: { FWBENCH_CACHE: cache } });
    expect(r.exitCode, r.stderr).toBe(1);
    const [cell] = loadRun(out).cells;
    expect(cell).toMatchObject({ engine: 'torch', status: 'failed', cause: 'out-of-memory' });
    expect(cell!.reason).toMatch(
      /^the worker could not start under --max-memory-mb 20: too little memory for the runtime itself \(.*\); raise --max-memory-mb$/,
    );
  });
});

describe('CSV injection', () => {
  it('text that a spreadsheet would run as a formula starts with an apostrophe', async () => {
    const dir = tempDir('fwbench-csv-');
    const r0 = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { cells: Array<Record<string, unknown>> };
    r0.cells[0]!.reason = '=HYPERLINK("http://evil","x")';
    r0.cells[0]!.mode = '@SUM(1+1)';
    mkdirSync(join(dir, 'r'));
    writeFileSync(join(dir, 'r', 'run.json'), JSON.stringify(r0));
    const r = await fwbench(['report', join(dir, 'r'), '--format', 'csv', '--out', '-']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"'=HYPERLINK(""http://evil"",""x"")"`);
    expect(r.stdout).toContain(`,'@SUM(1+1),`);
    expect(r.stdout).not.toMatch(/(^|,)[=@]/m);
  });
});

import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPORT_FORMATS } from '../harness/report/index.js';
import { loadRun } from '../harness/results/read.js';
import { RunSchema, type Run } from '../harness/results/schema.js';
import { execa } from 'execa';
import { fwbench, QUICK, tempDir } from './helpers.js';
import { readRun } from './report-helpers.js';

/**
 * Results files from elsewhere: an older compatible run.json loads; names inside a run.json
 * (cell ids, host names, engines, modes) never choose where report, compare or merge write, and
 * whatever markup they hold stays text in the HTML; no shell ever sees a user's string.
 */

const FIXTURE = 'tests/fixtures/runs/v0.1.0-34a4747';

/** Every file under a folder, as relative paths. */
function listFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

/** A deep copy of a run with every string replaced by `f(string, path)`, except where the schema needs one of its fixed values. */
function mapStrings(run: Run, f: (s: string, path: string) => string): Run {
  const walk = (v: unknown, path: string[]): unknown => {
    if (typeof v === 'string') return f(v, path.join('.'));
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, String(i)]));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
    return v;
  };
  const mapped = walk(run, []) as Record<string, unknown>;
  // Put the original back wherever the schema allows only fixed values (status, device, workload...).
  for (let round = 0; round < 50; round++) {
    const r = RunSchema.safeParse(mapped);
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      let target: Record<string, unknown> = mapped;
      let original: unknown = run;
      for (const key of issue.path.slice(0, -1)) {
        target = target[key as string] as Record<string, unknown>;
        original = (original as Record<string, unknown>)[key as string];
      }
      const last = issue.path.at(-1) as string;
      target[last] = (original as Record<string, unknown>)[last];
    }
  }
  throw new Error('could not make a schema-valid hostile run');
}

describe('results files from elsewhere', () => {
  let run: Run;
  let runDir: string;

  beforeAll(async () => {
    runDir = tempDir('fwbench-results-');
    const r = await fwbench(['run', '--engines', 'onnxruntime', '--workloads', 'transformer,rnn', '--batch-sizes', '1', ...QUICK, '--out', runDir]);
    expect(r.exitCode, r.stderr).toBe(0);
    run = readRun(runDir);
  });

  it('an older, compatible run.json (fwbench 0.1.0, before the stopping rule) loads in report, compare and merge', async () => {
    expect(JSON.parse(readFileSync(join(FIXTURE, 'run.json'), 'utf8')).config.measure.targetInterval).toBeUndefined();
    expect(loadRun(FIXTURE).config.measure.targetInterval).toBe(0);
    const md = await fwbench(['report', FIXTURE, '--format', 'md', '--out', '-']);
    expect(md.exitCode, md.stderr).toBe(0);
    expect(md.stdout).toContain('transformer/tiny');
    const cmp = await fwbench(['compare', FIXTURE, FIXTURE, '--format', 'json']);
    expect(cmp.exitCode, cmp.stderr).toBe(0);
    expect((JSON.parse(cmp.stdout) as { pairs: unknown[] }).pairs).toHaveLength(1);
    const out = join(tempDir(), 'merged');
    const merge = await fwbench(['merge', FIXTURE, runDir, '--out', out]);
    expect(merge.exitCode, merge.stderr).toBe(0);
    expect(loadRun(out).cells).toHaveLength(1 + run.cells.length);
  });

  it("names from a run.json ('../', absolute paths) never make report, compare or merge write outside their output", async () => {
    const sandbox = tempDir('fwbench-sandbox-');
    const elsewhere = tempDir('fwbench-elsewhere-');
    const escape = `../../../../../../../../../..${realpathSync(elsewhere)}`;
    const hostile = mapStrings(run, (s, path) => (path.endsWith('At') ? s : path.length % 2 ? `${escape}/${s}` : `${realpathSync(elsewhere)}/${s}`));
    expect(hostile.cells[0]!.id).toMatch(/^(\.\.\/|\/)/);
    expect(hostile.host.hostname).toMatch(/^(\.\.\/|\/)/);
    const dirA = join(sandbox, 'a', 'b', 'run-a');
    const dirB = join(sandbox, 'a', 'b', 'run-b');
    // Two runs (started at different times): merge keeps both; one run given twice is merged once.
    for (const [d, startedAt] of [
      [dirA, hostile.startedAt],
      [dirB, '2020-01-01T00:00:00.000Z'],
    ] as const) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'run.json'), JSON.stringify({ ...hostile, startedAt }));
    }
    for (const format of Object.keys(REPORT_FORMATS)) expect((await fwbench(['report', dirA, '--format', format])).exitCode).toBe(0);
    expect((await fwbench(['compare', dirA, dirB, '--format', 'html', '--out', join(sandbox, 'a', 'compare.html')])).exitCode).toBe(0);
    const merge = await fwbench(['merge', dirA, dirB, '--out', join(sandbox, 'merged')]);
    expect(merge.exitCode, merge.stderr).toBe(0);
    expect(listFiles(sandbox)).toEqual(
      [
        'a/b/run-a/report.csv',
        'a/b/run-a/report.html',
        'a/b/run-a/report.json',
        'a/b/run-a/report.md',
        'a/b/run-a/run.json',
        'a/b/run-b/run.json',
        'a/compare.html',
        'merged/cells.jsonl',
        'merged/run.json',
      ].sort(),
    );
    expect(listFiles(elsewhere)).toEqual([]);
    // The merged run keeps the names as data.
    expect(loadRun(join(sandbox, 'merged')).cells.map((c) => c.id)).toEqual([...hostile.cells, ...hostile.cells].map((c) => c.id));
    const twice = join(tempDir('fwbench-twice-'), 'merged');
    const same = await fwbench(['merge', dirA, dirA, '--out', twice]);
    expect(same.exitCode, same.stderr).toBe(0);
    expect(same.stderr).toContain(
      `dropped ${hostile.cells.length} duplicate cell(s), identical copies of cells already merged: ${hostile.cells.map((c) => c.id).join(', ')}`,
    );
    expect(loadRun(twice).cells.map((c) => c.id)).toEqual(hostile.cells.map((c) => c.id));
    expect(loadRun(twice).sources).toHaveLength(1);
  });

  it('merge refuses an output folder holding a link named cells.jsonl, and writes nothing through it', async () => {
    const out = tempDir('fwbench-merge-link-');
    const target = join(tempDir('fwbench-victim-'), 'profile');
    symlinkSync(target, join(out, 'cells.jsonl'));
    const r = await fwbench(['merge', runDir, '--out', out]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/cells\.jsonl exists: merge writes into a new or empty folder/);
    expect(existsSync(target)).toBe(false);
  });

  it('markup in any string of a run.json stays text in the HTML report and the HTML comparison', async () => {
    const payload = `"'\`|\n\n<img src=x onerror="window.__pwned=1"><b id="injected">x</b></svg></script><script>window.__pwned=2</script>`;
    const hostile = mapStrings(run, (s, path) => (path.endsWith('At') ? s : `${s}${payload}`));
    expect(hostile.cells[0]!.mode).toContain(payload);
    expect(hostile.host.hostname).toContain(payload);
    const dir = tempDir('fwbench-markup-');
    writeFileSync(join(dir, 'run.json'), JSON.stringify(hostile));
    const plainDir = tempDir('fwbench-plain-');
    writeFileSync(join(plainDir, 'run.json'), JSON.stringify(run));
    for (const d of [dir, plainDir]) {
      expect((await fwbench(['report', d])).exitCode).toBe(0);
      expect((await fwbench(['compare', d, d, '--format', 'html', '--out', join(d, 'compare.html')])).exitCode).toBe(0);
      expect((await fwbench(['report', d, '--format', 'md'])).exitCode).toBe(0);
    }
    for (const name of ['report.html', 'compare.html']) {
      const html = readFileSync(join(dir, name), 'utf8');
      const plain = readFileSync(join(plainDir, name), 'utf8');
      expect(html).not.toMatch(/<img|<b id="injected"|<\/svg><\/script>/i);
      expect(html.match(/<script/gi)?.length).toBe(plain.match(/<script/gi)?.length);
      expect(html.match(/<\/script>/gi)?.length).toBe(plain.match(/<\/script>/gi)?.length);
      expect(html).toContain('&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;');
      expect(html).not.toContain('window.__pwned=2</script>');
    }
    // Markdown: markup outside code spans is escaped; inside a code span it is shown as text.
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('&lt;img src=x');
    expect(md.replace(/`[^`\n]*`/g, '')).not.toMatch(/<img|<script|<b id/i);
  });

  it('report --format lists exactly the report writers', async () => {
    const help = await fwbench(['report', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      `choices: ${Object.keys(REPORT_FORMATS)
        .map((f) => `"${f}"`)
        .join(', ')}`,
    );
  });
});

describe('no shell ever interprets a user string', () => {
  const SOURCES = ['harness', 'workloads', 'bin', 'bench', 'python-runners/fwbench_runner', 'python-runners/setup.sh'];
  const FORBIDDEN: Array<[RegExp, string]> = [
    [/shell\s*:\s*(true|['"`])/, 'a shell option'],
    [/execaCommand|execaCommandSync/, "execa's command-string API"],
    [/\b(execSync|exec)\s*\(\s*[`'"]/, 'child_process.exec of a string'],
    [/from\s+['"](node:)?child_process['"]/, 'child_process (use execa with an argument array)'],
    [/shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.(getoutput|getstatusoutput)\(/, 'a Python shell'],
    [/(?<![.\w])eval\s*\(|new Function\(/, 'eval'],
  ];

  it('the sources hold no shell, no command string, no eval', () => {
    const files = SOURCES.flatMap((s) =>
      s.endsWith('.sh')
        ? [s]
        : readdirSync(s, { recursive: true })
            .map((f) => join(s, String(f)))
            .filter((f) => /\.(ts|js|py)$/.test(f)),
    );
    expect(files.length).toBeGreaterThan(40);
    const found = files.flatMap((f) => {
      const text = readFileSync(f, 'utf8');
      return FORBIDDEN.filter(([re]) => re.test(text)).map(([, what]) => `${f}: ${what}`);
    });
    expect(found).toEqual([]);
  });

  it('an interpreter path and an output folder full of shell syntax are used as they are (a real torch cell runs)', async () => {
    const root = tempDir('fwbench-shell-');
    const venv = join(root, 'venv;touch PWNED1;$(touch PWNED2)`touch PWNED3`');
    symlinkSync(realpathSync('python-runners/.venv'), venv);
    const out = join(root, 'out;touch PWNED4 && $(touch PWNED5)');
    const r = await execa(
      process.execPath,
      ['bin/fwbench.js', 'run', '--engines', 'torch', '--modes', 'eager', '--workloads', 'transformer', '--batch-sizes', '1', ...QUICK, '--out', out],
      { reject: false, env: { FWBENCH_PYTHON: join(venv, 'bin', 'python') } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const cells = loadRun(out).cells;
    expect(cells.map((c) => c.status)).toEqual(['ok']);
    expect(listFiles(root).filter((f) => /^PWNED\d$/.test(f.split('/').at(-1)!))).toEqual([]);
    for (const d of [root, process.cwd()]) for (const n of [1, 2, 3, 4, 5]) expect(existsSync(join(d, `PWNED${n}`))).toBe(false);
  });
});

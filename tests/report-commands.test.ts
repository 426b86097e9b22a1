import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareRuns, type Comparison } from '../harness/report/compare.js';
import { evaluateClaims, loadClaims } from '../harness/report/claims.js';
import { buildModel } from '../harness/report/model.js';
import { runAnswers } from '../harness/report/verdict.js';
import type { Run } from '../harness/results/schema.js';
import { fwbench, tempDir } from './helpers.js';
import { HOSTILE, readRun, realRun, withSamples, writeRunDir } from './report-helpers.js';

/** Minimal RFC 4180 parser: quoted fields, doubled quotes, CRLF rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += ch;
  }
  return rows;
}

const comparison = (stdout: string): Comparison => JSON.parse(stdout) as Comparison;

describe('fwbench compare, merge, report formats and claims on a real run', () => {
  let run: Run;
  let dir: string;

  beforeAll(async () => {
    ({ run, dir } = await realRun());
  });

  it('compare flags a planted 20 % slowdown in every cell whose processes agree, and exits 1 when it flags any', async () => {
    const slower = writeRunDir(withSamples(run, (s) => s.map((v) => v * 1.2)));
    const r = await fwbench(['compare', dir, slower, '--format', 'json']);
    const c = comparison(r.stdout);
    // On a busy machine every cell's processes may disagree by more than 20 %: then nothing is
    // called and the exit is 0. The exit code follows the regressions either way.
    expect(r.exitCode, r.stderr).toBe(c.regressions > 0 ? 1 : 0);
    expect(c.pairs).toHaveLength(run.cells.length);
    for (const p of c.pairs) {
      const cell = run.cells.find((x) => x.engine === p.engine && x.workload === p.workload && x.batchSize === p.batchSize)!;
      const what = `${p.engine}/${p.workload}/b${p.batchSize} CI ${p.ci?.lo}-${p.ci?.hi}, between-process CV ${cell.variation?.betweenCv}`;
      expect(p.ratio).toBeCloseTo(1.2, 6);
      // The run has 3 processes per cell: the interval resamples them, so it is as wide as their
      // medians disagree. Where they agree within 3 % the change is always called; a cell whose
      // processes disagree more (a busy 2-core machine) may be too uncertain, but never "faster".
      expect(p.interval).toBe('replicates');
      if (cell.variation!.betweenCv < 0.03) expect(p.verdict, what).toBe('slower');
      else expect(p.verdict === 'slower' || p.ci!.lo <= 1.05, what).toBe(true);
    }
    for (const g of c.geomeans) expect(g.ratio).toBeCloseTo(1.2, 6);
    const text = await fwbench(['compare', dir, slower]);
    expect(text.exitCode).toBe(r.exitCode);
    expect(text.stdout).toMatch(/Geometric mean of B\/A per engine: onnxruntime 1\.20/);
  });

  it('compare calls a planted 3x slowdown in every cell, whatever the machine, and exits 1', async () => {
    // Resampling processes, the interval's low end is at worst 3 x (fastest / slowest process
    // median): only processes 2.9x apart could hide it.
    const slower = writeRunDir(withSamples(run, (s) => s.map((v) => v * 3)));
    const r = await fwbench(['compare', dir, slower, '--format', 'json']);
    expect(r.exitCode, r.stderr).toBe(1);
    const c = comparison(r.stdout);
    expect(c.pairs.map((p) => p.verdict)).toEqual(c.pairs.map(() => 'slower'));
    expect(c.regressions).toBe(run.cells.length);
    const text = await fwbench(['compare', dir, slower]);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/slower/);
  });

  it('compare finds no change between the two halves of the same samples (A/A) and exits 0; same input, same output', async () => {
    const even = writeRunDir(withSamples(run, (s) => s.filter((_, i) => i % 2 === 0)));
    const odd = writeRunDir(withSamples(run, (s) => s.filter((_, i) => i % 2 === 1)));
    const r = await fwbench(['compare', even, odd, '--format', 'json']);
    expect(r.exitCode, r.stdout).toBe(0);
    const c = comparison(r.stdout);
    expect(c.pairs).toHaveLength(run.cells.length);
    for (const p of c.pairs) expect(p.verdict, `${p.engine}/${p.workload}/b${p.batchSize} CI ${p.ci?.lo}-${p.ci?.hi}`).toBe('no significant change');
    // Seeded bootstrap: a second comparison gives identical intervals.
    expect(comparison((await fwbench(['compare', even, odd, '--format', 'json'])).stdout)).toEqual(c);
  });

  it('compare writes an escaped HTML page and rejects a folder without run.json with exit 2', async () => {
    const out = join(tempDir(), 'compare.html');
    const r = await fwbench(['compare', dir, dir, '--format', 'html', '--out', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/<table class="sortable" id="compare">/);
    const bad = await fwbench(['compare', dir, tempDir()]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/no run\.json/);
  });

  it('merge keeps every cell of every input with its host, and reports and compares group by host', async () => {
    const otherHost = { ...run, host: { ...run.host, hostname: 'gpu-box' }, hostFingerprint: 'EPYC 9654 x192 / 1536 GiB / 8x NVIDIA H100' };
    // Same fingerprint as the first run, another machine: the merge must tell them apart.
    const twin = { ...run, host: { ...run.host, hostname: 'twin' }, cells: run.cells.slice(0, 3) };
    const inputs = [run, otherHost, twin];
    const dirs = [dir, writeRunDir(otherHost), writeRunDir(twin)];
    const out = tempDir();
    const r = await fwbench(['merge', ...dirs, '--out', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    const merged = readRun(out);
    expect(merged.cells).toHaveLength(inputs.reduce((n, x) => n + x.cells.length, 0));
    expect(readFileSync(join(out, 'cells.jsonl'), 'utf8').trim().split('\n')).toHaveLength(merged.cells.length);
    const fingerprints = merged.sources!.map((s) => s.hostFingerprint);
    expect(fingerprints).toEqual([run.hostFingerprint, otherHost.hostFingerprint, `${run.hostFingerprint} (twin)`]);
    let at = 0;
    inputs.forEach((input, i) => {
      for (const c of input.cells) {
        const { hostFingerprint, ...rest } = merged.cells[at++]!;
        expect(hostFingerprint).toBe(fingerprints[i]);
        expect(rest).toEqual(c);
      }
    });
    // A merged run merges again (sources flatten); a run it already holds is recognised as the same
    // run, so its cells are not doubled; a second merge into the same folder is refused.
    const again = tempDir();
    const twice = await fwbench(['merge', out, dir, '--out', again]);
    expect(twice.exitCode, twice.stderr).toBe(0);
    expect(twice.stderr).toMatch(/dropped \d+ duplicate cell\(s\)/);
    expect(readRun(again).sources).toHaveLength(3);
    expect(readRun(again).cells).toHaveLength(merged.cells.length);
    expect((await fwbench(['merge', dir, '--out', out])).exitCode).toBe(2);

    const md = await fwbench(['report', out, '--format', 'md', '--out', '-']);
    expect(md.exitCode, md.stderr).toBe(0);
    for (const fp of fingerprints) expect(md.stdout).toContain(`on ${fp}`);
    // Merged vs merged: cells pair by host, so every input cell is compared once.
    const cmp = await fwbench(['compare', out, out, '--format', 'json']);
    expect(comparison(cmp.stdout).pairs).toHaveLength(merged.cells.length);
  });

  it('md, csv and json reports are parseable and carry every cell, hostile text included', async () => {
    const hostile = {
      ...run,
      hostFingerprint: HOSTILE.attribute,
      cells: run.cells.map((c, i) => (i === 0 ? { ...c, status: 'failed' as const, reason: `${HOSTILE.script}, "quoted"\nline`, fix: HOSTILE.svg } : c)),
    };
    const d = writeRunDir(hostile);
    for (const format of ['md', 'csv', 'json']) expect((await fwbench(['report', d, '--format', format])).exitCode).toBe(0);

    const csv = parseCsv(readFileSync(join(d, 'report.csv'), 'utf8'));
    expect(csv).toHaveLength(hostile.cells.length + 1);
    const head = csv[0]!;
    for (const row of csv) expect(row).toHaveLength(head.length);
    const rows = csv.slice(1).map((r) => Object.fromEntries(head.map((h, i) => [h, r[i]!])));
    expect(rows[0]!.reason).toBe(`${HOSTILE.script}, "quoted"\nline`);
    expect(rows[0]!.host).toBe(HOSTILE.attribute);
    expect(Number(rows[1]!.medianMs)).toBe(hostile.cells[1]!.stats!.medianMs);

    const json = JSON.parse(readFileSync(join(d, 'report.json'), 'utf8')) as { cells: Array<{ reason: string }>; claims: Array<{ id: string }> };
    expect(json.cells).toHaveLength(hostile.cells.length);
    expect(json.cells[0]!.reason).toContain(HOSTILE.script);
    expect(json.claims.map((c) => c.id)).toEqual(loadClaims().map((c) => c.id));

    const md = readFileSync(join(d, 'report.md'), 'utf8');
    expect(md).not.toMatch(/<script|<img|<\/svg/);
    // Every table row has as many cells as its header (no pipe in data splits a cell).
    const cells = (line: string): number => line.replace(/\\\|/g, '').split('|').length;
    const lines = md.split('\n');
    lines.forEach((line, i) => {
      if (line.startsWith('|') && !lines[i - 1]?.startsWith('|')) {
        for (let j = i; lines[j]?.startsWith('|'); j++) expect(cells(lines[j]!), lines[j]).toBe(cells(line));
      }
    });
  });

  it('claims: engines absent from the run are "not measured" with what is missing; any engine id works', () => {
    const claims = loadClaims();
    const results = evaluateClaims(buildModel(run), claims, 0.05);
    const byId = new Map(results.map((r) => [r.claim.id, r]));
    expect(results).toHaveLength(claims.length);
    expect(claims.map((c) => c.id)).toContain('torch-trains-fast');
    const tfFaster = byId.get('tf-faster')!;
    expect(tfFaster.evaluations.every((e) => e.verdict === 'not measured' && /not in this run: tensorflow, torch/.test(e.note))).toBe(true);
    // ONNX Runtime vs TensorFlow.js eager on this machine: each measured, with an interval.
    const staticFaster = byId.get('static-faster')!.evaluations.filter((e) => e.verdict !== 'not measured');
    expect(staticFaster.length).toBe(4);
    for (const e of staticFaster) {
      expect(e.ci!.lo).toBeLessThanOrEqual(e.ratio!);
      expect(e.ci!.hi).toBeGreaterThanOrEqual(e.ratio!);
    }

    // The same real cells relabelled as the Python engines (ids and modes are plain data): every
    // torch/tensorflow claim is now measured, including the memory, cold-start and trend ones.
    const relabelled: Run = {
      ...run,
      cells: run.cells.map((c) => (c.engine === 'onnxruntime' ? { ...c, engine: 'torch', mode: 'eager' } : { ...c, engine: 'tensorflow', mode: 'eager' })),
    };
    const r2 = new Map(evaluateClaims(buildModel(relabelled), claims, 0.05).map((r) => [r.claim.id, r]));
    // A claim about training is not judged on inference cells, and says so.
    const trainsFast = r2.get('torch-trains-fast')!.evaluations;
    expect(trainsFast.every((e) => e.verdict === 'not measured')).toBe(true);
    expect(trainsFast.filter((e) => /judged on training cells; this run has none \(fwbench run --tasks training\)/.test(e.note))).toHaveLength(2);
    const eager = r2.get('tf-faster')!.evaluations.filter((e) => e.comparison === 'tensorflow/eager vs torch/eager');
    expect(eager).toHaveLength(4);
    for (const e of eager) expect(e.verdict).toBe('contradicted');
    expect(r2.get('torch-faster')!.counts.supported).toBeGreaterThanOrEqual(4);
    expect(
      r2
        .get('torch-more-memory')!
        .evaluations.filter((e) => e.verdict !== 'not measured')
        .every((e) => e.ci === null),
    ).toBe(true);
    const missingMode = r2.get('xla-helps')!.evaluations;
    expect(missingMode.every((e) => e.verdict === 'not measured' && /no tensorflow\/xla cell \(modes run: eager\)/.test(e.note))).toBe(true);
    const trend = r2.get('tf-scales')!.evaluations;
    expect(trend).toHaveLength(2);
    for (const e of trend) expect(e.batch).toBe('1→2');
  });

  it("one estimator (issue 17): every claim kind, compare and the answer give the ratio of the table's medians, inside its interval", () => {
    // The run's 3-replicate cells, relabelled so every kind of bundled claim is measured: latency
    // pairs (interval over processes, then samples), memory and cold-start pairs (point ratios), trends.
    const relabelled: Run = {
      ...run,
      cells: run.cells.map((c) => (c.engine === 'onnxruntime' ? { ...c, engine: 'torch', mode: 'eager' } : { ...c, engine: 'tensorflow', mode: 'eager' })),
    };
    const model = buildModel(relabelled);
    const table = (label: string | undefined, workload: string | undefined, batch: number): Run['cells'][number] => {
      const [engine, mode] = label!.split('/');
      const found = model.sections
        .filter((s) => `${s.workload}/${s.preset}` === workload)
        .flatMap((s) => s.groups.filter((g) => g.batchSize === batch).flatMap((g) => g.cells.map((v) => v.cell)))
        .filter((c) => c.engine === engine && c.mode === mode);
      expect(found, `${label} ${workload} b${batch}`).toHaveLength(1);
      return found[0]!;
    };
    const metric = {
      latency: (c: Run['cells'][number]) => c.stats!.medianMs,
      peakHostMemory: (c: Run['cells'][number]) => c.memory!.peakHostBytes,
      coldStart: (c: Run['cells'][number]) => c.coldStart!.totalMs,
    };
    const kinds = new Set<string>();
    for (const r of evaluateClaims(model, loadClaims(), 0.05)) {
      for (const e of r.evaluations.filter((x) => x.ratio !== undefined)) {
        const m = metric[r.claim.metric];
        let expected: number;
        if (e.batch!.includes('→')) {
          const [b0, b1] = e.batch!.split('→').map(Number) as [number, number];
          const [s0, s1] = e.subject!.split(' → ');
          const [a0, a1] = e.baseline!.split(' → ');
          expected = (m(table(s1, e.workload, b1)) * m(table(a0, e.workload, b0))) / (m(table(a1, e.workload, b1)) * m(table(s0, e.workload, b0)));
          kinds.add('trend');
        } else {
          expected = m(table(e.subject, e.workload, Number(e.batch))) / m(table(e.baseline, e.workload, Number(e.batch)));
          kinds.add(`${r.claim.metric}${e.ci ? ' with interval' : ''}`);
        }
        expect(e.ratio, `${r.claim.id} ${e.comparison} ${e.workload} ${e.batch}`).toBeCloseTo(expected, 12);
        if (e.ci) {
          expect(e.ci.lo).toBeLessThanOrEqual(e.ratio!);
          expect(e.ci.hi).toBeGreaterThanOrEqual(e.ratio!);
        }
      }
    }
    expect([...kinds].sort()).toEqual(['coldStart', 'latency with interval', 'peakHostMemory', 'trend']);

    const slower = withSamples(run, (xs) => xs.map((v) => v * 1.2));
    for (const p of compareRuns(run, slower, { thresholdPct: 5 }).pairs.filter((x) => x.ci)) {
      expect(p.ratio).toBeCloseTo(p.medianBMs / p.medianAMs, 12);
      expect(p.ci!.lo).toBeLessThanOrEqual(p.ratio);
      expect(p.ci!.hi).toBeGreaterThanOrEqual(p.ratio);
    }
    for (const a of runAnswers(buildModel(run))) {
      if (a.fastest && a.next) expect(a.next.ratio).toBeCloseTo(a.next.medianMs / a.fastest.medianMs, 12);
    }
  });
});

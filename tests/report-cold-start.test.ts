import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COLD_START_MESSAGES, COLD_START_SEGMENTS, COLD_START_UNSPLIT } from '../harness/report/model.js';
import type { Run } from '../harness/results/schema.js';
import { fwbench, QUICK, tempDir } from './helpers.js';
import { readRun, writeRunDir } from './report-helpers.js';

/** The Markdown report's cold-start rows, cell label -> column values. */
function coldStartRows(md: string): Map<string, string[]> {
  const section = md.split('## Cold start')[1]!.split('\n## ')[0]!;
  const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| cell'));
  return new Map(rows.map((l) => l.slice(2, -2).split(' | ')).map(([cell, ...values]) => [cell!, values]));
}

/** The same run as fwbench wrote it before it measured import, weight loading and compilation. */
const withoutSegments = (run: Run): Run => ({
  ...run,
  cells: run.cells.map(({ coldStart, ...c }) =>
    coldStart
      ? { ...c, coldStart: { spawnMs: coldStart.spawnMs, buildMs: coldStart.buildMs, firstRunMs: coldStart.firstRunMs, totalMs: coldStart.totalMs } }
      : c,
  ),
});

describe('the reports name every segment of the cold start (real ONNX Runtime and TensorFlow.js run)', () => {
  it('Markdown and HTML show spawn, import, weights, build, compile / trace, first run and the messages left; older runs read fine with their rest named', async () => {
    const dir = tempDir();
    const r = await fwbench([
      'run',
      '--engines',
      'onnxruntime,tfjs-wasm',
      '--workloads',
      'rnn',
      '--preset',
      'tiny',
      '--batch-sizes',
      '1',
      '--out',
      dir,
      ...QUICK,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = readRun(dir);
    expect(COLD_START_SEGMENTS.map((s) => s.name)).toEqual(['spawn', 'import', 'weights', 'build', 'compile / trace', 'first run']);

    const md = (await fwbench(['report', dir, '--format', 'md', '--out', '-'])).stdout;
    const rows = coldStartRows(md);
    expect(rows.size).toBe(run.cells.length);
    for (const c of run.cells) {
      const values = rows.get(`${c.engine}/${c.mode} rnn/tiny b1`)!;
      expect(values, c.id).toHaveLength(COLD_START_SEGMENTS.length + 2);
      const [spawn, imp, weights, build, compile, first, messages, total] = values;
      expect(compile, 'no compile segment on ORT / TensorFlow.js').toBe('-');
      const sum = [spawn, imp, weights, build, first].map(Number).reduce((a, b) => a + b, 0);
      // The messages column is what the segments leave of the total, and it is small.
      expect(Number(messages)).toBeCloseTo(Number(total) - sum, 0);
      expect(Number(messages)).toBeLessThan(0.1 * Number(total));
    }

    await fwbench(['report', dir, '--out', join(dir, 'report.html')]);
    const chart = readFileSync(join(dir, 'report.html'), 'utf8').split('id="chart-0-cold-start"')[1]!.split('</figure>')[0]!;
    for (const name of [...COLD_START_SEGMENTS.map((s) => s.name), COLD_START_MESSAGES]) expect(chart).toContain(`>${name}<`);
    expect(chart).not.toContain(COLD_START_UNSPLIT);

    const old = writeRunDir(withoutSegments(run));
    const oldMd = (await fwbench(['report', old, '--format', 'md', '--out', '-'])).stdout;
    for (const values of coldStartRows(oldMd).values()) {
      expect(values[1]).toBe('-');
      expect(values[6]).toMatch(/\(incl\. import \+ weights\)$/);
    }
    await fwbench(['report', old, '--out', join(old, 'report.html')]);
    expect(readFileSync(join(old, 'report.html'), 'utf8').split('id="chart-0-cold-start"')[1]!.split('</figure>')[0]).toContain(COLD_START_UNSPLIT);
  }, 120_000);
});

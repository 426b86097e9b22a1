import { describe, expect, it } from 'vitest';
import { buildReport, REPORT_FORMATS } from '../harness/report/index.js';
import { esc } from '../harness/report/html.js';
import { buildModel } from '../harness/report/model.js';
import { answerText, runAnswers } from '../harness/report/verdict.js';
import { loadRun } from '../harness/results/read.js';
import type { Cell, Run } from '../harness/results/schema.js';
import { summarize } from '../harness/stats/summary.js';
import { answerBlock } from '../harness/report/summary.js';

/**
 * The answer in words that ends `fwbench run` and opens the HTML and Markdown reports: one
 * function makes it, so these tests build runs whose answer is known (cells made from a real
 * recorded cell, its samples scaled) and check the words and the figures.
 */

const base = loadRun('tests/fixtures/runs/v0.1.0-34a4747/run.json');
const template = base.cells[0]!;

/** A cell of `engine/mode` whose samples are the template's times `factor`, with its own memory and cold start. */
function cell(engine: string, mode: string, factor: number, peakMiB: number, coldMs: number, extra: Partial<Cell> = {}): Cell {
  const samplesMs = template.samplesMs!.map((x) => x * factor);
  const stats = summarize(samplesMs);
  return {
    ...template,
    id: `${engine}/${mode}/cpu/transformer/tiny/b1`,
    engine,
    mode,
    samplesMs,
    stats,
    memory: { peakHostBytes: peakMiB * 2 ** 20 },
    coldStart: { spawnMs: 1, buildMs: 1, firstRunMs: 1, totalMs: coldMs },
    ...extra,
  };
}
const runOf = (cells: Cell[]): Run => ({ ...base, cells });

describe('the answer in words (end of run, HTML and Markdown reports)', () => {
  it('names the fastest, its ratio to the next with an interval that holds it, the lowest memory and the fastest cold start', () => {
    const run = runOf([cell('torch', 'eager', 3, 300, 2000), cell('onnxruntime', 'all', 1, 250, 900), cell('tensorflow', 'function', 1.5, 200, 4000)]);
    const [a] = runAnswers(buildModel(run));
    expect(a!.fastest).toEqual({ who: 'onnxruntime/all', medianMs: template.stats!.medianMs });
    expect(a!.next!.who).toBe('tensorflow/function');
    expect(a!.next!.ratio).toBeCloseTo(1.5, 9);
    expect(a!.next!.interval!.lo).toBeLessThanOrEqual(1.5);
    expect(a!.next!.interval!.hi).toBeGreaterThanOrEqual(1.5);
    expect(a!.next!.significant).toBe(true);
    expect(a!.leastMemory).toMatchObject({ who: 'tensorflow/function', peakHostMiB: 200, nextWho: 'onnxruntime/all' });
    expect(a!.fastestColdStart).toEqual({ who: 'onnxruntime/all', totalMs: 900 });
    const text = answerText(a!);
    expect(text).toMatch(
      /^transformer\/tiny, batch 1: fastest onnxruntime\/all .* 1\.50x faster than the next, tensorflow\/function .*\(95 % interval [\d.]+-[\d.]+x/,
    );
    expect(text).toContain('least memory tensorflow/function (200.0 MiB peak');
    expect(text).toContain('fastest cold start onnxruntime/all (900.0 ms)');
  });

  it('says two engines are not told apart when their ratio lies within the noise threshold', () => {
    const run = runOf([cell('onnxruntime', 'all', 1, 250, 900), cell('tfjs-wasm', 'eager', 1.01, 200, 800)]);
    const [a] = runAnswers(buildModel(run));
    expect(a!.next!.significant).toBe(false);
    expect(answerText(a!)).toMatch(
      /fastest onnxruntime\/all .*, not told apart from tfjs-wasm\/eager .*: ratio 1\.01x \(95 % interval [\d.]+-[\d.]+x, within-process\) is not beyond the 5 % noise threshold/,
    );
  });

  it('gives no interval, and says why, when a side has fewer than 10 samples', () => {
    const few = (c: Cell): Cell => ({ ...c, samplesMs: c.samplesMs!.slice(0, 5), stats: summarize(c.samplesMs!.slice(0, 5)) });
    const run = runOf([few(cell('onnxruntime', 'all', 1, 250, 900)), few(cell('torch', 'compile', 1.4, 300, 9000))]);
    const [a] = runAnswers(buildModel(run));
    expect(a!.next!.interval).toBeUndefined();
    expect(a!.next!.significant).toBe(false);
    expect(answerText(a!)).toMatch(
      /fastest onnxruntime\/all .*, 1\.40x faster than the next, torch\/compile .* \(no interval: fewer than 10 samples on a side; a longer --max-time gives more\)/,
    );
  });

  it('names every cell that failed parity or failed, and leaves them out of the ranking', () => {
    const bad = cell('tfjs-node', 'eager', 0.5, 100, 100, {
      status: 'parity-failed',
      reason: 'differs',
      parity: { reference: 'onnxruntime/disabled/cpu', relL2: 3e-3, maxAbs: 0.1, tolerance: 1e-4, pass: false },
    });
    const failed = cell('torch', 'compile', 0.4, 100, 100, { status: 'failed', reason: 'worker exit code 1' });
    const run = runOf([cell('onnxruntime', 'all', 1, 250, 900), bad, failed]);
    const [a] = runAnswers(buildModel(run));
    expect(a!.fastest!.who).toBe('onnxruntime/all');
    expect(a!.next).toBeUndefined();
    const text = answerText(a!);
    expect(text).toContain('only onnxruntime/all produced a timing');
    expect(text).toContain('PARITY FAILED tfjs-node/eager (relL2 3.0e-3 > 1e-4)');
    expect(text).toContain('failed: torch/compile');
  });

  it('the end of the run, the HTML report and the Markdown report give the same answer', () => {
    const run = runOf([cell('onnxruntime', 'all', 1, 250, 900), cell('torch', 'eager', 2, 300, 2000)]);
    const report = buildReport(run, { thresholdPct: 5 });
    const text = answerText(runAnswers(report.model)[0]!);
    expect(answerBlock(run, report.model)).toContain(text);
    const html = REPORT_FORMATS.html(report);
    const answer = html.slice(html.indexOf('<section id="answer">'), html.indexOf('<section id="hosts">'));
    expect(answer).toContain(esc(text));
    // The answer opens the page: before the host tables.
    expect(html.indexOf('<section id="answer">')).toBeGreaterThan(0);
    expect(REPORT_FORMATS.md(report)).toContain(
      `## Answer\n\n- ${text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '\\|')}`,
    );
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from 'simple-statistics';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, modesToRun, unsupportedReason } from '../harness/engines/registry.js';
import { RunSchema, type Run } from '../harness/results/schema.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { CACHES } from '../workloads/generate.js';
import { fwbench, installed, QUICK, runProblems, tempDir } from './helpers.js';

/**
 * Generation end to end through the real CLI: the decoder's tiny preset on every engine that runs
 * here, in its generate modes, with and without the key/value cache, at batch 1 and 4. Every
 * engine must generate exactly the reference's token ids (ONNX Runtime, optimizations disabled,
 * with its cache), every step's logits within the fp32 tolerance, before its TTFT and TPOT are
 * recorded. Then a planted lost token (FWBENCH_FAULT=generation-skip@parity: each worker's
 * generation loop makes one step more after its first and drops it) must fail every cell's parity.
 */

const VENV = 'python-runners/.venv/bin/python';
const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
const ENGINE_LIST = [
  'onnxruntime',
  'torch',
  'tensorflow',
  'tfjs-wasm',
  'tfjs-cpu',
  ...(installed('@tensorflow/tfjs-node') ? ['tfjs-node' as const] : []),
] as const;
const PROMPT = 8;
const NEW = 6;
const args = (out: string, engines: readonly string[] = ENGINE_LIST, batches = '1,4'): string[] => [
  'run',
  '--tasks',
  'generate',
  '--preset',
  'tiny',
  '--prompt-len',
  String(PROMPT),
  '--new-tokens',
  String(NEW),
  '--batch-sizes',
  batches,
  '--engines',
  engines.join(','),
  '--threads',
  '1',
  ...QUICK,
  '--out',
  out,
];

describe('fwbench run --tasks generate: every engine, kv and no cache, batch 1 and 4, tiny', () => {
  const out = tempDir();
  let run: Run;

  beforeAll(async () => {
    expect(existsSync(VENV), `${VENV} is missing: run \`npm run setup\` (python-runners/setup.sh) to create it`).toBe(true);
    const r = await fwbench(args(out), { timeoutMs: 1_500_000 });
    expect(r.exitCode, runProblems(r.stderr)).toBe(0);
    run = readRun(out);
  }, 1_600_000);

  it('plans the decoder alone, each engine in its generate modes, each with and without the cache', () => {
    expect(run.config.workloads).toEqual(['decoder']);
    expect(run.config).toMatchObject({ tasks: ['generate'], promptLengths: [PROMPT], newTokens: NEW, caches: [...CACHES] });
    const expected = ENGINE_LIST.flatMap((e) => modesToRun(ENGINES[e], undefined, 'generate').map((m) => `${e}/${m}`));
    expect(new Set(run.cells.map((c) => `${c.engine}/${c.mode}`))).toEqual(new Set(expected));
    expect(run.cells).toHaveLength(expected.length * CACHES.length * 2);
    for (const c of run.cells) expect(unsupportedReason(ENGINES[c.engine as (typeof ENGINE_LIST)[number]], 'generate', c.mode)).toBeUndefined();
  });

  it('every cell generates the reference token ids with every step within the fp32 tolerance, then is timed step by step', () => {
    for (const c of run.cells) {
      expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
      const p = c.parity!;
      expect(p.reference).toBe('onnxruntime/disabled/cpu with its key/value cache');
      expect(p.pass).toBe(true);
      expect(p.generation, c.id).toMatchObject({ steps: NEW, rowsMatching: c.batchSize, ties: 0 });
      expect(p.relL2!, c.id).toBeLessThan(FP32_REL_L2_TOLERANCE);
      const g = c.generation!;
      expect(g).toMatchObject({ promptLength: PROMPT, newTokens: NEW });
      expect(g.generations!).toBeGreaterThanOrEqual(1);
      expect(g.tpotMs!.n).toBe(g.generations! * (NEW - 1));
      expect(g.ttftMs!.medianMs).toBeGreaterThan(0);
      expect(g.ttftMs!.loMs).toBeLessThanOrEqual(g.ttftMs!.medianMs);
      expect(g.tpotMs!.p90Ms).toBeGreaterThanOrEqual(g.tpotMs!.medianMs);
      // One sample = one whole generation: the samples are the generations' times.
      expect(c.samplesMs).toHaveLength(g.generations!);
      expect(c.stats!.medianMs).toBeCloseTo(g.e2eMs!.medianMs, 6);
      expect(g.prefillTokensPerS!).toBeCloseTo((c.batchSize * PROMPT) / (g.ttftMs!.medianMs / 1000), 6);
      // A busy machine may re-run a contended replicate: the cell's cold start is the replicates' median.
      const cold = c.replicates!.filter((r) => r.coldStart).map((r) => r.generation!.coldPassMs);
      for (const passes of cold) expect(passes).toHaveLength(NEW);
      expect(c.coldStart!.firstRunMs).toBeCloseTo(median(cold.map((passes) => passes[0]!)), 6);
    }
  });

  it('without a cache a decode step does more work: the kv cell of every engine/mode has fewer decode FLOPs than its no-cache twin', () => {
    for (const c of run.cells.filter((x) => x.generation?.cache === 'kv')) {
      const twin = run.cells.find((x) => x.id === `${c.id}/nocache`)!;
      expect(twin, c.id).toBeDefined();
      expect(twin.generation!.flops!.decode).toBeGreaterThan(c.generation!.flops!.decode);
      expect(twin.generation!.flops!.prefill).toBe(c.generation!.flops!.prefill);
    }
  });

  it('the report has the Generation section with every cell and the cache speed-up of each kv cell', async () => {
    const r = await fwbench(['report', out, '--format', 'md']);
    expect(r.exitCode, r.stderr).toBe(0);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    const section = md.slice(md.indexOf('## Generation'));
    expect(section).toContain('| TTFT ms [95% CI] |');
    const rows = section.split('\n').filter((l) => l.startsWith('| decoder/tiny |'));
    expect(rows).toHaveLength(run.cells.length);
    expect(rows.filter((l) => / \| kv \| ok \| /.test(l) && /\| \d[\d.]*x \[/.test(l))).toHaveLength(run.cells.length / 2);
  });
});

describe('a planted lost token fails parity on every engine', () => {
  it('FWBENCH_FAULT=generation-skip@parity: every cell parity-failed naming the row and step, none timed', async () => {
    const out = tempDir();
    const engines = ['onnxruntime', 'torch', 'tensorflow', 'tfjs-cpu'];
    const r = await fwbench([...args(out, engines, '2'), '--modes', 'eager,all', '--cache', 'kv'], {
      timeoutMs: 900_000,
      env: { FWBENCH_FAULT: 'generation-skip@parity' },
    });
    expect(r.exitCode).toBe(1);
    const run = readRun(out);
    expect(run.cells.map((c) => c.engine).sort()).toEqual([...engines].sort());
    for (const c of run.cells) {
      expect(c.status, c.id).toBe('parity-failed');
      // A model that repeats its token keeps the ids, but the steps after the lost one run at other positions.
      expect(c.reason, c.id).toMatch(
        /^output checked against onnxruntime\/disabled\/cpu with its key\/value cache: (row \d chose token \d+ at step [2-5] |the logits of step [2-5] differ by relative L2 )/,
      );
      expect(c.samplesMs).toBeUndefined();
    }
  }, 1_000_000);
});

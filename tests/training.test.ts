import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, unsupportedReason } from '../harness/engines/registry.js';
import { ENGINE_IDS, type EngineId } from '../harness/engines/types.js';
import { RunSchema, type Cell, type Run } from '../harness/results/schema.js';
import { TRAINING_REFERENCE_NAME } from '../harness/run/training.js';
import { TRAINING_TOLERANCES } from '../harness/stats/training-parity.js';
import { getFamily } from '../workloads/index.js';
import { TRAINING_FLOPS_FACTOR } from '../workloads/training.js';
import { familiesOf, fwbench, installed, QUICK, tempDir } from './helpers.js';

/** The families that do training (the decoder only generates). */
const TRAINED_FAMILIES = familiesOf('training');

/**
 * Training cells end to end through the real CLI, generated from the registry: every engine that
 * can train runs every mode that can on every family (tiny, batch 4) with its losses, gradients
 * and updates matching the float64 PyTorch reference; an engine or mode that cannot train is
 * skipped with its reason; a wrong optimizer planted in one engine fails parity on every family.
 */

const VENV = 'python-runners/.venv/bin/python';
const BATCH = 4;
const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
const TRAIN = ['run', '--tasks', 'training', '--workloads', TRAINED_FAMILIES.join(','), '--size', 'tiny', '--batch-sizes', String(BATCH), '--threads', '1'];

/** A training cell that passed parity and was timed. */
function expectTrained(c: Cell): void {
  expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
  expect(c.task).toBe('training');
  expect(c.id.endsWith('/training'), c.id).toBe(true);
  const t = c.parity!.training!;
  expect(c.parity!.reference).toBe(TRAINING_REFERENCE_NAME);
  expect(t.steps).toBe(3);
  for (const k of ['loss', 'gradients', 'optimizer', 'updates'] as const) {
    expect(t[k].relL2!, `${c.id} ${k}`).toBeLessThan(TRAINING_TOLERANCES[k]);
    expect(t[k].relL2!, `${c.id} ${k}`).toBeGreaterThanOrEqual(0);
  }
  expect(c.flops).toBe(getFamily(c.workload).flopsPerSample(c.params) * c.batchSize * TRAINING_FLOPS_FACTOR);
  expect(c.stats!.medianMs).toBeGreaterThan(0);
  expect(c.memory!.peakHostBytes).toBeGreaterThan(20 * 2 ** 20);
  expect(c.coldStart!.firstRunMs).toBeGreaterThan(0);
}

describe('training: every engine x trainable mode x family, tiny, through fwbench run --tasks training', () => {
  const out = tempDir();
  let run: Run;
  let stdout = '';
  const engines = ENGINE_IDS.filter((id) => id !== 'tfjs-node-gpu' || installed('@tensorflow/tfjs-node-gpu'));

  beforeAll(async () => {
    expect(existsSync(VENV), `${VENV} is missing: run \`npm run setup\` (python-runners/setup.sh) to create it`).toBe(true);
    const r = await fwbench([...TRAIN, '--engines', engines.join(','), '--out', out, ...QUICK], { timeoutMs: 1_500_000 });
    expect(r.exitCode, r.stderr + r.stdout).toBe(0);
    stdout = r.stdout;
    run = readRun(out);
  }, 1_600_000);

  it('plans, per engine, every mode that can train (the others are not run) and one cell that says why for an engine that cannot', () => {
    for (const id of engines) {
      const e = ENGINES[id];
      const trainable = e.modes.filter((m) => !unsupportedReason(e, 'training', m));
      const modes = [...new Set(run.cells.filter((c) => c.engine === id).map((c) => c.mode))];
      expect(modes, id).toEqual(trainable.length > 0 ? trainable : [e.modes[0]]);
    }
    expect(run.config.tasks).toEqual(['training']);
  });

  it('every trainable cell matches the float64 reference (losses, gradients, updates) and is timed', () => {
    const trained = run.cells.filter((c) => c.status === 'ok');
    // torch eager + compile, tensorflow eager + function + xla, tfjs-node, tfjs-cpu: on every family.
    expect(trained.length).toBe(7 * TRAINED_FAMILIES.length);
    for (const c of trained) expectTrained(c);
    // Keras-layout engines report Keras names, the PyTorch ones canonical names.
    const tf = trained.find((c) => c.engine === 'tensorflow' && c.workload === 'rnn')!;
    expect(tf.parity!.training!.gradients.tensor).toMatch(/^[a-z_0-9]+\/\d+$/);
    const torch = trained.find((c) => c.engine === 'torch' && c.workload === 'rnn')!;
    expect(torch.parity!.training!.gradients.tensor).toMatch(/^[a-z_0-9.]+$/);
  });

  it('an engine or mode that cannot train is skipped with the exact reason: onnxruntime, tfjs-wasm naming the missing kernel', () => {
    const notOk = run.cells.filter((c) => c.status !== 'ok');
    for (const c of notOk) expect(c.status, `${c.id}: ${c.reason}`).toBe('skipped');
    const ort = notOk.filter((c) => c.engine === 'onnxruntime');
    expect(ort).toHaveLength(TRAINED_FAMILIES.length);
    for (const c of ort) expect(c.reason).toBe(`onnxruntime cannot do training: ${unsupportedReason(ENGINES.onnxruntime, 'training', 'all')}`);
    const wasm = Object.fromEntries(notOk.filter((c) => c.engine === 'tfjs-wasm').map((c) => [c.workload, c.reason]));
    expect(wasm.cnn).toMatch(/the wasm backend has no kernel for Conv2DBackpropFilter/);
    expect(wasm.rnn).toMatch(/the wasm backend has no kernel for UnsortedSegmentSum/);
    expect(wasm.transformer).toMatch(/the wasm backend has no kernel for UnsortedSegmentSum/);
    expect(Object.keys(wasm).sort()).toEqual([...TRAINED_FAMILIES].sort());
    expect(notOk).toHaveLength(2 * TRAINED_FAMILIES.length);
  });

  it('a compiled mode pays its compilation in the first step, not in the timed steps', () => {
    const first = (engine: EngineId, mode: string): Cell => run.cells.find((c) => c.engine === engine && c.mode === mode && c.workload === 'transformer')!;
    const compiled = first('torch', 'compile');
    expect(compiled.coldStart!.firstRunMs).toBeGreaterThan(5 * first('torch', 'eager').coldStart!.firstRunMs);
    expect(compiled.stats!.maxMs).toBeLessThan(compiled.coldStart!.firstRunMs);
    const xla = first('tensorflow', 'xla');
    expect(xla.stats!.maxMs).toBeLessThan(xla.coldStart!.firstRunMs);
  });

  it('the summary, the Markdown report and the claims show the training cells as training', async () => {
    expect(stdout).toMatch(/Answer \(median latency per training step/);
    expect(stdout).toMatch(/cnn\/tiny training, batch 4: fastest /);
    const md = await fwbench(['report', out, '--format', 'md']);
    expect(md.exitCode, md.stderr).toBe(0);
    const text = readFileSync(join(out, 'report.md'), 'utf8');
    expect(text).toContain('## Training');
    expect(text).toContain('| loss relL2 | gradients relL2 | optimizer relL2 | updates relL2 |');
    expect(text).toMatch(/\| cnn\/tiny \| 4 \| torch\/compile \| ok \|/);
    const claims = await fwbench(['claims', out, '--json']);
    expect(claims.exitCode, claims.stderr).toBe(0);
    const results = JSON.parse(claims.stdout) as Array<{ claim: { id: string }; evaluations: Array<{ task?: string; verdict: string; workload?: string }> }>;
    const memory = results.find((r) => r.claim.id === 'torch-more-memory')!;
    const judged = memory.evaluations.filter((e) => e.verdict !== 'not measured');
    expect(judged.length).toBe(TRAINED_FAMILIES.length * 2);
    for (const e of judged) expect({ task: e.task, workload: e.workload }).toMatchObject({ task: 'training', workload: expect.stringMatching(/ training$/) });
    const trainsFast = results.find((r) => r.claim.id === 'torch-trains-fast')!;
    expect(trainsFast.evaluations.some((e) => e.verdict !== 'not measured')).toBe(true);
  });
});

describe('training parity catches a wrong optimizer planted in one engine, on every family', () => {
  for (const [plant, engine, mode] of [
    ['no-weight-decay', 'torch', 'eager'],
    ['wrong-momentum', 'tfjs-node', 'eager'],
  ] as const) {
    it(`${plant} in ${engine}: every family's cell is parity-failed on its optimizer, never timed`, async () => {
      const out = tempDir();
      const r = await fwbench([...TRAIN, '--engines', engine, '--modes', mode, '--out', out, ...QUICK], {
        timeoutMs: 600_000,
        env: { FWBENCH_PLANT: `${plant}@${engine}` },
      });
      // A parity-failed cell makes the run exit 1.
      expect(r.exitCode, r.stderr + r.stdout).toBe(1);
      const run = readRun(out);
      expect(run.cells).toHaveLength(TRAINED_FAMILIES.length);
      for (const c of run.cells) {
        expect(c.status, `${c.id}: ${c.reason}`).toBe('parity-failed');
        expect(c.stats, c.id).toBeUndefined();
        const t = c.parity!.training!;
        // Replayed on the engine's own gradients, the recipe's updates differ from the engine's far beyond fp32 noise.
        expect(t.optimizer.pass, c.id).toBe(false);
        expect(t.optimizer.relL2!, c.id).toBeGreaterThan(100 * TRAINING_TOLERANCES.optimizer);
        // The first step's gradients come before any update: the planted optimizer cannot change them.
        expect(t.gradients.pass, c.id).toBe(true);
        expect(c.reason).toMatch(/^training step differs from torch\/eager\/cpu float64: .*optimizer relL2 [\d.e+-]+ \(step\d\/.+\) > 1e-5/);
      }
    }, 600_000);
  }
});

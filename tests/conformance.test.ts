import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENGINES } from '../harness/engines/registry.js';
import { ENGINE_IDS, type EngineId } from '../harness/engines/types.js';
import { RunSchema, type Cell, type Run } from '../harness/results/schema.js';
import { REFERENCE_NAME } from '../harness/run/plan.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { expectColdStartAddsUp, familiesOf, fwbench, installed, QUICK, tempDir } from './helpers.js';

/** The families that do inference (the decoder only generates). */
const INFERENCE_FAMILIES = familiesOf('inference');

/**
 * Conformance, generated from the registry: every engine of ENGINES runs every one of its
 * `modes` on every family that does inference (familiesOf), at size tiny, through the real CLI, and each cell must
 * pass parity and be timed. An engine or family added without being implemented everywhere fails
 * here. An engine that cannot run on this machine must be skipped with the exact reason and fix
 * this test expects for this machine; any other non-ok cell fails.
 *
 * This is also where the full-mode runs of python-engines.test.ts (torch, tensorflow), tfjs-node.test.ts
 * and cli-run.test.ts (tfjs-wasm, tfjs-cpu) now live, so no engine's modes are run twice.
 */

const VENV = 'python-runners/.venv/bin/python';
const THREADS = 1;
const BATCH = 2;

/** Engines that cannot run on this machine (judged here from what is installed, not by asking the harness), with the reason and fix each of their cells must carry. */
function cannotRunHere(): Partial<Record<EngineId, { reason: string; fix: string }>> {
  const out: Partial<Record<EngineId, { reason: string; fix: string }>> = {};
  if (!installed('@tensorflow/tfjs-node-gpu'))
    out['tfjs-node-gpu'] = {
      reason:
        '@tensorflow/tfjs-node-gpu is not installed: its install script downloads libtensorflow from storage.googleapis.com, which failed, so npm dropped this optional dependency (in phase probe)',
      fix: 'npx fwbench setup tfjs-node --gpu (builds it offline against the TensorFlow Python wheel; run bash python-runners/setup.sh first), or npm install @tensorflow/tfjs-node-gpu@4.22.0 on a machine that can reach storage.googleapis.com (or set TFJS_NODE_CDN_STORAGE to a mirror); it also needs CUDA 11.2 + cuDNN 8.1 and an NVIDIA GPU',
    };
  return out;
}

/** Modes that compile or trace before the first run, so their cold start has a compile segment. */
const COMPILING_MODES: Partial<Record<EngineId, string[]>> = {
  torch: ['torchscript', 'compile', 'compile-static', 'compile-dynamic'],
  tensorflow: ['function', 'xla', 'function-signature', 'function-relaxed'],
};

/** What an engine's cells add beyond the checks every ok cell gets. */
const ENGINE_CHECKS: Partial<Record<EngineId, (run: Run) => void>> = {
  'tfjs-node': (run) => {
    for (const c of run.cells) expect(c.settings, c.id).toMatchObject({ backend: 'tensorflow', threads: THREADS });
  },
  torch: (run) => {
    expectPythonSettings(run);
    expect(run.engines.torch).toMatchObject({ available: true, framework: 'PyTorch', devices: ['cpu'] });
    expect(run.engines.torch!.details!.cudaFix).toMatch(/requirements-gpu\.txt/);
    // torch.compile compiles on its first call, made before the first run and timed as the compile segment: not in the samples, nor in the first run.
    const compiled = run.cells.find((c) => c.mode === 'compile' && c.workload === 'cnn')!;
    const eager = run.cells.find((c) => c.mode === 'eager' && c.workload === 'cnn')!;
    expect(compiled.coldStart!.compileMs).toBeGreaterThan(10 * eager.coldStart!.firstRunMs);
    expect(compiled.stats!.maxMs).toBeLessThan(compiled.coldStart!.compileMs!);
    expect(compiled.coldStart!.firstRunMs).toBeLessThan(compiled.coldStart!.compileMs! / 10);
  },
  tensorflow: (run) => {
    expectPythonSettings(run);
    expect(run.engines.tensorflow).toMatchObject({ available: true, framework: 'TensorFlow' });
  },
};

/** The Python runners apply the thread settings before the first op and read them back from the framework. */
function expectPythonSettings(run: Run): void {
  for (const c of run.cells) {
    expect(c.settings, c.id).toMatchObject({ mode: c.mode, threads: THREADS, interopThreads: 1, requestedThreads: THREADS });
    expect(c.memory!.peakHostBytes, c.id).toBeGreaterThan(100 * 2 ** 20);
  }
}

/** Every ok cell: parity against the reference passed, then timed, measured and its figures derived from its samples. */
function expectOkCell(c: Cell): void {
  expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
  expect(c.parity, c.id).toMatchObject({ reference: REFERENCE_NAME, pass: true });
  expect(c.parity!.relL2!, c.id).toBeLessThan(FP32_REL_L2_TOLERANCE);
  expect(c.stats!.n, c.id).toBeGreaterThanOrEqual(5);
  expect(c.stats!.medianMs, c.id).toBeGreaterThan(0);
  expect(c.samplesMs, c.id).toHaveLength(c.stats!.n);
  expect(c.throughput, c.id).toBeCloseTo(c.batchSize / (c.stats!.medianMs / 1000), 6);
  expect(c.gflops, c.id).toBeCloseTo(c.flops / (c.stats!.medianMs / 1000) / 1e9, 6);
  expect(c.memory!.peakHostBytes, c.id).toBeGreaterThan(20 * 2 ** 20);
  expect(c.settings, c.id).toBeDefined();
  expectColdStartAddsUp(c, COMPILING_MODES[c.engine as EngineId]?.includes(c.mode) ?? false);
}

const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
const skippedHere = cannotRunHere();

describe('conformance: every engine x mode x family of the registry, tiny, through fwbench run', () => {
  it('the registry declares what this test generates from', () => {
    expect(ENGINE_IDS.length).toBeGreaterThan(0);
    expect(INFERENCE_FAMILIES.length).toBeGreaterThan(0);
    for (const id of ENGINE_IDS) expect(ENGINES[id].modes.length, id).toBeGreaterThan(0);
  });

  for (const id of ENGINE_IDS) {
    const engine = ENGINES[id];
    const device = engine.devices[0]!;
    const skip = skippedHere[id];
    const title = skip
      ? `${id} cannot run here: every cell is skipped with the expected reason and fix, named in the run's output`
      : `${id}: ${engine.modes.join(', ')} x ${INFERENCE_FAMILIES.join(', ')} on ${device}, parity-verified and timed`;
    it(
      title,
      async () => {
        // Not skipped without the venv: the suite needs it, so its absence is a failure that says the fix.
        if (engine.language === 'python')
          expect(existsSync(VENV), `${VENV} is missing: run \`npm run setup\` (python-runners/setup.sh) to create it`).toBe(true);
        const out = tempDir();
        const args = ['run', '--engines', id, '--modes', 'all', '--workloads', INFERENCE_FAMILIES.join(','), '--size', 'tiny', '--device', device];
        const r = await fwbench([...args, '--batch-sizes', String(BATCH), '--threads', String(THREADS), '--out', out, ...QUICK], { timeoutMs: 900_000 });
        expect(r.exitCode, r.stderr + r.stdout).toBe(0);
        const run = readRun(out);
        const expected = engine.modes.flatMap((mode) => INFERENCE_FAMILIES.map((family) => `${mode}/${family}`));
        expect(run.cells.map((c) => `${c.mode}/${c.workload}`).sort()).toEqual([...expected].sort());
        // Progress goes to stderr, one line per cell; stdout has the summary table only.
        expect(r.stderr).toContain(`[${expected.length}/${expected.length}]`);
        expect(r.stdout).toMatch(/median ms/);
        expect(r.stdout).not.toMatch(/\[1\/\d+\]/);
        expect(readFileSync(join(out, 'cells.jsonl'), 'utf8').trim().split('\n')).toHaveLength(expected.length);
        expect(run.host.cpu.logicalCores).toBeGreaterThan(0);
        if (skip) {
          for (const c of run.cells) {
            expect({ status: c.status, reason: c.reason, fix: c.fix }, c.id).toEqual({ status: 'skipped', ...skip });
            expect(r.stderr).toContain(`${c.id} skipped: ${skip.reason}`);
          }
          expect(r.stdout).toContain(`skipped - ${skip.reason} (fix: ${skip.fix})`);
          return;
        }
        for (const c of run.cells) expectOkCell(c);
        expect(new Set(run.cells.map((c) => c.worker?.pid)).size).toBe(expected.length);
        ENGINE_CHECKS[id]?.(run);
      },
      600_000, // torch.compile and XLA compile each cell for ~20 s on these 2-core machines
    );
  }
});

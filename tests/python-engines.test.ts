import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkModes, ENGINES, modesToRun } from '../harness/engines/registry.js';
import { DEFAULT_MEASURE } from '../harness/worker/measure.js';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import { RunSchema, type Run } from '../harness/results/schema.js';
import { probeEngine } from '../harness/run/execute.js';
import { planCells } from '../harness/run/plan.js';
import { pythonInterpreter } from '../harness/run/workers.js';
import { expectColdStartAddsUp, fwbench, QUICK, tempDir } from './helpers.js';

const VENV = 'python-runners/.venv/bin/python';
const hasVenv = existsSync(VENV);
const readRun = (dir: string): Run => RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));

describe('--modes: which modes become cells', () => {
  const config = {
    engines: ['onnxruntime', 'torch', 'tensorflow'],
    workloads: ['rnn' as const],
    preset: { rnn: 'tiny' },
    batchSizes: [1],
    sets: [],
    device: 'cpu' as const,
    threads: [1],
    seed: 0,
    measure: DEFAULT_MEASURE,
    cellTimeoutMs: 1000,
  };
  const modes = (sel?: string[] | 'all'): string[] => planCells({ ...config, ...(sel ? { modes: sel } : {}) }).map((c) => `${c.engine}/${c.mode}`);

  it('defaults to the eager and graph modes of the Python engines (the compilers only when asked for) and the first mode of the others', () => {
    expect(modes()).toEqual(['onnxruntime/all', 'torch/eager', 'torch/torchscript', 'tensorflow/eager', 'tensorflow/function']);
  });
  it("'all' runs every mode of every engine; a list keeps each engine's listed modes, or its first", () => {
    expect(modes('all')).toHaveLength(4 + 3 + 3);
    expect(modes(['eager', 'xla'])).toEqual(['onnxruntime/all', 'torch/eager', 'tensorflow/eager', 'tensorflow/xla']);
    expect(modesToRun(ENGINES.onnxruntime, ['disabled', 'compile'])).toEqual(['disabled']);
  });
  it('rejects a mode no selected engine has, naming the valid ones', () => {
    expect(() => checkModes([ENGINES.torch, ENGINES['tfjs-wasm']], ['jit'])).toThrow(/unknown mode 'jit'.*torch eager\|torchscript\|compile/);
    expect(() => checkModes([ENGINES.torch], ['compile'])).not.toThrow();
  });
});

describe('Python interpreter lookup', () => {
  const saved = process.env.FWBENCH_PYTHON;
  afterEach(() => {
    if (saved === undefined) delete process.env.FWBENCH_PYTHON;
    else process.env.FWBENCH_PYTHON = saved;
  });
  it('FWBENCH_PYTHON wins; a missing interpreter makes the Python engines unavailable with the setup command', async () => {
    expect(pythonInterpreter({ FWBENCH_PYTHON: '/no/such/python' })).toEqual({ missing: 'FWBENCH_PYTHON=/no/such/python is not an executable file' });
    process.env.FWBENCH_PYTHON = '/no/such/python';
    const status = await probeEngine('torch');
    expect(status).toMatchObject({ available: false, framework: 'PyTorch' });
    // The fix names the variable at fault and the interpreter the set-up made.
    expect(status.fix).toMatch(
      /^point FWBENCH_PYTHON at the Python that python-runners\/setup\.sh set up \(python-runners\/\.venv\/bin\/python\), or unset it$/,
    );
    expect(status.reason).toMatch(/not an executable file/);
  });
});

describe.skipIf(!hasVenv)(
  hasVenv
    ? 'PyTorch and TensorFlow (real, python-runners/.venv)'
    : `PyTorch and TensorFlow — SKIPPED: ${VENV} is missing; run \`bash python-runners/setup.sh\` to create it`,
  () => {
    it('runs torch eager/torchscript/compile and tensorflow eager/function/xla on cnn, rnn, transformer (tiny): 18 parity-verified, timed cells', async () => {
      const out = tempDir();
      const r = await fwbench(
        [
          'run',
          '--engines',
          'torch,tensorflow',
          '--modes',
          'all',
          '--workloads',
          'cnn,rnn,transformer',
          '--preset',
          'tiny',
          '--batch-sizes',
          '2',
          '--threads',
          '1',
          '--out',
          out,
          ...QUICK,
        ],
        { timeoutMs: 900_000 },
      );
      expect(r.exitCode, r.stderr + r.stdout).toBe(0);
      const run = readRun(out);
      expect(run.cells.map((c) => `${c.engine}/${c.mode}`).sort()).toEqual(
        ['cnn', 'rnn', 'transformer']
          .flatMap(() => ['tensorflow/eager', 'tensorflow/function', 'tensorflow/xla', 'torch/compile', 'torch/eager', 'torch/torchscript'])
          .sort(),
      );
      for (const c of run.cells) {
        expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
        expect(c.parity!.pass, c.id).toBe(true);
        expect(c.parity!.relL2!, c.id).toBeLessThan(FP32_REL_L2_TOLERANCE);
        expect(c.parity!.reference).toBe('onnxruntime/disabled/cpu');
        expect(c.stats!.n).toBeGreaterThanOrEqual(5);
        expect(c.memory!.peakHostBytes).toBeGreaterThan(100 * 2 ** 20);
        expectColdStartAddsUp(c, c.mode !== 'eager');
        // Thread settings are applied before the first op and read back from the framework.
        expect(c.settings).toMatchObject({ mode: c.mode, threads: 1, interopThreads: 1, requestedThreads: 1 });
      }
      expect(new Set(run.cells.map((c) => c.worker?.pid)).size).toBe(18);
      expect(run.engines.torch).toMatchObject({ available: true, framework: 'PyTorch', devices: ['cpu'] });
      expect(run.engines.tensorflow).toMatchObject({ available: true, framework: 'TensorFlow' });
      expect(run.engines.torch!.details!.cudaFix).toMatch(/requirements-gpu\.txt/);
      // torch.compile compiles on its first call, made before the first run and timed as the compile segment: not in the samples, nor in the first run.
      const compiled = run.cells.find((c) => c.id.startsWith('torch/compile/cpu/cnn'))!;
      const eager = run.cells.find((c) => c.id.startsWith('torch/eager/cpu/cnn'))!;
      expect(compiled.coldStart!.compileMs).toBeGreaterThan(10 * eager.coldStart!.firstRunMs);
      expect(compiled.stats!.maxMs).toBeLessThan(compiled.coldStart!.compileMs!);
      expect(compiled.coldStart!.firstRunMs).toBeLessThan(compiled.coldStart!.compileMs! / 10);
    }, 600_000); // 18 cells with torch.compile and XLA compiles: ~100 s alone, more on a loaded machine
  },
);

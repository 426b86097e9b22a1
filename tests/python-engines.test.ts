import { afterEach, describe, expect, it } from 'vitest';
import { checkModes, ENGINES, modesToRun } from '../harness/engines/registry.js';
import { planConfig } from './plan-config.js';
import { probeEngine } from '../harness/run/execute.js';
import { planCells } from '../harness/run/plan.js';
import { pythonInterpreter } from '../harness/run/workers.js';

// The runs of every torch and tensorflow mode on every family are in conformance.test.ts.

describe('--modes: which modes become cells', () => {
  const config = planConfig({ engines: ['onnxruntime', 'torch', 'tensorflow'], workloads: ['rnn' as const], preset: { rnn: 'tiny' }, batchSizes: [1] });
  const modes = (sel?: string[] | 'all'): string[] => planCells({ ...config, ...(sel ? { modes: sel } : {}) }).map((c) => `${c.engine}/${c.mode}`);

  it('defaults to the eager and graph modes of the Python engines (the compilers only when asked for) and the first mode of the others', () => {
    expect(modes()).toEqual(['onnxruntime/all', 'torch/eager', 'torch/torchscript', 'tensorflow/eager', 'tensorflow/function']);
  });
  it("'all' runs every mode of every engine; a list keeps each engine's listed modes, or its first", () => {
    expect(modes('all')).toHaveLength(4 + 5 + 5);
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

import { describe, expect, it } from 'vitest';
import { getFamily, resolveParams } from '../workloads/index.js';
import { DEFAULT_MEASURE } from '../harness/worker/measure.js';
import type { RunConfig } from '../harness/results/schema.js';
import { CellSchema } from '../harness/results/schema.js';
import type { PlannedCell } from '../harness/run/plan.js';
import { cellFromReplicates } from '../harness/run/record.js';
import type { WorkerOutcome } from '../harness/run/outcome.js';

/** How worker outcomes become cell records: the status rules, independent of any engine. */
const family = getFamily('rnn');
const planned: PlannedCell = {
  id: 'x',
  task: 'inference',
  shapes: 'fixed',
  precision: 'fp32',
  engine: 'tfjs-cpu',
  mode: 'eager',
  device: 'cpu',
  family,
  preset: 'tiny',
  params: resolveParams(family, 'tiny'),
  batchSize: 2,
  threads: 2,
};
const config: RunConfig = {
  engines: ['tfjs-cpu'],
  workloads: ['rnn'],
  preset: { rnn: 'tiny' },
  batchSizes: [2],
  sets: [],
  device: 'cpu',
  threads: [2],
  seed: 0,
  measure: DEFAULT_MEASURE,
  cellTimeoutMs: 1000,
};
const complete: WorkerOutcome = {
  done: true,
  exitCode: 0,
  signal: null,
  timedOut: false,
  logTail: [],
  spawnMs: 100,
  toFirstOutputMs: 300,
  hello: { type: 'hello', protocol: 1, pid: 42, language: 'node', runtime: 'node v20' },
  built: { type: 'built', phases: { importMs: 60, weightsMs: 5, buildMs: 50 }, settings: { threads: 1 } },
  parity: { type: 'parity', firstRunMs: 20, shape: [2, 2], values: [1, 2, 3, 4] },
  samples: {
    type: 'samples',
    warmupNs: [3e6],
    samplesNs: [2e6, 4e6, 3e6],
    stopReason: 'target-interval',
    warmupStopReason: 'stable',
    interval: { medianNs: 3e6, loNs: 2e6, hiNs: 4e6, halfWidthPct: 100 / 3 },
    clockResolutionNs: 30,
  },
  memory: { type: 'memory', peakHostBytes: 1e8 },
};
const passed = { reference: 'onnxruntime/disabled/cpu', relL2: 1e-7, maxAbs: 1e-7, tolerance: 1e-4, pass: true };
const startedAt = '2026-01-01T00:00:00Z';
/** One replicate's outcome as its cell record. */
const record = (o: WorkerOutcome, parity = passed) => CellSchema.parse(cellFromReplicates(planned, config, startedAt, 10, [{ o, parity, startedAt }]));

describe('cell records from worker outcomes', () => {
  it('a complete, parity-passing outcome is ok with stats, throughput, GFLOP/s, memory and cold start', () => {
    const c = record(complete);
    expect(c.status).toBe('ok');
    expect(c.stats).toMatchObject({ n: 3, medianMs: 3 });
    expect(c.throughput).toBeCloseTo(2 / 0.003, 6);
    expect(c.gflops).toBeCloseTo((family.flopsPerSample(planned.params) * 2) / 0.003 / 1e9, 9);
    expect(c.coldStart).toEqual({ spawnMs: 100, importMs: 60, weightsMs: 5, buildMs: 50, firstRunMs: 20, totalMs: 300 });
    expect(c.memory).toEqual({ peakHostBytes: 1e8 });
  });
  it('a parity failure is parity-failed and never carries timings', () => {
    const c = record(complete, { ...passed, relL2: 0.3, pass: false });
    expect(c.status).toBe('parity-failed');
    expect(c.stats).toBeUndefined();
    expect(c.samplesMs).toBeUndefined();
    expect(c.reason).toMatch(/differs from onnxruntime\/disabled\/cpu/);
  });
  it('an engine that cannot run here is skipped with its fix', () => {
    const c = record({
      ...complete,
      samples: undefined,
      done: false,
      error: { type: 'error', phase: 'build', message: 'CUDA EP missing', unavailable: true, fix: 'install it' },
    });
    expect(c).toMatchObject({ status: 'skipped', reason: 'CUDA EP missing', fix: 'install it' });
  });
  it('a worker killed, timed out or erroring is failed with the cause and phase', () => {
    expect(record({ ...complete, samples: undefined, done: false, timedOut: true, signal: 'SIGTERM' }).reason).toMatch(/timed out/);
    expect(record({ ...complete, samples: undefined, done: false, exitCode: null, signal: 'SIGKILL' }).reason).toMatch(/killed by SIGKILL/);
    const e = record({ ...complete, samples: undefined, done: false, exitCode: 1, error: { type: 'error', phase: 'measure', message: 'boom\nmore' } });
    expect(e).toMatchObject({ status: 'failed', reason: 'boom (in phase measure)', phase: 'measure', cause: 'exception' });
    const oom = record({
      ...complete,
      samples: undefined,
      done: false,
      exitCode: 1,
      error: { type: 'error', phase: 'build', message: 'MemoryError: Unable to allocate 4.00 GiB' },
    });
    expect(oom).toMatchObject({ cause: 'out-of-memory', reason: 'out of memory in phase build (exit code 1): MemoryError: Unable to allocate 4.00 GiB' });
  });
});

describe('contended replicates (issue 17)', () => {
  const load = (othersCores: number) => ({
    wallMs: 1000,
    ownCpuMs: (2 - othersCores) * 1000,
    involuntarySwitches: 3,
    machine: { cores: 2, busyCores: 2, stealCores: 0 },
  });
  const slow: WorkerOutcome = { ...complete, samples: { ...complete.samples!, samplesNs: [300e6, 310e6], load: load(1) } };
  const clean: WorkerOutcome = { ...complete, samples: { ...complete.samples!, load: load(0) } };
  const why = 'other processes used 1.00 of 2 cores while the machine was saturated (2.00 busy; this worker 1.00)';

  it('a contended replicate keeps its figures and reason, is not pooled, and gets no offset; the clean one is the cell', () => {
    const c = CellSchema.parse(
      cellFromReplicates(planned, config, startedAt, 10, [
        { o: slow, parity: passed, startedAt, contended: why },
        { o: clean, parity: passed, startedAt },
      ]),
    );
    expect(c.status).toBe('ok');
    expect(c.replicates!.map((r) => [r.status, r.reason, r.offset])).toEqual([
      ['contended', why, undefined],
      ['ok', null, 0],
    ]);
    expect(c.replicates![0]).toMatchObject({ medianMs: 305, othersCores: 1, load: load(1) });
    expect(c.samplesMs).toEqual([2, 4, 3]);
    expect(c.stats!.medianMs).toBe(3);
    expect(c.warnings!.find((w) => w.code === 'contended')!.message).toBe(`replicate 0 contended and re-run: ${why}`);
  });

  it('no clean replicate: the cell is unstable, with no timing, every replicate named, and the fix', () => {
    const c = CellSchema.parse(
      cellFromReplicates(planned, config, startedAt, 10, [
        { o: slow, parity: passed, startedAt, contended: why },
        { o: slow, parity: passed, startedAt, contended: why },
      ]),
    );
    expect(c.status).toBe('unstable');
    expect(c.stats).toBeUndefined();
    expect(c.samplesMs).toBeUndefined();
    expect(c.reason).toBe(`every replicate's timed loop was contended, so no timing is trusted: replicate 0: ${why}; replicate 1: ${why}`);
    expect(c.fix).toMatch(/--wait-idle/);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CellLineSchema, RunSchema, type Cell, type Run } from '../harness/results/schema.js';
import { expectOkCells, fwbench, QUICK, tempDir } from './helpers.js';

/**
 * The fault-injection suite: FWBENCH_FAULT (test-only) makes one engine's real worker process
 * crash, hang, garble the protocol or exhaust memory in a chosen phase. The faulty cell must be
 * `failed` with the cause, the phase, the exit code or signal and the worker's last output, and
 * every other cell must be ok and complete.
 */

interface FaultRun {
  exitCode: number;
  stderr: string;
  run: Run;
  lines: Cell[];
}

async function runWithFault(fault: string, engines: string[], extra: string[] = []): Promise<FaultRun> {
  const out = tempDir('fwbench-fault-');
  const r = await fwbench(
    [
      'run',
      '--engines',
      engines.join(','),
      '--modes',
      'eager',
      '--workloads',
      'rnn',
      '--batch-sizes',
      '1',
      '--out',
      out,
      ...QUICK,
      '--timeout',
      '20',
      ...extra,
    ],
    { env: { FWBENCH_FAULT: fault } },
  );
  const run = RunSchema.parse(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')));
  const lines = readFileSync(join(out, 'cells.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => CellLineSchema.parse(JSON.parse(l)));
  return { exitCode: r.exitCode, stderr: r.stderr, run, lines };
}

/** The faulty engine's cell, after checking the run and every other cell. */
function faulty(r: FaultRun, engine: string): Cell {
  expect(r.exitCode, r.stderr).toBe(1);
  expect(r.run.state).toBe('complete');
  expect(r.run.cells).toHaveLength(2);
  expect(r.lines.map((c) => c.id).sort()).toEqual(r.run.cells.map((c) => c.id).sort());
  const others = r.run.cells.filter((c) => c.engine !== engine);
  expectOkCells(others, 1);
  for (const c of others) {
    expect(c.stats!.n).toBeGreaterThanOrEqual(5);
    expect(c.samplesMs).toHaveLength(c.stats!.n);
  }
  const c = r.run.cells.find((x) => x.engine === engine)!;
  expect(c.status).toBe('failed');
  // The progress line shows the same reason.
  expect(r.stderr).toContain(c.reason!);
  return c;
}

describe('worker faults (real Node workers, injected with FWBENCH_FAULT)', () => {
  const node = ['onnxruntime', 'tfjs-wasm'];

  it('non-zero exit: cause exit-code, the code and the phase', async () => {
    const c = faulty(await runWithFault('exit@build:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'exit-code', phase: 'build', worker: { exitCode: 3 } });
    expect(c.reason).toMatch(/^worker exit code 3 in phase build; last output: injected fault exit@build/);
  });

  it('SIGSEGV: cause signal, the signal name, the phase and the last stderr line', async () => {
    const c = faulty(await runWithFault('segv@measure:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'signal', phase: 'measure', worker: { signal: 'SIGSEGV' } });
    expect(c.reason).toMatch(/^worker killed by SIGSEGV in phase measure; last output: injected fault segv@measure/);
    expect(c.worker!.logTail!.join('\n')).toMatch(/raising SIGSEGV/);
  });

  it('SIGKILL (as the OOM killer sends it): cause signal in the parity phase', async () => {
    const c = faulty(await runWithFault('kill@parity:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'signal', phase: 'parity', worker: { signal: 'SIGKILL' } });
  });

  it('a hang past the cell timeout: the process group is killed, cause timeout, phase warmup', async () => {
    // The timeout counts from the spawn: 8 s leaves a loaded 2-core machine time to reach the warm-up
    // (3 s did not: seen at 'load' under a load average of 8).
    const r = await runWithFault('hang@warmup:tfjs-wasm', node, ['--timeout', '8']);
    const c = faulty(r, 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'timeout', phase: 'warmup' });
    expect(c.reason).toMatch(/^timed out after 8 s in phase warmup; the worker's process group was killed/);
    expect(c.durationMs).toBeGreaterThanOrEqual(8000);
    expect(c.durationMs).toBeLessThan(15_000);
  });

  it('a garbage protocol line: cause protocol, the line quoted, the worker stopped', async () => {
    const c = faulty(await runWithFault('garbage@build:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'protocol', phase: 'build' });
    expect(c.reason).toMatch(/^invalid protocol line "this is not a protocol message" \(.*JSON.*\) in phase build; the worker was stopped$/);
  });

  it('a truncated protocol line: cause protocol, phase measure', async () => {
    const c = faulty(await runWithFault('truncate@measure:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'protocol', phase: 'measure' });
    expect(c.reason).toMatch(/^invalid protocol line "\{\\"type\\":\\"samples\\",\\"warmupNs\\":\[12345," \(Unexpected end of JSON input\)/);
  });

  it('a JavaScript exception: cause exception with the message, phase load', async () => {
    const c = faulty(await runWithFault('exception@load:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'exception', phase: 'load', worker: { exitCode: 1 } });
    expect(c.reason).toBe('injected fault exception@load (FWBENCH_FAULT) (in phase load)');
  });

  it('V8 heap exhaustion under --max-memory-mb: cause out-of-memory from the heap abort', async () => {
    const r = await runWithFault('oom@build:tfjs-wasm', node, ['--max-memory-mb', '300']);
    expect(r.run.config.maxMemoryMb).toBe(300);
    const c = faulty(r, 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'out-of-memory', phase: 'build', worker: { signal: 'SIGABRT' } });
    expect(c.reason).toMatch(/^out of memory in phase build \(killed by SIGABRT\): .*JavaScript heap out of memory/);
  });

  it('fake GPU condition: an injected TensorFlow CUDA OOM message from a Node worker is out-of-memory', async () => {
    const c = faulty(await runWithFault('cuda-oom@build:tfjs-wasm', node), 'tfjs-wasm');
    expect(c).toMatchObject({ cause: 'out-of-memory', phase: 'build' });
    expect(c.reason).toMatch(/OOM when allocating tensor .*GPU_0_bfc/);
  });
});

describe('worker faults (real Python runner, injected with FWBENCH_FAULT)', () => {
  it('a Python exception: cause exception, the exception class and message, phase build', async () => {
    const c = faulty(await runWithFault('exception@build:torch', ['onnxruntime', 'torch']), 'torch');
    expect(c).toMatchObject({ cause: 'exception', phase: 'build', worker: { exitCode: 1 } });
    expect(c.reason).toBe('RuntimeError: injected fault exception@build (FWBENCH_FAULT) (in phase build)');
  });

  it('MemoryError under --max-memory-mb (RLIMIT_DATA): cause out-of-memory', async () => {
    const r = await runWithFault('oom@build:torch', ['onnxruntime', 'torch'], ['--max-memory-mb', '1500']);
    const c = faulty(r, 'torch');
    expect(c).toMatchObject({ cause: 'out-of-memory', phase: 'build' });
    expect(c.reason).toBe('out of memory in phase build (exit code 1): MemoryError');
  });

  it('fake GPU condition: torch.cuda.OutOfMemoryError (injected, no GPU here) is out-of-memory', async () => {
    const c = faulty(await runWithFault('cuda-oom@parity:torch', ['onnxruntime', 'torch']), 'torch');
    expect(c).toMatchObject({ cause: 'out-of-memory', phase: 'parity' });
    expect(c.reason).toMatch(/: OutOfMemoryError: CUDA out of memory\. Tried to allocate/);
  });

  it('fake GPU condition: TensorFlow ResourceExhaustedError (injected, no GPU here) is out-of-memory', async () => {
    const c = faulty(await runWithFault('cuda-oom@parity:tensorflow', ['onnxruntime', 'tensorflow']), 'tensorflow');
    expect(c).toMatchObject({ cause: 'out-of-memory', phase: 'parity' });
    expect(c.reason).toMatch(/: ResourceExhaustedError: OOM when allocating tensor/);
  });
});

describe('batch-size sweep', () => {
  // Which allocation hits the cap first varies with the machine's load: the wasm heap's growth,
  // V8's own heap, or the code space V8 compiles optimised WebAssembly into (on a background
  // thread: "Fatal process out of memory: Commit wasm code space", SIGTRAP or SIGABRT). The last
  // can strike while the worker writes its 400 KB parity line; such a cut-off line once made this
  // cell 'protocol' in CI, and is now classified by how the worker died (tests/failure-classify).
  it('a real out-of-memory, not injected: tfjs-wasm at batch 2048 under --max-memory-mb 300', async () => {
    const out = tempDir('fwbench-real-oom-');
    const r = await fwbench([
      'run',
      '--engines',
      'tfjs-wasm',
      '--workloads',
      'cnn',
      '--batch-sizes',
      '1,2048,4096',
      '--out',
      out,
      ...QUICK,
      '--max-memory-mb',
      '300',
    ]);
    expect(r.exitCode, r.stderr).toBe(1);
    const run = RunSchema.parse(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')));
    const [b1, b2048, b4096] = run.cells;
    expectOkCells([b1!], 1);
    expect(b2048).toMatchObject({ status: 'failed', cause: 'out-of-memory' });
    expect(b2048!.reason).toMatch(
      /^out of memory in phase (parity|warmup|measure) \((exit code 1|killed by SIGABRT|killed by SIGTRAP)\): .*(WebAssembly\.Memory\.grow\(\): Unable to grow instance memory|JavaScript heap out of memory|process out of memory: Commit wasm code space|Commit wasm code space Allocation failed - process out of memory)/,
    );
    expect(b4096).toMatchObject({ status: 'skipped', reason: 'not run: batch 2048 ran out of memory; largest batch that fit: 1' });
    expect(run.largestBatchFit).toEqual([{ engine: 'tfjs-wasm', mode: 'eager', device: 'cpu', workload: 'cnn', largestBatch: 1, outOfMemoryAtBatch: 2048 }]);
  });

  it('after an out-of-memory at batch 4, larger batches are skipped and run.json records the largest batch that fit', async () => {
    const out = tempDir('fwbench-sweep-');
    const r = await fwbench(
      ['run', '--engines', 'onnxruntime,tfjs-wasm', '--workloads', 'rnn', '--batch-sizes', '1,2,4,8', '--out', out, ...QUICK, '--max-memory-mb', '400'],
      { env: { FWBENCH_FAULT: 'oom@build:tfjs-wasm:4' } },
    );
    expect(r.exitCode, r.stderr).toBe(1);
    const run = RunSchema.parse(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')));
    const wasm = Object.fromEntries(run.cells.filter((c) => c.engine === 'tfjs-wasm').map((c) => [c.batchSize, c]));
    expect(wasm[1]!.status).toBe('ok');
    expect(wasm[2]!.status).toBe('ok');
    expect(wasm[4]).toMatchObject({ status: 'failed', cause: 'out-of-memory' });
    expect(wasm[8]).toMatchObject({ status: 'skipped', reason: 'not run: batch 4 ran out of memory; largest batch that fit: 2' });
    expect(wasm[8]!.worker).toBeUndefined();
    expectOkCells(
      run.cells.filter((c) => c.engine === 'onnxruntime'),
      4,
    );
    expect(run.largestBatchFit).toEqual([{ engine: 'tfjs-wasm', mode: 'eager', device: 'cpu', workload: 'rnn', largestBatch: 2, outOfMemoryAtBatch: 4 }]);
  });
});

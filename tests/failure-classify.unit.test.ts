import { describe, expect, it } from 'vitest';
import { classifyFailure, isOutOfMemoryText } from '../harness/run/failure.js';
import type { WorkerOutcome } from '../harness/run/outcome.js';
import { runWorkerProcess } from '../harness/run/workers.js';

const dead = (o: Partial<WorkerOutcome>): WorkerOutcome => ({
  done: false,
  exitCode: null,
  signal: null,
  timedOut: false,
  logTail: [],
  phase: 'measure',
  ...o,
});

describe('failure causes', () => {
  it('fake GPU condition: the CUDA out-of-memory messages of ONNX Runtime, PyTorch and TensorFlow are out-of-memory', () => {
    for (const m of [
      'CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc((void**)&p, size);',
      '[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of size 1073741824',
      'OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB',
      'ResourceExhaustedError: OOM when allocating tensor with shape[1024,1024,256]',
    ]) {
      expect(isOutOfMemoryText(m), m).toBe(true);
      expect(classifyFailure(dead({ exitCode: 1, error: { type: 'error', phase: 'build', message: m } }))).toMatchObject({ cause: 'out-of-memory' });
    }
    expect(isOutOfMemoryText('RuntimeError: shapes do not match')).toBe(false);
  });

  it("fake kernel condition: a SIGKILL while the memory cgroup's oom_kill count rose is out-of-memory; a plain SIGKILL is a signal", () => {
    expect(classifyFailure(dead({ signal: 'SIGKILL', oomKillSeen: true, logTail: ['loading'] }))).toEqual({
      cause: 'out-of-memory',
      reason: "out of memory in phase measure: killed by SIGKILL while the kernel's OOM killer fired (memory cgroup oom_kill count rose); last output: loading",
    });
    expect(classifyFailure(dead({ signal: 'SIGKILL' }))).toEqual({ cause: 'signal', reason: 'worker killed by SIGKILL in phase measure' });
  });

  it('a timeout wins over the signal that ended it; the phase defaults to start', () => {
    expect(classifyFailure(dead({ timedOut: true, timeoutMs: 5000, signal: 'SIGTERM' })).reason).toBe(
      "timed out after 5 s in phase measure; the worker's process group was killed",
    );
    expect(classifyFailure({ done: false, exitCode: 0, signal: null, timedOut: false, logTail: [] })).toEqual({
      cause: 'protocol',
      reason: 'worker ended without completing the protocol in phase start',
    });
  });

  it("a line cut off by the worker's death is not a protocol error: the death is the cause", () => {
    const cutOff = { protocolError: 'invalid protocol line "{\\"type\\":\\"parity\\"" (Unexpected end of JSON input)', protocolCutOff: true };
    // V8's out-of-memory line scrolled out of the 20-line tail behind its native stack trace.
    const frames = Array.from({ length: 20 }, (_, i) => ` ${i + 1}: 0x${(i + 16).toString(16)} [/usr/bin/node]`);
    expect(
      classifyFailure(
        dead({ ...cutOff, phase: 'parity', signal: 'SIGTRAP', logTail: frames, outOfMemoryLine: '# Fatal process out of memory: Commit wasm code space' }),
      ),
    ).toEqual({
      cause: 'out-of-memory',
      reason: 'out of memory in phase parity (killed by SIGTRAP): # Fatal process out of memory: Commit wasm code space',
    });
    expect(classifyFailure(dead({ ...cutOff, signal: 'SIGSEGV' }))).toEqual({
      cause: 'signal',
      reason: 'worker killed by SIGSEGV in phase measure; its last protocol line was cut off',
    });
    expect(classifyFailure(dead({ ...cutOff, exitCode: 0 })).cause).toBe('protocol');
    // A live worker that writes an invalid line is still a protocol failure, whatever it does after being stopped.
    expect(classifyFailure(dead({ protocolError: cutOff.protocolError, signal: 'SIGTERM' })).cause).toBe('protocol');
  });
});

describe('failure causes from a real process (a scripted worker, not a framework)', () => {
  // What a tfjs-wasm worker did at batch 2048 under --max-memory-mb in CI: died of out-of-memory
  // while writing its large parity line, V8's out-of-memory line followed by more native stack
  // frames than the log tail keeps. A scripted worker reproduces the output deterministically.
  const script = `
    const fs = require('node:fs');
    fs.readSync(3, Buffer.alloc(4096)); // the probe message, read as a real worker does
    fs.writeSync(3, '{"type":"hello","protocol":1,"pid":' + process.pid + ',"language":"node","runtime":"scripted"}\\n{"type":"phase","phase":"parity"}\\n{"type":"parity","firstRunMs":1.5,"values":[0.125,');
    fs.writeSync(2, '#\\n# Fatal process out of memory: Commit wasm code space\\n#\\n');
    for (let i = 1; i <= 30; i++) fs.writeSync(2, ' ' + i + ': 0x' + (4096 + i).toString(16) + ' [/usr/bin/node]\\n');
    process.abort();
  `;

  it('the out-of-memory line is found beyond the log tail, and the cut-off line does not make it a protocol failure', async () => {
    const o = await runWorkerProcess(process.execPath, ['-e', script], { type: 'probe', engine: 'scripted' } as never, { timeoutMs: 20_000 });
    expect(o.signal).toBe('SIGABRT');
    expect(o.protocolCutOff).toBe(true);
    expect(o.logTail).toHaveLength(20);
    expect(o.logTail.some((l) => isOutOfMemoryText(l))).toBe(false);
    expect(classifyFailure(o)).toEqual({
      cause: 'out-of-memory',
      reason: 'out of memory in phase parity (killed by SIGABRT): # Fatal process out of memory: Commit wasm code space',
    });
  });
});

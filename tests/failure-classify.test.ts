import { describe, expect, it } from 'vitest';
import { classifyFailure, isOutOfMemoryText } from '../harness/failure.js';
import type { WorkerOutcome } from '../harness/spawn.js';

const dead = (o: Partial<WorkerOutcome>): WorkerOutcome => ({ done: false, exitCode: null, signal: null, timedOut: false, logTail: [], phase: 'measure', ...o });

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
    expect(classifyFailure(dead({ timedOut: true, timeoutMs: 5000, signal: 'SIGTERM' })).reason).toBe("timed out after 5 s in phase measure; the worker's process group was killed");
    expect(classifyFailure({ done: false, exitCode: 0, signal: null, timedOut: false, logTail: [] })).toEqual({ cause: 'protocol', reason: 'worker ended without completing the protocol in phase start' });
  });
});

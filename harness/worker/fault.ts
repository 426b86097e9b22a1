import { PHASES, type Phase } from './protocol.js';

/**
 * Test-only fault injection: `FWBENCH_FAULT=<kind>@<phase>[:<engine>[:<minBatch>]]` makes a real
 * worker process fail on entering `phase` (of a cell of `engine` with batch >= `minBatch`, when
 * given), so the fault suite exercises the orchestrator's handling of crashes, hangs, garbage and
 * memory exhaustion. `precision-fallback@build` is a planted silent fallback: the engine builds
 * without its precision mechanism (BuildRequest.plantPrecisionFallback) while the cell still asks
 * for the precision, so only the worker's observation of the dtypes can catch it. `generation-skip@parity`
 * plants a lost token: the parity generation makes one decode step more after its first and drops it
 * (the off-by-one of a generation loop), so only the comparison with the reference can catch it. The Python runner honours the same variable (fwbench_runner/fault.py). Not a
 * user feature: nothing sets it outside tests.
 */
export const FAULT_KINDS = [
  'exit',
  'segv',
  'kill',
  'hang',
  'garbage',
  'truncate',
  'exception',
  'oom',
  'cuda-oom',
  'precision-fallback',
  'generation-skip',
] as const;
/** What the worker does when the fault fires. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A parsed FWBENCH_FAULT. */
export interface Fault {
  kind: FaultKind;
  phase: Phase;
  /** Only cells of this engine (probes included); absent = every engine. */
  engine?: string;
  /** Only cells with at least this batch size. */
  minBatch?: number;
}

/** Parses FWBENCH_FAULT; a malformed value throws (a test switch must not silently do nothing). */
export function parseFault(text: string | undefined): Fault | undefined {
  if (!text) return undefined;
  const m = /^([a-z-]+)@([a-z-]+)(?::([a-z0-9-]+)(?::(\d+))?)?$/.exec(text);
  const kind = m?.[1] as FaultKind | undefined;
  const phase = m?.[2] as Phase | undefined;
  if (!m || !kind || !phase || !FAULT_KINDS.includes(kind) || !PHASES.includes(phase)) {
    throw new Error(
      `FWBENCH_FAULT='${text}' is not <kind>@<phase>[:<engine>[:<minBatch>]] with kind in ${FAULT_KINDS.join('|')} and phase in ${PHASES.join('|')}`,
    );
  }
  return { kind, phase, ...(m[3] ? { engine: m[3] } : {}), ...(m[4] ? { minBatch: Number(m[4]) } : {}) };
}

/** The message each framework gives when a CUDA allocation fails (injected: there is no GPU here). */
const CUDA_OOM: Record<string, string> = {
  onnxruntime:
    'CUDA failure 2: out of memory ; GPU=0 ; file=cuda_allocator.cc ; expr=cudaMalloc((void**)&p, size); Failed to allocate memory for requested buffer of size 1073741824',
  tfjs: 'ResourceExhaustedError: OOM when allocating tensor with shape[1024,1024,256] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc',
};

/** Where a worker is when it may fire a fault. */
export interface FaultSite {
  phase: Phase;
  engine: string;
  batchSize?: number;
  /** Writes raw bytes on the protocol channel. */
  writeRaw(text: string): Promise<void>;
}

const never = (): Promise<never> => new Promise(() => setInterval(() => undefined, 60_000));

/** Whether `fault` applies at a site: its phase, and its engine and minimum batch where it names them. */
export function faultApplies(fault: Fault | undefined, site: Pick<FaultSite, 'phase' | 'engine' | 'batchSize'>): fault is Fault {
  if (!fault || fault.phase !== site.phase) return false;
  if (fault.engine && fault.engine !== site.engine) return false;
  return fault.minBatch === undefined || (site.batchSize ?? 0) >= fault.minBatch;
}

/** Fires `fault` if it applies at `site`; returns normally otherwise (and after `garbage`, and for `precision-fallback`, which the worker plants in the build request). */
export async function maybeFault(fault: Fault | undefined, site: FaultSite): Promise<void> {
  if (!faultApplies(fault, site)) return;
  const what = `injected fault ${fault.kind}@${fault.phase} (FWBENCH_FAULT)`;
  switch (fault.kind) {
    case 'exit':
      process.stderr.write(`${what}: exiting with code 3\n`);
      return process.exit(3);
    case 'segv':
    case 'kill':
      process.stderr.write(`${what}: raising ${fault.kind === 'segv' ? 'SIGSEGV' : 'SIGKILL'}\n`);
      process.kill(process.pid, fault.kind === 'segv' ? 'SIGSEGV' : 'SIGKILL');
      return never();
    case 'hang':
      process.stderr.write(`${what}: hanging\n`);
      return never();
    case 'garbage':
      await site.writeRaw('this is not a protocol message\n');
      return;
    case 'truncate':
      await site.writeRaw('{"type":"samples","warmupNs":[12345,');
      return process.exit(0);
    case 'exception':
      throw new Error(what);
    case 'oom': {
      // Real exhaustion: keep allocating on the V8 heap until the worker's cap (--max-memory-mb,
      // applied as --max-old-space-size) kills it. Without a cap it would eat the machine.
      if (!process.env.FWBENCH_MAX_MEMORY_MB) throw new Error(`${what} needs a memory cap: run with --max-memory-mb`);
      process.stderr.write(`${what}: allocating until the ${process.env.FWBENCH_MAX_MEMORY_MB} MB cap\n`);
      const hog: number[][] = [];
      for (;;) hog.push(new Array<number>(1 << 20).fill(hog.length + 0.5));
    }
    case 'cuda-oom':
      throw new Error(CUDA_OOM[site.engine === 'onnxruntime' ? 'onnxruntime' : 'tfjs']);
    case 'generation-skip':
      // Nothing fails here: the worker's generation loop (node-worker.ts) drops a step.
      process.stderr.write(`${what}: the parity generation drops its second token\n`);
      return;
    case 'precision-fallback':
      // Nothing fails here: the build request carries plantPrecisionFallback (node-worker.ts), so the
      // cell runs without its precision mechanism and only its observed dtypes can tell.
      process.stderr.write(`${what}: building without the precision mechanism\n`);
      return;
  }
}

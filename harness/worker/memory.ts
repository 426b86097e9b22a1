import { readFileSync } from 'node:fs';

/**
 * Peak resident set size of this process (VmHWM), read the same way by every worker. Not
 * ru_maxrss: on Linux a child inherits its parent's high-water mark through exec.
 */
export function peakHostBytes(statusPath = '/proc/self/status'): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(statusPath, 'utf8'));
  if (!m) throw new Error(`${statusPath} has no VmHWM line`);
  return Number(m[1]) * 1024;
}

interface GrowableMemory {
  grow(delta: number): number;
  readonly buffer: ArrayBuffer;
}

/**
 * Records WebAssembly memory growth that fails (a memory cap, or wasm32's 4 GiB). Emscripten-built
 * backends (tfjs-wasm) catch the failure and go on to die of something unrelated ("memory access
 * out of bounds"); the worker adds what this returns to its error so the cell is out-of-memory.
 */
export function watchWasmGrowth(): () => string | undefined {
  let failure: string | undefined;
  // The compiler's libs here (ES2023 + node) do not declare WebAssembly; the runtime has it.
  const proto = (globalThis as unknown as { WebAssembly: { Memory: { prototype: GrowableMemory } } }).WebAssembly.Memory.prototype;
  const grow = proto.grow;
  proto.grow = function (this: GrowableMemory, delta: number): number {
    try {
      return grow.call(this, delta);
    } catch (e) {
      failure = `${e instanceof Error ? e.message : String(e)} (+${delta} pages at ${this.buffer.byteLength / 2 ** 20} MiB)`;
      throw e;
    }
  };
  return () => failure;
}

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../harness/io/files.js';
import type { DType } from './types.js';

/**
 * Minimal reader/writer for the safetensors format (8-byte little-endian header length, JSON
 * header with dtype/shape/data_offsets per tensor and optional `__metadata__`, then raw
 * little-endian data). Python reads the same files with `safetensors` or plain numpy.
 */

/** A dense host tensor. */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Float64Array;
}

/** Tensors by name, in file order. */
export type TensorMap = Map<string, Tensor>;

const BYTES: Record<DType, number> = { F32: 4, I32: 4, F64: 8 };
const ARRAYS = { F32: Float32Array, I32: Int32Array, F64: Float64Array } as const;

/** Number of elements of a shape. */
export const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Writes tensors produced one at a time (so large models never sit in memory twice) to `path`,
 * atomically (temporary file + rename).
 */
export function writeSafetensors(
  path: string,
  specs: Array<{ name: string; dtype: DType; shape: number[] }>,
  produce: (index: number) => Tensor['data'],
  metadata: Record<string, string> = {},
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const s of specs) {
    const bytes = numel(s.shape) * BYTES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad so the data section starts 8-byte aligned: typed-array views need no copy.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  head.write(json, 8);
  function* chunks(): Generator<Uint8Array> {
    yield head;
    for (const [i, s] of specs.entries()) {
      const data = produce(i);
      if (data.length !== numel(s.shape)) throw new Error(`tensor ${s.name}: ${data.length} values for shape [${s.shape}]`);
      yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
  }
  writeFileAtomic(path, chunks());
}

/** Writes an in-memory TensorMap. */
export function saveTensors(path: string, tensors: TensorMap, metadata: Record<string, string> = {}): void {
  const entries = [...tensors.entries()];
  writeSafetensors(
    path,
    entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    (i) => entries[i]![1].data,
    metadata,
  );
}

/** Reads a whole safetensors file (F32, I32 and F64 tensors) and its metadata. */
export function loadTensors(path: string): { tensors: TensorMap; metadata: Record<string, string> } {
  const buf = readFileSync(path);
  if (buf.length < 8) throw new Error(`${path}: not a safetensors file (too short)`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) throw new Error(`${path}: not a safetensors file (bad header length)`);
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const tensors: TensorMap = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    const [begin, end] = entry.data_offsets;
    const start = buf.byteOffset + base + begin;
    const Ctor = ARRAYS[entry.dtype as DType] as (new (b: ArrayBufferLike, offset?: number, length?: number) => Tensor['data']) | undefined;
    if (!Ctor || !Object.hasOwn(ARRAYS, entry.dtype)) throw new Error(`${path}: tensor ${name} has dtype ${entry.dtype}; fwbench reads F32, I32 and F64`);
    const width = BYTES[entry.dtype as DType];
    const count = (end - begin) / width;
    let data: Tensor['data'];
    if (start % width === 0) data = new Ctor(buf.buffer, start, count);
    else data = new Ctor(new Uint8Array(buf.subarray(base + begin, base + end)).buffer);
    tensors.set(name, { dtype: entry.dtype as DType, shape: entry.shape, data });
  }
  return { tensors, metadata };
}

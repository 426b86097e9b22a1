import { endianness } from 'node:os';
import type { Tensor, TensorMap } from '../../../workloads/safetensors.js';
import { TOOL_VERSION } from '../../version.js';
import {
  AttributeType,
  DataType,
  encodeModel,
  type AttributeLike,
  type DataTypeCode,
  type DimensionLike,
  type GraphLike,
  type NodeLike,
  type TensorLike,
  type ValueInfoLike,
} from './proto.js';

/** Element types of graph values (float16 and bfloat16 data are their raw 16-bit patterns). */
export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64';

/** Each element type's TensorProto.DataType code. */
export const ELEM: Record<ElemType, DataTypeCode> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  bfloat16: DataType.BFLOAT16,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int32: DataType.INT32,
  int64: DataType.INT64,
};

/** A constant tensor for the graph (canonical tensors are converted to this). */
export interface GraphTensor {
  type: ElemType;
  dims: number[];
  data: Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
}

/**
 * An attribute value. Plain numbers are INT (and must be integers), number arrays INTS, strings
 * STRING; floats are always tagged (`float(1)`), so a float attribute that happens to hold a whole
 * number is never written as an INT.
 */
export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/** Tags a FLOAT attribute. */
export const float = (value: number): { float: number } => ({ float: value });
/** Tags a FLOATS attribute. */
export const floats = (values: number[]): { floats: number[] } => ({ floats: values });

function toAttribute(name: string, v: AttrValue): AttributeLike {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}=${v}: plain numbers are INT attributes; tag floats with float()`);
    return { name, type: AttributeType.INT, i: v };
  }
  if (Array.isArray(v)) {
    if (!v.every(Number.isInteger)) throw new Error(`attribute ${name}=[${v}]: plain number lists are INTS attributes; tag floats with floats()`);
    return { name, type: AttributeType.INTS, ints: v };
  }
  if ('float' in v) return { name, type: AttributeType.FLOAT, f: v.float };
  return { name, type: AttributeType.FLOATS, floats: v.floats };
}

// raw_data must be little-endian; a typed-array view is only that on a little-endian host.
if (endianness() !== 'LE') throw new Error('the ONNX builder writes raw tensor bytes and needs a little-endian host');

/** The bytes of a typed array, as raw_data stores them (a view, not a copy). */
export const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Looks a canonical weight up, checking its shape, so a layout mismatch fails with its name. */
export function weight(weights: TensorMap, name: string, shape: number[]): Tensor {
  const t = weights.get(name);
  if (!t) throw new Error(`canonical weight '${name}' is missing`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`canonical weight '${name}' has shape [${t.shape}], expected [${shape}]`);
  }
  return t;
}

/** Transposes a row-major [rows, cols] float matrix (canonical [out, in] -> MatMul's [in, out]). */
export function transpose2d(t: Tensor): GraphTensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return { type: 'float32', dims: [cols, rows], data: out };
}

/** How a workload's graph is built. */
export interface GraphOptions {
  /**
   * For a shape stream (BuildRequest.stream): symbolic sequence length and an int32 `lengths`
   * [batch] input; padding at or beyond a row's length never changes its logits. Absent: the
   * fixed-shape graph, unchanged.
   */
  stream?: boolean;
}

/** Options of {@link GraphBuilder.toModel}. */
export interface ModelOptions {
  opset?: number;
  irVersion?: number;
  producer?: string;
}

/**
 * Builds one ONNX graph node by node. Every value name is checked when used, so a wiring mistake
 * fails here with the name rather than deep inside the runtime's loader.
 */
export class GraphBuilder {
  private readonly nodes: NodeLike[] = [];
  private readonly initializers: TensorLike[] = [];
  private readonly inputs: ValueInfoLike[] = [];
  private readonly outputs: ValueInfoLike[] = [];
  private readonly defined = new Set<string>();
  private readonly opCounts = new Map<string, number>();
  private constants = 0;

  constructor(private readonly name: string) {}

  private define(name: string): string {
    if (this.defined.has(name)) throw new Error(`ONNX graph ${this.name}: value '${name}' is defined twice`);
    this.defined.add(name);
    return name;
  }

  /** Adds a named constant (weights keep their canonical names) and returns its name. */
  initializer(name: string, tensor: Tensor | GraphTensor): string {
    const type: ElemType = 'type' in tensor ? tensor.type : tensor.dtype === 'F32' ? 'float32' : 'int32';
    const dims = 'dims' in tensor ? tensor.dims : tensor.shape;
    this.initializers.push({ name: this.define(name), dims, data_type: ELEM[type], raw_data: bytesOf(tensor.data) });
    return name;
  }

  /** Adds an anonymous float32 constant (dims [] is a scalar). */
  floatConst(values: number[], dims: number[] = [values.length]): string {
    return this.initializer(`const_${this.constants++}`, { type: 'float32', dims, data: Float32Array.from(values) });
  }

  /** Adds an anonymous int64 constant, e.g. a shape or an axes list (dims [] is a scalar). */
  int64Const(values: number[], dims: number[] = [values.length]): string {
    return this.initializer(`const_${this.constants++}`, { type: 'int64', dims, data: BigInt64Array.from(values, BigInt) });
  }

  /** Declares a graph input; string dims are symbolic (e.g. `batch`). */
  input(name: string, type: ElemType, dims: Array<number | string>): string {
    this.inputs.push(valueInfo(this.define(name), type, dims));
    return name;
  }

  /** Declares an already computed value as a graph output. */
  output(name: string, type: ElemType, dims: Array<number | string>): void {
    if (!this.defined.has(name)) throw new Error(`ONNX graph ${this.name}: output '${name}' is never computed`);
    this.outputs.push(valueInfo(name, type, dims));
  }

  /**
   * Adds a node and returns its output names: given names (an empty one omits an optional output)
   * or, for a count, fresh ones. Empty input names omit optional inputs.
   */
  node(opType: string, inputs: string[], outputs: string[] | number = 1, attrs: Record<string, AttrValue> = {}, domain?: string): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.defined.has(i)) throw new Error(`ONNX graph ${this.name}: ${opType} reads '${i}', which is not defined yet`);
    }
    const k = this.opCounts.get(opType) ?? 0;
    this.opCounts.set(opType, k + 1);
    const nodeName = `${opType}_${k}`;
    const names = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, j) => (outputs === 1 ? nodeName : `${nodeName}_${j}`)) : outputs;
    for (const o of names) if (o !== '') this.define(o);
    const attribute = Object.entries(attrs).map(([n, v]) => toAttribute(n, v));
    this.nodes.push({ name: nodeName, op_type: opType, ...(domain ? { domain } : {}), input: inputs, output: names, attribute });
    return names;
  }

  /** Adds a single-output node and returns its output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, 1, attrs)[0]!;
  }

  /** The graph as plain protobuf-shaped data, for a rewrite (harness/engines/onnx/precision.ts) before it is encoded. */
  toGraph(): GraphLike {
    return { name: this.name, node: [...this.nodes], initializer: [...this.initializers], input: [...this.inputs], output: [...this.outputs] };
  }

  /** Serializes the graph as an ONNX model (default opset 17, IR version 8). */
  toModel(options: ModelOptions = {}): Uint8Array {
    return graphToModel(this.toGraph(), options);
  }
}

/**
 * Serializes a graph as an ONNX model (default opset 17, IR version 8); a graph using ONNX
 * Runtime's contrib operators also imports their domain, com.microsoft (version 1).
 */
export function graphToModel(graph: GraphLike, { opset = 17, irVersion = 8, producer = 'fwbench' }: ModelOptions = {}): Uint8Array {
  const domains = new Set(graph.node.map((n) => n.domain ?? '').filter((d) => d !== ''));
  return encodeModel({
    ir_version: irVersion,
    opset_import: [{ domain: '', version: opset }, ...[...domains].map((domain) => ({ domain, version: 1 }))],
    producer_name: producer,
    producer_version: TOOL_VERSION,
    graph,
  });
}

/** A typed graph input or output; string dims are symbolic. */
export function valueInfo(name: string, type: ElemType, dims: Array<number | string>): ValueInfoLike {
  const dim = dims.map((d): DimensionLike => (typeof d === 'string' ? { dim_param: d } : { dim_value: d }));
  return { name, type: { tensor_type: { elem_type: ELEM[type], shape: { dim } } } };
}

import { bytesOf, ELEM, type ElemType } from './graph.js';
import { AttributeType, DataType, type AttributeLike, type GraphLike, type NodeLike, type TensorLike, type ValueInfoLike } from './proto.js';

/**
 * The number formats fwbench's ONNX graphs can be rewritten to (workloads/precision.ts names
 * them): fp32 is the graph as built; fp16 and int8 are rewrites of that graph, made here once for
 * every family, so the cnn, rnn and transformer builders never know about precision.
 */
export type GraphPrecision = 'fp32' | 'fp16' | 'int8';

/** ONNX Runtime's contrib operator domain (DynamicQuantizeLSTM lives there). */
const MS_DOMAIN = 'com.microsoft';

const toAttr = (name: string, i: number): AttributeLike => ({ name, type: AttributeType.INT, i });

/** A float32 initializer's values (copied when its bytes are not 4-aligned, as a decoded file's may be). */
function floatsOf(t: TensorLike): Float32Array {
  const raw = t.raw_data;
  if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  return new Float32Array(raw.slice().buffer);
}

const tensor = (name: string, type: ElemType, dims: number[], data: ArrayBufferView): TensorLike => ({
  name,
  dims,
  data_type: ELEM[type],
  raw_data: bytesOf(data),
});

/** Rounds half to even, as numpy's round (and so ONNX Runtime's quantization tool) does. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Symmetric per-tensor int8 quantization of a weight: scale = max|w| / 127, zero point 0, values
 * in [-127, 127] (the range ONNX Runtime's tool uses for symmetric int8, so -128 never appears and
 * the scale is the same for w and -w). With `reduceRange` the values use 7 bits, [-64, 64], as the
 * tool's `reduce_range=True` does.
 */
export function quantizeWeight(w: Float32Array, reduceRange = false): { q: Int8Array; scale: number } {
  const qmax = reduceRange ? 64 : 127;
  let absMax = 0;
  for (const v of w) absMax = Math.max(absMax, Math.abs(v));
  const scale = absMax > 0 ? absMax / qmax : 1;
  const q = Int8Array.from(w, (v) => Math.max(-qmax, Math.min(qmax, roundHalfEven(v / scale))));
  return { q, scale };
}

/**
 * Dynamic int8 quantization of a graph's matrix products, as `onnxruntime.quantization.quantize_dynamic`
 * lays it out (its defaults: int8 weights, symmetric and per tensor; uint8 activations quantized at
 * run time; only products whose second operand is a constant, MatMulConstBOnly):
 *
 * - MatMul x·W and Conv(x, W): `DynamicQuantizeLinear(x)` gives uint8 x_q with its scale and zero
 *   point, `MatMulInteger` / `ConvInteger` multiply x_q by the int8 W_q into int32, and
 *   `Cast` + `Mul` by x_scale·W_scale bring the result back to float32 (a Conv bias is added after).
 *   An activation feeding several products is quantized once. ONNX Runtime's graph optimizer
 *   (extended level and up) fuses these into its com.microsoft DynamicQuantizeMatMul /
 *   MatMulIntegerToFloat kernels, so every optimization level runs integer products.
 * - LSTM: com.microsoft `DynamicQuantizeLSTM`, ORT's LSTM with int8 W and R (stored transposed,
 *   [directions, input, 4·hidden], as that operator takes them), quantizing its input and hidden
 *   state at each step.
 * - Gemm stays float32, as in quantize_dynamic (Gemm is not one of its integer operators).
 * - Gather stays float32, unlike quantize_dynamic, which also stores a Gather's constant table
 *   (an embedding) in 8 bits and dequantizes what it looks up: a lookup is no matrix product, so
 *   that would only shrink the file and add error, not run anything in integers.
 *
 * `reduceRange` stores the weights in 7 bits (quantize_dynamic's `reduce_range=True`), which ONNX
 * Runtime's documentation recommends on x86 CPUs without VNNI: there its uint8 x int8 kernels add
 * pairs of products in 16 bits, which can saturate with full-range weights.
 */
export function quantizeDynamic(graph: GraphLike, { reduceRange = false }: { reduceRange?: boolean } = {}): GraphLike {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const isFloatConst = (name: string | undefined, rank: number): TensorLike | undefined => {
    const t = name ? inits.get(name) : undefined;
    return t && t.data_type === DataType.FLOAT && t.dims.length === rank ? t : undefined;
  };
  const added: TensorLike[] = [];
  const nodes: NodeLike[] = [];
  /** Quantized weights by float name: one int8 copy however many nodes read it. */
  const weights = new Map<string, { q: string; scale: string; zero: string }>();
  /** `layout` stores the int8 values (default: as the float weight); `scaleDims` shapes the scale and zero point (default: scalars). */
  const quantized = (
    t: TensorLike,
    layout: (q: Int8Array) => { data: Int8Array; dims: number[] } = (q) => ({ data: q, dims: t.dims }),
    scaleDims: number[] = [],
  ): { q: string; scale: string; zero: string } => {
    let names = weights.get(t.name);
    if (!names) {
      const { q, scale } = quantizeWeight(floatsOf(t), reduceRange);
      const stored = layout(q);
      names = { q: `${t.name}_quantized`, scale: `${t.name}_scale`, zero: `${t.name}_zero_point` };
      added.push(tensor(names.q, 'int8', stored.dims, stored.data));
      added.push(tensor(names.scale, 'float32', scaleDims, Float32Array.of(scale)));
      added.push(tensor(names.zero, 'int8', scaleDims, Int8Array.of(0)));
      weights.set(t.name, names);
    }
    return names;
  };
  /** Dynamically quantized activations by name: [uint8 value, scale, zero point]. */
  const activations = new Map<string, [string, string, string]>();
  const quantizeActivation = (x: string): [string, string, string] => {
    let q = activations.get(x);
    if (!q) {
      q = [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`];
      nodes.push({ name: `${x}_DynamicQuantizeLinear`, op_type: 'DynamicQuantizeLinear', input: [x], output: q, attribute: [] });
      activations.set(x, q);
    }
    return q;
  };
  /** int32 `acc` -> float32 `out` = acc * (x_scale * w_scale). */
  const rescale = (p: string, acc: string, xScale: string, wScale: string, out: string): void => {
    nodes.push({ name: `${p}_cast`, op_type: 'Cast', input: [acc], output: [`${p}_float`], attribute: [toAttr('to', DataType.FLOAT)] });
    nodes.push({ name: `${p}_scales`, op_type: 'Mul', input: [xScale, wScale], output: [`${p}_scale`], attribute: [] });
    nodes.push({ name: `${p}_rescale`, op_type: 'Mul', input: [`${p}_float`, `${p}_scale`], output: [out], attribute: [] });
  };

  for (const node of graph.node) {
    const p = `${node.name}_quant`;
    const plain = !node.domain;
    const [x, w] = node.input;
    const matW = plain && node.op_type === 'MatMul' && !inits.has(x ?? '') ? isFloatConst(w, 2) : undefined;
    const convW = plain && node.op_type === 'Conv' && !inits.has(x ?? '') ? isFloatConst(w, 4) : undefined;
    if (matW || convW) {
      const [xq, xScale, xZero] = quantizeActivation(x!);
      const wq = quantized((matW ?? convW)!);
      const op = matW ? 'MatMulInteger' : 'ConvInteger';
      // ConvInteger takes every Conv attribute (kernel_shape, strides, pads, dilations, group, auto_pad).
      nodes.push({ name: `${p}_${op}`, op_type: op, input: [xq, wq.q, xZero, wq.zero], output: [`${p}_int32`], attribute: matW ? [] : node.attribute });
      const bias = convW ? node.input[2] : undefined;
      const out = node.output[0]!;
      rescale(p, `${p}_int32`, xScale, wq.scale, bias ? `${p}_unbiased` : out);
      if (bias) {
        const b = inits.get(bias);
        if (!b) throw new Error(`quantize: Conv ${node.name}'s bias '${bias}' is not a constant`);
        const shaped = `${bias}_channels`;
        added.push(tensor(shaped, 'float32', [b.dims[0]!, 1, 1], floatsOf(b).slice()));
        nodes.push({ name: `${p}_bias`, op_type: 'Add', input: [`${p}_unbiased`, shaped], output: [out], attribute: [] });
      }
      continue;
    }
    const lstmW = plain && node.op_type === 'LSTM' ? isFloatConst(node.input[1], 3) : undefined;
    const lstmR = lstmW ? isFloatConst(node.input[2], 3) : undefined;
    // DynamicQuantizeLSTM has no `layout` attribute: it is always time-major (layout 0).
    const timeMajor = !node.attribute.some((a) => a.name === 'layout' && Number(a.i) !== 0);
    if (lstmW && lstmR && timeMajor) {
      // [directions, 4H, cols] quantized, then stored as [directions, cols, 4H].
      const transposed = (t: TensorLike) => (q: Int8Array) => {
        const [d, rows, cols] = t.dims as [number, number, number];
        const out = new Int8Array(q.length);
        for (let k = 0; k < d; k++)
          for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[k * rows * cols + c * rows + r] = q[k * rows * cols + r * cols + c]!;
        return { data: out, dims: [d, cols, rows] };
      };
      // Per tensor, one scale per direction: [directions] (1 here: fwbench's LSTMs are forward).
      if (lstmW.dims[0] !== 1) throw new Error(`quantize: LSTM ${node.name} has ${lstmW.dims[0]} directions; per-tensor scales are written for one`);
      const wq = quantized(lstmW, transposed(lstmW), [1]);
      const rq = quantized(lstmR, transposed(lstmR), [1]);
      const optional = Array.from({ length: 5 }, (_, i) => node.input[3 + i] ?? ''); // B, sequence_lens, initial_h, initial_c, P
      nodes.push({
        name: `${p}_DynamicQuantizeLSTM`,
        op_type: 'DynamicQuantizeLSTM',
        domain: MS_DOMAIN,
        input: [node.input[0]!, wq.q, rq.q, ...optional, wq.scale, wq.zero, rq.scale, rq.zero],
        output: node.output,
        attribute: node.attribute.filter((a) => a.name !== 'layout'),
      });
      continue;
    }
    nodes.push(node);
  }
  // Float weights nothing reads any more are dropped (the model carries only its int8 copies).
  const read = new Set(nodes.flatMap((n) => n.input));
  const kept = graph.initializer.filter((t) => read.has(t.name) || !weights.has(t.name));
  return { ...graph, node: nodes, initializer: [...kept, ...added] };
}

/** The largest finite float16. */
const F16_MAX = 65504;

/** float32 -> IEEE binary16 bits, rounding to nearest even; beyond the float16 range clamps to ±65504 (as a graph converter must, or -1e9 masks become -inf). */
export function float16Bits(value: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = Math.max(-F16_MAX, Math.min(F16_MAX, value));
  const x = u[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // NaN (Inf cannot occur after the clamp)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7bff;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa into place, rounding to nearest even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // a carry into the exponent is still correct
  return sign | h;
}

/** IEEE binary16 bits -> number. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * The graph in float16: every float32 initializer stored as float16 (clamped to the float16 range),
 * every float32 graph input cast to float16 where it enters, and every float32 output computed in
 * float16 and cast back to float32 at the end, so callers feed and read float32 as before. Integer
 * values (token ids, shapes, lengths) are untouched. Casts inside the graph that produce float32
 * produce float16 instead.
 */
export function toFloat16(graph: GraphLike): GraphLike {
  const rename = new Map<string, string>();
  const nodes: NodeLike[] = [];
  const inputs: ValueInfoLike[] = graph.input;
  for (const i of graph.input) {
    if (i.type.tensor_type.elem_type !== DataType.FLOAT) continue;
    const inside = `${i.name}_float16`;
    nodes.push({ name: `${i.name}_to_float16`, op_type: 'Cast', input: [i.name], output: [inside], attribute: [toAttr('to', DataType.FLOAT16)] });
    rename.set(i.name, inside);
  }
  const outputs = new Map<string, string>();
  for (const o of graph.output) if (o.type.tensor_type.elem_type === DataType.FLOAT) outputs.set(o.name, `${o.name}_float16`);
  for (const n of graph.node) {
    const attribute =
      n.op_type === 'Cast' && !n.domain
        ? n.attribute.map((a) => (a.name === 'to' && Number(a.i) === DataType.FLOAT ? toAttr('to', DataType.FLOAT16) : a))
        : n.attribute;
    nodes.push({ ...n, input: n.input.map((v) => rename.get(v) ?? v), output: n.output.map((v) => outputs.get(v) ?? v), attribute });
  }
  for (const [name, inside] of outputs)
    nodes.push({ name: `${name}_to_float32`, op_type: 'Cast', input: [inside], output: [name], attribute: [toAttr('to', DataType.FLOAT)] });
  const initializer = graph.initializer.map((t) =>
    t.data_type === DataType.FLOAT ? tensor(t.name, 'float16', t.dims, Uint16Array.from(floatsOf(t), float16Bits)) : t,
  );
  return { ...graph, node: nodes, initializer, input: inputs, output: graph.output };
}

/** Rewrites a graph to compute in `precision` (fp32: unchanged); `reduceRange`: int8 weights in 7 bits. */
export function withPrecision(graph: GraphLike, precision: GraphPrecision, reduceRange = false): GraphLike {
  return precision === 'int8' ? quantizeDynamic(graph, { reduceRange }) : precision === 'fp16' ? toFloat16(graph) : graph;
}

// ---- reading back what a session really runs -----------------------------------------------

/** The integer matrix products ONNX Runtime runs, unfused and fused. */
export const INTEGER_PRODUCTS = [
  'MatMulInteger',
  'ConvInteger',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'DynamicQuantizeLSTM',
  'QGemm',
  'QLinearMatMul',
  'QLinearConv',
];
/** Float matrix products, as the graph or ORT's fusions name them (nchwc.Conv is the CPU provider's blocked-layout Conv). */
export const FLOAT_PRODUCTS = ['MatMul', 'Gemm', 'Conv', 'LSTM', 'FusedMatMul', 'FusedGemm', 'FusedConv', 'Attention', 'MultiHeadAttention'];
const NAMES: Record<number, string> = Object.fromEntries(Object.entries(ELEM).map(([k, v]) => [v, k]));
const ELEM_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.BFLOAT16]: 2,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
};

/** What a (session's optimized) graph holds: operator counts and, per element type, its initializers. */
export interface GraphCensus {
  /** Nodes per operator type (a contrib domain's operators by their bare name). */
  ops: Record<string, number>;
  /** Initializers per element type name: how many, and their bytes. */
  initializers: Record<string, { count: number; bytes: number }>;
  /**
   * Each float or integer matrix product with a constant weight: the element type the product
   * reads it in, and `castFrom` when a Cast node converts a constant of that type first (how ORT
   * runs a float16 weight through a float32 kernel when it has no float16 one).
   */
  productWeights: Array<{ op: string; weight?: string; castFrom?: string }>;
}

/** Counts a decoded ONNX model (proto.ts decodeModel): what {@link GraphCensus} says. */
export function censusOf(model: Record<string, unknown>): GraphCensus {
  /* eslint-disable @typescript-eslint/no-explicit-any -- a decoded protobuf message is untyped */
  const graph = (model as any).graph ?? {};
  const nodes: any[] = graph.node ?? [];
  const inits: any[] = graph.initializer ?? [];
  const typeName = (code: number): string => NAMES[code] ?? `type ${code}`;
  const types = new Map<string, number>(inits.map((t) => [t.name, t.data_type ?? 0]));
  const matrices = new Set<string>(inits.filter((t) => (t.dims ?? []).length >= 2).map((t) => t.name));
  // Casts of a constant matrix: value -> [the constant's type, the type cast to].
  const castConstants = new Map<string, [number, number]>();
  for (const n of nodes) {
    if (n.op_type === 'Cast' && matrices.has(n.input?.[0])) {
      const to = Number((n.attribute ?? []).find((a: any) => a.name === 'to')?.i ?? 0);
      castConstants.set(n.output[0], [types.get(n.input[0])!, to]);
    }
  }
  const ops: Record<string, number> = {};
  const productWeights: GraphCensus['productWeights'] = [];
  for (const n of nodes) {
    ops[n.op_type] = (ops[n.op_type] ?? 0) + 1;
    if (INTEGER_PRODUCTS.includes(n.op_type) || FLOAT_PRODUCTS.includes(n.op_type)) {
      // The weight: the first operand that is a constant matrix or kernel (rank >= 2), or a Cast of
      // one; scales and zero points are scalars, biases vectors, wherever fused operators put them.
      const w = (n.input ?? []).find((name: string) => matrices.has(name) || castConstants.has(name));
      const cast = w ? castConstants.get(w) : undefined;
      const weight = cast ? { weight: typeName(cast[1]), castFrom: typeName(cast[0]) } : w ? { weight: typeName(types.get(w)!) } : {};
      productWeights.push({ op: n.op_type, ...weight });
    }
  }
  const initializers: GraphCensus['initializers'] = {};
  for (const t of inits) {
    const name = NAMES[t.data_type] ?? `type ${t.data_type}`;
    const elems = (t.dims ?? []).reduce((a: number, d: number) => a * Number(d), 1);
    const entry = (initializers[name] ??= { count: 0, bytes: 0 });
    entry.count += 1;
    entry.bytes += elems * (ELEM_BYTES[t.data_type] ?? 0);
  }
  return { ops, initializers, productWeights };
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const list = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ') || 'none';

/**
 * Which precision a census shows, with the evidence in one line. int8: integer products whose
 * weights are int8 or uint8 initializers; fp16: float16 weights on every matrix product; anything
 * else is fp32 (the graph ORT runs has no reduced-precision mechanism left).
 */
export function precisionFromCensus(c: GraphCensus, asked: 'int8' | 'fp16'): { used: 'int8' | 'fp16' | 'fp32'; evidence: string } {
  const count = (ops: string[]): Record<string, number> => Object.fromEntries(ops.filter((o) => c.ops[o]).map((o) => [o, c.ops[o]!]));
  const integer = count([...INTEGER_PRODUCTS, 'DynamicQuantizeLinear']);
  const float = count(FLOAT_PRODUCTS);
  const int8 = ['int8', 'uint8'].reduce((s, k) => ({ count: s.count + (c.initializers[k]?.count ?? 0), bytes: s.bytes + (c.initializers[k]?.bytes ?? 0) }), {
    count: 0,
    bytes: 0,
  });
  if (asked === 'int8') {
    const products = c.productWeights.filter((p) => INTEGER_PRODUCTS.includes(p.op));
    const int8Weighted = products.filter((p) => p.weight === 'int8' || p.weight === 'uint8').length;
    const used = int8Weighted > 0 ? 'int8' : 'fp32';
    return {
      used,
      evidence: `session graph: integer ops ${list(integer)}; ${int8Weighted} of ${products.length} integer products with 8-bit weights; ${int8.count} int8/uint8 initializers (${mb(int8.bytes)}); float products left: ${list(float)}`,
    };
  }
  const weighted = c.productWeights.filter((p) => p.weight);
  const half = weighted.filter((p) => p.weight === 'float16').length;
  const widened = weighted.filter((p) => p.castFrom === 'float16' && p.weight === 'float32').length;
  const f16 = c.initializers.float16 ?? { count: 0, bytes: 0 };
  const f32 = c.initializers.float32 ?? { count: 0, bytes: 0 };
  const used = half > 0 && half === weighted.length ? 'fp16' : 'fp32';
  return {
    used,
    evidence:
      `session graph: ${half} of ${weighted.length} matrix products read float16 weights` +
      (widened ? ` (${widened} read float16 weights cast to float32 first)` : '') +
      `; initializers float16 ${f16.count} (${mb(f16.bytes)}), float32 ${f32.count} (${mb(f32.bytes)}); ${c.ops.Cast ?? 0} Cast nodes`,
  };
}

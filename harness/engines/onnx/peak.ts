import { filled, medianMs, peakFigures } from '../peak-timing.js';
import type { PeakRequest, PeakResult } from '../types.js';
import { GraphBuilder } from './graph.js';

type Ort = typeof import('onnxruntime-node');

/** A one-MatMul graph: C[n,n] = A[n,n] x B[n,n] (B a constant, as weights are). */
export function gemmGraph(n: number): Uint8Array {
  const g = new GraphBuilder('fwbench_peak_gemm');
  const a = g.input('a', 'float32', [n, n]);
  const b = g.initializer('b', { type: 'float32', dims: [n, n], data: filled(n * n, 7) });
  g.node('MatMul', [a, b], ['c']);
  g.output('c', 'float32', [n, n]);
  return g.toModel();
}

/**
 * The copy kernel: y = x * 1 (STREAM "scale": one read and one write per element). A plain
 * Identity may alias its input, so it would move no bytes; the session runs with graph
 * optimizations disabled so the multiplication by one is not eliminated.
 */
export function copyGraph(elements: number): Uint8Array {
  const g = new GraphBuilder('fwbench_peak_copy');
  const x = g.input('x', 'float32', [elements]);
  const one = g.floatConst([1], []);
  g.node('Mul', [x, one], ['y']);
  g.output('y', 'float32', [elements]);
  return g.toModel();
}

/** Measures GEMM GFLOP/s and copy GB/s through ONNX Runtime with the given execution provider. */
export async function ortPeak(ort: Ort, req: PeakRequest): Promise<PeakResult> {
  const executionProviders = req.device === 'cuda' ? ['cuda'] : ['cpu'];
  const options = {
    graphOptimizationLevel: 'disabled' as const,
    intraOpNumThreads: req.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential' as const,
    executionProviders,
  };
  const gemm = await ort.InferenceSession.create(gemmGraph(req.gemmN), options);
  const a = new ort.Tensor('float32', filled(req.gemmN * req.gemmN, 3), [req.gemmN, req.gemmN]);
  // Preallocated outputs: the timed call is the kernel, not a fresh allocation's page faults.
  const c = new ort.Tensor('float32', new Float32Array(req.gemmN * req.gemmN), [req.gemmN, req.gemmN]);
  const gemmMs = await medianMs(async () => {
    await gemm.run({ a }, { c });
  }, req.maxMs);
  await gemm.release();
  const copy = await ort.InferenceSession.create(copyGraph(req.copyElements), options);
  const x = new ort.Tensor('float32', filled(req.copyElements, 5), [req.copyElements]);
  const y = new ort.Tensor('float32', new Float32Array(req.copyElements), [req.copyElements]);
  const copyMs = await medianMs(async () => {
    await copy.run({ x }, { y });
  }, req.maxMs);
  await copy.release();
  return peakFigures(req, gemmMs, copyMs, {
    gemm: 'MatMul (A input, B initializer)',
    copy: 'Mul(x, 1) with graph optimizations disabled, preallocated outputs',
    executionProviders: executionProviders.join(','),
    intraOpNumThreads: String(req.threads),
  });
}

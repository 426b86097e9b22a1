import type * as TF from '@tensorflow/tfjs';
import { filled, medianMs, peakFigures } from '../peak-timing.js';
import type { PeakRequest, PeakResult } from '../types.js';

/**
 * GEMM (tf.matMul) and copy (tf.mul(x, 1): `clone` only shares the buffer) through the active
 * TF.js backend. The results are read back with dataSync, so asynchronous backends finish the
 * work inside the timed call; for the GEMM that is n^2 floats against 2n^3 FLOPs, for the copy
 * only a 1-element slice is read (the CPU backends are synchronous anyway).
 */
export async function tfjsPeak(tf: typeof TF, req: PeakRequest, details: Record<string, string>): Promise<PeakResult> {
  const n = req.gemmN;
  const a = tf.tensor2d(filled(n * n, 3), [n, n]);
  const b = tf.tensor2d(filled(n * n, 7), [n, n]);
  const gemmMs = await medianMs(async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  }, req.maxMs);
  a.dispose();
  b.dispose();
  const x = tf.tensor1d(filled(req.copyElements, 5));
  const one = tf.scalar(1);
  const copyMs = await medianMs(async () => {
    const y = tf.mul(x, one);
    const last = tf.slice(y, [req.copyElements - 1], [1]);
    await last.data();
    last.dispose();
    y.dispose();
  }, req.maxMs);
  x.dispose();
  one.dispose();
  return peakFigures(req, gemmMs, copyMs, { ...details, gemm: 'tf.matMul', copy: 'tf.mul(x, 1)' });
}

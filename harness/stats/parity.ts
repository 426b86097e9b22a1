/**
 * Output parity: every cell's logits on the fixed parity batch are compared with a reference
 * engine's. Relative L2 error is the verdict; max absolute error is reported beside it.
 */

/**
 * fp32 tolerance on relative L2, set from measurement (docs/parity.md): 4x above the worst error
 * of any correct engine x mode x shipped preset on CPU (7.5e-6), 3x below the smallest error of a
 * transformer whose GELU is the tanh approximation (9.7e-5), the subtlest planted bug; layout
 * mistakes (a transposed kernel, a swapped LSTM gate) fail by orders of magnitude.
 */
export const FP32_REL_L2_TOLERANCE = 3e-5;

/** Result of one comparison. */
export interface ParityFigures {
  /** ||out - ref||_2 / ||ref||_2. */
  relL2: number;
  /** max |out - ref|. */
  maxAbs: number;
  /** Whether shapes matched, every value is finite and relL2 is below tolerance. */
  pass: boolean;
  /** Why it failed, when it did. */
  problem?: string;
}

/** Compares an engine's output with the reference output. */
export function compareOutputs(
  ref: ArrayLike<number>,
  refShape: number[],
  out: ArrayLike<number>,
  outShape: number[],
  tolerance = FP32_REL_L2_TOLERANCE,
): ParityFigures {
  if (refShape.join('x') !== outShape.join('x') || ref.length !== out.length) {
    return { relL2: Infinity, maxAbs: Infinity, pass: false, problem: `output shape [${outShape}] differs from reference [${refShape}]` };
  }
  let diff2 = 0;
  let ref2 = 0;
  let maxAbs = 0;
  let finite = true;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    if (!Number.isFinite(out[i]!)) finite = false;
    diff2 += d * d;
    ref2 += ref[i]! * ref[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  if (!finite) return { relL2: NaN, maxAbs: NaN, pass: false, problem: 'output contains NaN or infinity' };
  if (ref2 === 0) return { relL2: NaN, maxAbs, pass: false, problem: 'reference output is all zeros: the comparison would be meaningless' };
  const relL2 = Math.sqrt(diff2 / ref2);
  const pass = relL2 < tolerance;
  return pass ? { relL2, maxAbs, pass } : { relL2, maxAbs, pass, problem: `relative L2 error ${relL2.toExponential(2)} exceeds ${tolerance.toExponential()}` };
}

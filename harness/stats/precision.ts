import { PRECISION, type Precision } from '../../workloads/precision.js';
import { compareOutputs, FP32_REL_L2_TOLERANCE, type ParityFigures } from './parity.js';

/**
 * Parity of a reduced-precision cell (docs/precision.md): its logits against the fp32 reference,
 * judged by the precision's gates (workloads/precision.ts) instead of the fp32 tolerance, and only
 * after the worker has shown that it computed in the precision asked for.
 */

/** What the worker said it observed (the parity message's `precision`), if it said anything. */
export interface ObservedPrecision {
  used: Precision;
  evidence: string;
}

/** The figures of a reduced-precision comparison. */
export interface PrecisionFigures extends ParityFigures {
  /** The relative L2 tolerance applied (the precision's, or the fp32 one). */
  tolerance: number;
  /** Fraction of the rows the reference decides whose argmax equals the reference's (null when the shapes differ). */
  argmaxAgreement: number | null;
  /** Rows left out of it as near ties of the reference that the output resolved the other way. */
  ties: number;
  /** The gate on it (absent for fp32, which has none). */
  minArgmaxAgreement?: number;
}

/**
 * Top-1 agreement of two [rows, classes] outputs: the fraction of rows whose largest logit is at
 * the same class, over the rows the reference decides. A row whose two classes are a near tie in
 * the reference (they differ by at most `tieTolerance` x the row's RMS logit, the error the
 * precision is allowed anyway) and that the output resolves the other way is a tie, counted apart:
 * with random weights such rows are common, and flipping one says nothing about the precision.
 */
export function argmaxAgreement(ref: ArrayLike<number>, out: ArrayLike<number>, shape: number[], tieTolerance = 0): { agreement: number; ties: number } {
  const classes = shape[shape.length - 1]!;
  const rows = ref.length / classes;
  let same = 0;
  let ties = 0;
  for (let r = 0; r < rows; r++) {
    let a = 0;
    let b = 0;
    let sq = 0;
    for (let k = 0; k < classes; k++) {
      const v = ref[r * classes + k]!;
      sq += v * v;
      if (v > ref[r * classes + a]!) a = k;
      if (out[r * classes + k]! > out[r * classes + b]!) b = k;
    }
    if (a === b) same++;
    else if (ref[r * classes + a]! - ref[r * classes + b]! <= tieTolerance * Math.sqrt(sq / classes)) ties++;
  }
  return { agreement: rows === ties ? 1 : same / (rows - ties), ties };
}

/**
 * Judges a cell's logits at `asked` precision against the fp32 reference: the worker must have
 * reported the precision it observed and it must be `asked` (a silent fallback to fp32 fails here,
 * before any figure), then relative L2 within the precision's tolerance and argmax agreement at
 * or above its gate. fp32 cells get the plain fp32 comparison (and an agreement figure).
 */
export function comparePrecision(
  asked: Precision,
  observed: ObservedPrecision | undefined,
  ref: ArrayLike<number>,
  refShape: number[],
  out: ArrayLike<number>,
  outShape: number[],
): PrecisionFigures {
  const spec = PRECISION[asked];
  const tolerance = spec.relL2Tolerance ?? FP32_REL_L2_TOLERANCE;
  const f = compareOutputs(ref, refShape, out, outShape, tolerance);
  const sameShape = refShape.join('x') === outShape.join('x') && ref.length === out.length;
  const top1 = sameShape ? argmaxAgreement(ref, out, refShape, tolerance) : null;
  const agreement = top1 ? top1.agreement : null;
  const figures: PrecisionFigures = {
    ...f,
    tolerance,
    argmaxAgreement: agreement,
    ties: top1?.ties ?? 0,
    ...(spec.minArgmaxAgreement !== undefined ? { minArgmaxAgreement: spec.minArgmaxAgreement } : {}),
  };
  if (asked === 'fp32') return figures;
  if (!observed) return { ...figures, pass: false, problem: `asked for ${asked}, but the engine did not report the precision it computed in` };
  if (observed.used !== asked)
    return { ...figures, pass: false, problem: `asked for ${asked}, but the engine computed in ${observed.used} (${observed.evidence})` };
  if (!f.pass) return figures;
  if (agreement !== null && spec.minArgmaxAgreement !== undefined && agreement < spec.minArgmaxAgreement)
    return {
      ...figures,
      pass: false,
      problem: `top-1 agrees with the fp32 reference on ${(agreement * 100).toFixed(0)} % of the rows it decides, below the ${asked} gate of ${(spec.minArgmaxAgreement * 100).toFixed(0)} %`,
    };
  return figures;
}

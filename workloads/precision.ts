/**
 * The precision axis: the number format a cell computes in (docs/precision.md). `fp32` is every
 * run before this axis. The others are reduced precisions: a cell runs one only where its engine
 * declares a way to (EngineDescriptor.precisions: the mechanism, the devices, families and modes
 * it applies to), proves it ran in it (the worker reports the precision it observed, from output,
 * weight or kernel dtypes, and a cell that asked for bf16 but ran fp32 fails), and is judged
 * against the fp32 reference by the gates below instead of the fp32 tolerance.
 */
export const PRECISIONS = ['fp32', 'bf16', 'fp16', 'tf32', 'int8'] as const;
/** A value of the precision axis. */
export type Precision = (typeof PRECISIONS)[number];
/** The reduced precisions (every value but fp32): those an engine must declare a way or a reason for. */
export type ReducedPrecision = Exclude<Precision, 'fp32'>;

/** What a precision is and how a cell at it is judged against the fp32 reference. */
export interface PrecisionSpec {
  /** One line for help texts and reports. */
  doc: string;
  /**
   * Relative L2 error against the fp32 reference a cell may have (fp32 cells keep the fp32 parity
   * tolerance of harness/stats/parity.ts; this is for the reduced ones). Set from measured errors
   * (docs/precision.md).
   */
  relL2Tolerance?: number;
  /**
   * The task-level gate: the fraction of the parity batch's rows whose argmax (top-1 class) equals
   * the fp32 reference's must be at least this, over the rows the reference decides (a near tie,
   * within relL2Tolerance x the row's RMS logit, may go either way: harness/stats/precision.ts).
   */
  minArgmaxAgreement?: number;
}

/** The precisions, declared once: CLI help, run.json, the manifest and the parity gates read them from here. */
export const PRECISION: Record<Precision, PrecisionSpec> = {
  fp32: { doc: 'IEEE float32 everywhere (the default; judged by the fp32 parity tolerance)' },
  bf16: { doc: 'bfloat16 compute (8-bit mantissa), fp32 weights kept where the mechanism does', relL2Tolerance: 5e-2, minArgmaxAgreement: 0.9 },
  fp16: { doc: 'float16 compute (10-bit mantissa), CUDA only', relL2Tolerance: 1e-2, minArgmaxAgreement: 0.9 },
  tf32: { doc: 'TensorFloat-32 matrix products on NVIDIA tensor cores (Ampere or newer), fp32 elsewhere', relL2Tolerance: 1e-2, minArgmaxAgreement: 0.9 },
  int8: { doc: 'int8 weights and dynamically quantized activations in the matrix products, fp32 elsewhere', relL2Tolerance: 2.5e-1, minArgmaxAgreement: 0.9 },
};

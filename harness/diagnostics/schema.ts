import { z } from 'zod';
import { DEVICES } from '../engines/types.js';

/** Schemas of `fwbench peak` and `fwbench doctor` results, embedded in run.json (zod only: results.ts imports this file). */

/** One thing that makes numbers wrong or slow, with how to fix it. */
export const FindingSchema = z.object({
  /** Stable id, e.g. `threads-below-cores`. */
  id: z.string(),
  /** `warn`: numbers are likely wrong or slow; `info`: worth knowing, or a check that could not be made. */
  severity: z.enum(['warn', 'info']),
  message: z.string(),
  fix: z.string(),
});
/** A doctor finding. */
export type Finding = z.infer<typeof FindingSchema>;

/** One engine's peak figures, or why it has none. */
export const EnginePeakSchema = z.object({
  engine: z.string(),
  ok: z.boolean(),
  version: z.string().optional(),
  gemmN: z.number().int().optional(),
  gemmMedianMs: z.number().optional(),
  /** 2n^3 / median GEMM time. */
  gemmGflops: z.number().optional(),
  copyBytes: z.number().optional(),
  copyMedianMs: z.number().optional(),
  /** Bytes read + written per copy / median copy time (1e9 B/s). */
  copyGBps: z.number().optional(),
  details: z.record(z.string(), z.string()).optional(),
  /** Taken from the per-host cache rather than measured in this invocation. */
  cached: z.boolean().optional(),
  measuredAt: z.string().optional(),
  reason: z.string().optional(),
});
/** One engine's peak figures. */
export type EnginePeak = z.infer<typeof EnginePeakSchema>;

/** The machine's peak: the best engine's GEMM rate and copy bandwidth, with every engine's figures. */
export const MachinePeakSchema = z.object({
  device: z.enum(DEVICES),
  threads: z.number().int(),
  /** Best GEMM rate of any engine (GFLOP/s): the denominator of every cell's fractionOfPeak. */
  gflops: z.number(),
  gflopsEngine: z.string(),
  /** Best copy bandwidth of any engine (GB/s). */
  gbps: z.number(),
  gbpsEngine: z.string(),
  engines: z.array(EnginePeakSchema),
});
/** The machine's peak. */
export type MachinePeak = z.infer<typeof MachinePeakSchema>;

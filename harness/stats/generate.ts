import type { Generation } from '../../workloads/generate.js';
import type { CellGeneration } from '../results/schema.js';
import { medianCi } from '../worker/measure.js';
import { FP32_REL_L2_TOLERANCE } from './parity.js';

/**
 * A generation cell's figures and parity (docs/generation.md): time to first token (the prefill
 * step), time per output token (every decode step), tokens per second, the cold generation; and
 * the generated token ids and every step's logits against the reference's.
 */

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
const sum = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0);
/** The p-quantile (0..1) of values, linear between order statistics. */
const quantile = (v: readonly number[], p: number): number => {
  const s = [...v].sort((a, b) => a - b);
  const x = p * (s.length - 1);
  const lo = Math.floor(x);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (x - lo);
};

/** What one clean replicate of a generation cell measured (ms). */
export interface GenerationRun {
  /** The cold generation: step s's time (step 0 the prefill). */
  coldPassMs: number[];
  /** passesMs[g][s]: step s of warm generation g. */
  passesMs: number[][];
  compiles: { afterCold: number | null; afterWarm: number | null };
}

/** A median with its 95 % order-statistic interval (ms). */
const withCi = (values: number[]): { medianMs: number; loMs: number; hiMs: number; n: number } => {
  const ci = medianCi(values);
  return { medianMs: median(values), loMs: ci.loNs, hiMs: ci.hiNs, n: values.length };
};

/** The figures of a generation cell from its clean replicates (at least one). */
export function generationFigures(g: Generation, batch: number, runs: GenerationRun[], flops: { prefill: number; decode: number }): CellGeneration {
  const passes = runs.flatMap((r) => r.passesMs);
  const ttft = passes.map((p) => p[0]!);
  const steps = passes.flatMap((p) => p.slice(1));
  const decodeTotals = passes.map((p) => sum(p.slice(1)));
  const e2e = passes.map(sum);
  const ttftMs = withCi(ttft);
  const decodeMs = median(decodeTotals);
  const decodeSteps = g.newTokens - 1;
  return {
    promptLength: g.promptLength,
    newTokens: g.newTokens,
    cache: g.cache,
    generations: passes.length,
    ttftMs,
    tpotMs: steps.length ? { ...withCi(steps), p90Ms: quantile(steps, 0.9) } : null,
    e2eMs: withCi(e2e),
    prefillTokensPerS: (batch * g.promptLength) / (ttftMs.medianMs / 1000),
    decodeTokensPerS: decodeSteps > 0 && decodeMs > 0 ? (batch * decodeSteps) / (decodeMs / 1000) : null,
    tokensPerS: (batch * g.newTokens) / (median(e2e) / 1000),
    cold: {
      ttftMs: median(runs.map((r) => r.coldPassMs[0]!)),
      firstDecodeMs: decodeSteps > 0 ? median(runs.map((r) => r.coldPassMs[1]!)) : null,
      e2eMs: median(runs.map((r) => sum(r.coldPassMs))),
    },
    compiles: runs[0]!.compiles,
    flops: { prefill: flops.prefill * batch, decode: flops.decode * batch },
  };
}

/** The reference generation: its token ids [batch][newTokens] and logits [newTokens, batch, vocab]. */
export interface GenerationReference {
  tokens: number[][];
  logits: Float32Array;
  vocab: number;
}

/** A generation's parity figures. */
export interface GenerationParity {
  /** Largest per-step relative L2 error of the logits over the steps compared. */
  relL2: number;
  maxAbs: number;
  /** Step with that error. */
  worstStep: number;
  /** Steps compared (every row's, up to its divergence at a near tie). */
  steps: number;
  /** Rows whose ids equal the reference's at every step. */
  rowsMatching: number;
  /** Rows that chose another token at a near tie of the reference (compared up to that step), and the first such step. */
  ties: number;
  firstTieStep?: number;
  pass: boolean;
  problem?: string;
}

/**
 * Parity of a generation: every row's token ids must equal the reference's; a row may only go
 * another way at a near tie of the reference (the token it chose within the tolerance x the
 * step's RMS logit of the reference's best: fp32 round-off may pick either), and is compared up to
 * that step. Every step's logits (rows still on the reference's path) must be within the relative
 * L2 tolerance.
 */
export function compareGeneration(ref: GenerationReference, tokens: number[][], logits: Float32Array, tolerance = FP32_REL_L2_TOLERANCE): GenerationParity {
  const batch = ref.tokens.length;
  const steps = ref.tokens[0]?.length ?? 0;
  const V = ref.vocab;
  const fail = (problem: string): GenerationParity => ({ relL2: NaN, maxAbs: NaN, worstStep: -1, steps: 0, rowsMatching: 0, ties: 0, pass: false, problem });
  if (tokens.length !== batch || tokens.some((t) => t.length !== steps))
    return fail(`generated ${tokens.length} rows of ${tokens[0]?.length ?? 0} tokens; the reference has ${batch} rows of ${steps}`);
  if (logits.length !== ref.logits.length)
    return fail(`logits hold ${logits.length} values; the reference's [${steps}, ${batch}, ${V}] hold ${ref.logits.length}`);
  const at = (s: number, r: number): number => (s * batch + r) * V;
  // Each row's last compared step: its first divergence, which must be a near tie.
  const last: number[] = [];
  let rowsMatching = 0;
  let ties = 0;
  let firstTieStep: number | undefined;
  for (let r = 0; r < batch; r++) {
    const s = tokens[r]!.findIndex((t, i) => t !== ref.tokens[r]![i]);
    if (s < 0) {
      rowsMatching++;
      last.push(steps - 1);
      continue;
    }
    const o = at(s, r);
    const row = ref.logits.subarray(o, o + V);
    const rms = Math.sqrt(row.reduce((a, x) => a + x * x, 0) / V);
    const best = row[ref.tokens[r]![s]!]!;
    const chosen = tokens[r]![s]!;
    const gap = chosen >= 0 && chosen < V ? best - row[chosen]! : Infinity;
    if (!(gap <= tolerance * rms))
      return {
        ...fail(
          `row ${r} chose token ${chosen} at step ${s} where the reference chose ${ref.tokens[r]![s]} (its logit ${gap.toPrecision(3)} higher: not a near tie)`,
        ),
        rowsMatching,
      };
    ties++;
    firstTieStep = Math.min(firstTieStep ?? s, s);
    last.push(s);
  }
  let worst = { relL2: -1, maxAbs: 0, step: 0 };
  for (let s = 0; s < steps; s++) {
    let d2 = 0;
    let r2 = 0;
    let maxAbs = 0;
    for (let r = 0; r < batch; r++) {
      if (s > last[r]!) continue;
      const o = at(s, r);
      for (let i = o; i < o + V; i++) {
        const d = logits[i]! - ref.logits[i]!;
        if (!Number.isFinite(logits[i]!)) return fail(`the logits of step ${s} contain NaN or infinity`);
        d2 += d * d;
        r2 += ref.logits[i]! * ref.logits[i]!;
        maxAbs = Math.max(maxAbs, Math.abs(d));
      }
    }
    if (r2 === 0) continue;
    const relL2 = Math.sqrt(d2 / r2);
    if (relL2 > worst.relL2) worst = { relL2, maxAbs, step: s };
  }
  const pass = worst.relL2 < tolerance;
  return {
    relL2: worst.relL2,
    maxAbs: worst.maxAbs,
    worstStep: worst.step,
    steps,
    rowsMatching,
    ties,
    ...(firstTieStep !== undefined ? { firstTieStep } : {}),
    pass,
    ...(pass ? {} : { problem: `the logits of step ${worst.step} differ by relative L2 ${worst.relL2.toExponential(2)}, over ${tolerance.toExponential(0)}` }),
  };
}

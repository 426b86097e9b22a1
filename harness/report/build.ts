import type { Run } from '../results/schema.js';
import { evaluateClaims, loadClaims, type ClaimResult } from './claims.js';
import { buildModel, type RunModel } from './model.js';

/** What every report format lays out, built once from a run; the formats (index.ts) only write it. */

/** Everything a report format lays out. */
export interface Report {
  model: RunModel;
  claims: ClaimResult[];
  /** Noise threshold of the claim verdicts (percent). */
  thresholdPct: number;
  /** When the report was made (ISO). */
  generatedAt: string;
  /** The HTML page embeds run.json with every raw sample (`--embed-samples`), not per-cell summaries of them. */
  embedSamples: boolean;
}

/** Builds the report of a run: grouped cells, intervals and claim verdicts. */
export function buildReport(run: Run, opts: { thresholdPct: number; claimsPath?: string; embedSamples?: boolean }): Report {
  const model = buildModel(run);
  return {
    model,
    claims: evaluateClaims(model, loadClaims(opts.claimsPath), opts.thresholdPct / 100),
    thresholdPct: opts.thresholdPct,
    generatedAt: new Date().toISOString(),
    embedSamples: opts.embedSamples ?? false,
  };
}

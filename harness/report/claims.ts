import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { TASKS, type Task } from '../../workloads/types.js';
import { InputError } from '../errors.js';
import { classifyRatio, MIN_SAMPLES_FOR_CI } from '../stats/bootstrap.js';
import bundledClaims from './claims.json' with { type: 'json' };
import { cellRatioInterval, ratioOfCells, workloadLabel, type CellGroup, type CellView, type RunModel, type WorkloadSection } from './model.js';

/**
 * Turns the claims of the PyTorch-vs-TensorFlow literature (claims.json, one entry per claim of
 * the design's claims.md) into verdicts on a run: for every workload / batch size where both
 * sides were measured, the ratio subject / baseline of the claim's metric with a bootstrap
 * interval, judged by the same rule as `fwbench compare` (the whole interval beyond the noise
 * threshold). Engines and modes are plain strings, so claims about engines a run did not include
 * come out "not measured" with what is missing.
 */

const SelectorSchema = z.object({
  /** Engine id, e.g. `torch`. */
  engine: z.string(),
  /** Mode, or `best`: the engine's best mode for the metric in each workload / batch. */
  mode: z.string(),
});
/** Which engine / mode a side of a comparison takes. */
export type Selector = z.infer<typeof SelectorSchema>;

const ClaimSchema = z.object({
  /** Short stable id, as in claims.md. */
  id: z.string(),
  /** The claim, paraphrased. */
  claim: z.string(),
  /** Where it was made. */
  source: z.string(),
  /** latency: median ms (bootstrap interval); peakHostMemory: peak RSS; coldStart: spawn to first output. */
  metric: z.enum(['latency', 'peakHostMemory', 'coldStart']),
  /** pairwise: the ratio per workload / batch; trend-over-batch: how the ratio moves from the smallest to the largest batch. */
  kind: z.enum(['pairwise', 'trend-over-batch']).default('pairwise'),
  /** What the claim says about subject / baseline (or, for a trend, about the ratio's change as the batch grows). */
  expect: z.enum(['lower', 'higher']),
  comparisons: z.array(z.object({ subject: SelectorSchema, baseline: SelectorSchema })).min(1),
  /** The tasks whose cells judge it (default: every task a run has; each verdict names its task). */
  tasks: z.array(z.enum(TASKS)).min(1).optional(),
});
/** One claim and how to measure it. */
export type Claim = z.infer<typeof ClaimSchema>;

/** The claims file. */
export const ClaimsFileSchema = z.object({ $comment: z.string().optional(), claims: z.array(ClaimSchema) });

/** The bundled claims, or a claims file of the same shape. */
export function loadClaims(path?: string): Claim[] {
  if (path === undefined) return ClaimsFileSchema.parse(bundledClaims).claims;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`cannot read claims file ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = ClaimsFileSchema.safeParse(json);
  if (!parsed.success) throw new InputError(`${path} is not a claims file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data.claims;
}

/** A claim's verdict in one place. */
export type ClaimVerdict = 'supported' | 'contradicted' | 'no significant difference' | 'not measured';
/** Every verdict, in display order. */
export const CLAIM_VERDICTS: readonly ClaimVerdict[] = ['supported', 'contradicted', 'no significant difference', 'not measured'];

/** One comparison of a claim at one workload / batch (or, when an engine is absent from the run, once for all). */
export interface ClaimEvaluation {
  /** `subject vs baseline` as written in the claim. */
  comparison: string;
  host?: string;
  device?: string;
  /** `workload/preset`, followed by the task for a task other than inference (`cnn/tiny training`). */
  workload?: string;
  /** The task of the cells compared. */
  task?: Task;
  /** Batch size, or `1→8` for a trend. */
  batch?: string;
  /** The engine/mode chosen on each side (resolves `best`). */
  subject?: string;
  baseline?: string;
  /** subject / baseline of the metric (for a trend: the ratio at the largest batch over the ratio at the smallest). */
  ratio?: number;
  /** 95 % bootstrap interval of the ratio; null where the metric is one measurement per cell. */
  ci?: { lo: number; hi: number } | null;
  verdict: ClaimVerdict;
  /** What is missing, or how the verdict was reached. */
  note: string;
}

/** A claim with its evaluations. */
export interface ClaimResult {
  claim: Claim;
  evaluations: ClaimEvaluation[];
  counts: Record<ClaimVerdict, number>;
}

/**
 * A cell's figure for a claim's metric. On a shape stream, latency is the first pass over the
 * stream (what a user feels: every recompilation included) and compilation time is the part of it
 * spent compiling and tracing (harness/stats/stream.ts), so the claims are judged on streams too.
 */
const metricOf = (v: CellView, metric: Claim['metric']): number | undefined => {
  const s = v.cell.stream;
  if (metric === 'latency') return s ? s.coldMs : v.cell.stats?.medianMs;
  if (metric === 'peakHostMemory') return v.cell.memory?.peakHostBytes;
  return s ? s.compileMs : v.cell.coldStart?.totalMs;
};

/**
 * The cell a selector picks in a group, or why there is none. Generation groups hold each
 * engine/mode with and without its key/value cache: a claim about frameworks is judged on the
 * cached cells, the way their users generate (the no-cache baseline measures the cache).
 */
function select(group: CellGroup, sel: Selector, metric: Claim['metric']): CellView | string {
  const ofEngine = group.cells.filter((v) => v.cell.engine === sel.engine && v.cell.generation?.cache !== 'none');
  if (ofEngine.length === 0) return `no ${sel.engine} cell`;
  const candidates = sel.mode === 'best' ? ofEngine : ofEngine.filter((v) => v.cell.mode === sel.mode);
  if (candidates.length === 0) return `no ${sel.engine}/${sel.mode} cell (modes run: ${[...new Set(ofEngine.map((v) => v.cell.mode))].join(', ')})`;
  const usable = candidates.filter((v) => v.cell.status === 'ok' && metricOf(v, metric) !== undefined);
  if (usable.length === 0)
    return candidates.map((v) => `${v.cell.engine}/${v.cell.mode} ${v.cell.status}${v.cell.reason ? `: ${v.cell.reason}` : ''}`).join('; ');
  return usable.reduce((a, b) => (metricOf(b, metric)! < metricOf(a, metric)! ? b : a));
}

const label = (v: CellView): string => `${v.cell.engine}/${v.cell.mode}`;
const hasSamples = (v: CellView): boolean => (v.cell.samplesMs?.length ?? 0) >= MIN_SAMPLES_FOR_CI;

function judge(claim: Claim, ratio: number, ci: { lo: number; hi: number } | null, threshold: number): ClaimVerdict {
  const change = classifyRatio(ci ?? { lo: ratio, hi: ratio }, threshold);
  if (change === 'no significant change') return 'no significant difference';
  return change === claim.expect ? 'supported' : 'contradicted';
}

function where(s: WorkloadSection): Pick<ClaimEvaluation, 'host' | 'device' | 'workload' | 'task'> {
  return { host: s.host, device: s.device, workload: workloadLabel(s), task: s.task };
}

function pairwise(claim: Claim, comparison: string, sel: Claim['comparisons'][number], s: WorkloadSection, g: CellGroup, threshold: number): ClaimEvaluation {
  const at = { comparison, ...where(s), batch: String(g.batchSize) };
  const subject = select(g, sel.subject, claim.metric);
  const baseline = select(g, sel.baseline, claim.metric);
  if (typeof subject === 'string' || typeof baseline === 'string') {
    return { ...at, verdict: 'not measured', note: [subject, baseline].filter((x): x is string => typeof x === 'string').join('; ') };
  }
  const sides = { subject: label(subject), baseline: label(baseline) };
  if (claim.metric === 'latency' && g.shapes !== 'stream') {
    if (!hasSamples(subject) || !hasSamples(baseline))
      return { ...at, ...sides, verdict: 'not measured', note: `fewer than ${MIN_SAMPLES_FOR_CI} timed samples on a side: no interval` };
    const ci = cellRatioInterval(subject.cell, baseline.cell);
    const note = ci.by === 'replicates' ? 'ratio of medians, 95 % bootstrap interval (processes, then samples)' : 'ratio of medians, 95 % bootstrap interval';
    return { ...at, ...sides, ratio: ci.estimate, ci: { lo: ci.lo, hi: ci.hi }, verdict: judge(claim, ci.estimate, ci, threshold), note };
  }
  const ratio = metricOf(subject, claim.metric)! / metricOf(baseline, claim.metric)!;
  const what =
    g.shapes !== 'stream'
      ? ''
      : claim.metric === 'latency'
        ? 'first pass over the shape stream, compilation included; '
        : claim.metric === 'coldStart'
          ? 'time spent compiling and tracing over the shape stream; '
          : '';
  return {
    ...at,
    ...sides,
    ratio,
    ci: null,
    verdict: judge(claim, ratio, null, threshold),
    note: `${what}one measurement per cell: point ratio against the threshold, no interval`,
  };
}

function trend(claim: Claim, comparison: string, sel: Claim['comparisons'][number], s: WorkloadSection, threshold: number): ClaimEvaluation {
  const measured = s.groups
    .map((g) => ({ g, subject: select(g, sel.subject, claim.metric), baseline: select(g, sel.baseline, claim.metric) }))
    .filter(
      (m): m is { g: CellGroup; subject: CellView; baseline: CellView } =>
        typeof m.subject !== 'string' && typeof m.baseline !== 'string' && hasSamples(m.subject) && hasSamples(m.baseline),
    );
  const first = measured[0];
  const last = measured[measured.length - 1];
  if (!first || !last || first === last) {
    return {
      comparison,
      ...where(s),
      verdict: 'not measured',
      note: `needs both sides timed at two or more batch sizes (have ${measured.map((m) => m.g.batchSize).join(', ') || 'none'})`,
    };
  }
  const ci = ratioOfCells([last.subject.cell, first.baseline.cell], [last.baseline.cell, first.subject.cell]);
  return {
    comparison,
    ...where(s),
    batch: `${first.g.batchSize}→${last.g.batchSize}`,
    subject: `${label(first.subject)} → ${label(last.subject)}`,
    baseline: `${label(first.baseline)} → ${label(last.baseline)}`,
    ratio: ci.estimate,
    ci: { lo: ci.lo, hi: ci.hi },
    verdict: judge(claim, ci.estimate, ci, threshold),
    note: `(subject/baseline at batch ${last.g.batchSize}) / (at batch ${first.g.batchSize}); model-size trends need runs of several presets`,
  };
}

/** Evaluates every claim on a run; threshold is the relative noise threshold (0.05 = ±5 %). */
export function evaluateClaims(model: RunModel, claims: Claim[], threshold: number): ClaimResult[] {
  const enginesRun = new Set(model.run.cells.map((c) => c.engine));
  return claims.map((claim) => {
    const evaluations: ClaimEvaluation[] = [];
    for (const sel of claim.comparisons) {
      const comparison = `${sel.subject.engine}/${sel.subject.mode} vs ${sel.baseline.engine}/${sel.baseline.mode}`;
      const absent = [sel.subject.engine, sel.baseline.engine].filter((e) => !enginesRun.has(e));
      if (absent.length > 0) {
        evaluations.push({
          comparison,
          verdict: 'not measured',
          note: `not in this run: ${[...new Set(absent)].join(', ')} (engines run: ${[...enginesRun].join(', ')})`,
        });
        continue;
      }
      const sections = model.sections.filter((x) => !claim.tasks || claim.tasks.includes(x.task));
      if (sections.length === 0) {
        const tasks = claim.tasks!.join(', ');
        evaluations.push({ comparison, verdict: 'not measured', note: `judged on ${tasks} cells; this run has none (fwbench run --tasks ${tasks})` });
        continue;
      }
      for (const s of sections) {
        const involved = (g: CellGroup): boolean => g.cells.some((v) => v.cell.engine === sel.subject.engine || v.cell.engine === sel.baseline.engine);
        if (!s.groups.some(involved)) continue;
        if (claim.kind === 'trend-over-batch') evaluations.push(trend(claim, comparison, sel, s, threshold));
        else for (const g of s.groups.filter(involved)) evaluations.push(pairwise(claim, comparison, sel, s, g, threshold));
      }
    }
    const counts = Object.fromEntries(CLAIM_VERDICTS.map((v) => [v, evaluations.filter((e) => e.verdict === v).length])) as Record<ClaimVerdict, number>;
    return { claim, evaluations, counts };
  });
}

/** One line per claim: how its measured comparisons came out. */
export function claimSummary(r: ClaimResult): string {
  const measured = r.evaluations.length - r.counts['not measured'];
  if (measured === 0) return 'not measured in this run';
  return `supported in ${r.counts.supported}, contradicted in ${r.counts.contradicted}, no significant difference in ${r.counts['no significant difference']} of ${measured} measured comparison${measured === 1 ? '' : 's'}`;
}

/** The claims' verdicts as text: each claim with its summary, then one line per measured comparison. */
export function claimsText(results: ClaimResult[]): string {
  const fmt = (v: number): string => (v >= 100 ? v.toFixed(1) : v.toPrecision(3));
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.claim.id}: ${r.claim.claim}`, `  ${claimSummary(r)}`);
    for (const e of r.evaluations.filter((x) => x.verdict !== 'not measured'))
      lines.push(
        `    ${e.workload}, batch ${e.batch}: ${e.subject} vs ${e.baseline} ratio ${fmt(e.ratio!)}${e.ci ? ` [${fmt(e.ci.lo)}, ${fmt(e.ci.hi)}]` : ''}: ${e.verdict}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

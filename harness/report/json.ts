import { claimSummary } from './claims.js';
import type { Report } from './build.js';
import { cellRow } from './model.js';

/** The report's derived figures as JSON (raw samples stay in run.json): per-cell rows, hosts and claim verdicts. */
export function jsonReport(report: Report): string {
  const { model } = report;
  return `${JSON.stringify(
    {
      tool: model.run.tool,
      generatedAt: report.generatedAt,
      command: model.run.command,
      hosts: model.hosts.map((h) => ({
        fingerprint: h.fingerprint,
        host: h.host,
        engines: h.engines,
        threads: h.config.threads,
        command: h.command,
        startedAt: h.startedAt,
      })),
      thresholdPct: report.thresholdPct,
      cells: model.cells.map(cellRow),
      claims: report.claims.map((r) => ({
        id: r.claim.id,
        claim: r.claim.claim,
        metric: r.claim.metric,
        summary: claimSummary(r),
        counts: r.counts,
        evaluations: r.evaluations,
      })),
    },
    null,
    2,
  )}\n`;
}

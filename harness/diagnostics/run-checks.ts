import type { HostInfo } from './detect/host.js';
import { hostFingerprint } from './detect/host.js';
import { deviceFindings, formatFindings, runDoctor, type Finding } from './doctor.js';
import type { EngineId } from '../engines/types.js';
import { fractionOfPeak, measurePeak, type MachinePeak } from './peak.js';
import type { Cell, EngineStatus, RunConfig } from '../results/schema.js';

/**
 * What `fwbench run` adds around its cells: the cheap doctor checks at start (warnings on
 * stderr, kept in run.json), the machine's peak (measured once per host and engine version,
 * then cached), each ok cell's fractionOfPeak, and the cell-level doctor check at the end.
 */
export interface RunDiagnostics {
  doctor: Finding[];
  /** The peak at the largest thread count of the run: the machine's. */
  peak?: MachinePeak;
  /** With several thread counts: the peak at each. */
  peaks?: MachinePeak[];
}

/** The engines whose figures make the machine's peak: ONNX Runtime (always there, multi-threaded MLAS) and the run's engines. */
export function peakEngines(
  config: Pick<RunConfig, 'engines'>,
  engines: Record<string, EngineStatus>,
): Array<{ id: EngineId; version?: string; unavailable?: string }> {
  const ids = [...new Set(['onnxruntime', ...config.engines])] as EngineId[];
  return ids.map((id) => {
    const s = engines[id];
    if (!s?.available) return { id, unavailable: s?.reason ?? 'not probed' };
    return { id, ...(s.version ? { version: s.version } : {}) };
  });
}

/** Runs the cheap doctor and measures (or reads) the peak; warnings go to `warn` (stderr in the CLI). */
export async function startDiagnostics(
  config: RunConfig,
  host: HostInfo,
  engines: Record<string, EngineStatus>,
  note: (t: string) => void = () => undefined,
  warn: (t: string) => void = (t) => process.stderr.write(t),
): Promise<RunDiagnostics> {
  // A sweep that reaches the physical cores is deliberate: only warn when every count is below them.
  const doctor = await runDoctor({ engines: config.engines, threads: Math.max(...config.threads), device: config.device, host, cheap: true });
  const warnings = doctor.filter((f) => f.severity === 'warn');
  if (warnings.length > 0) warn(formatFindings(warnings).replace(/^WARN /gm, 'fwbench: doctor WARN '));
  note('measuring the machine peak (GEMM, copy bandwidth; cached per host and engine version)');
  const peaks: MachinePeak[] = [];
  for (const threads of [...config.threads].sort((a, b) => b - a)) {
    const { peak } = await measurePeak({ engines: peakEngines(config, engines), device: config.device, threads, hostFingerprint: hostFingerprint(host) });
    if (!peak) continue;
    note(`peak at ${threads} thread(s): ${peak.gflops.toFixed(1)} GFLOP/s (${peak.gflopsEngine}), ${peak.gbps.toFixed(1)} GB/s (${peak.gbpsEngine})`);
    peaks.push(peak);
  }
  const peak = peaks[0];
  return { doctor, ...(peak ? { peak } : {}), ...(config.threads.length > 1 ? { peaks } : {}) };
}

/** The cell with fractionOfPeak set when it is ok and the peak at its thread count (else the machine's) is known. */
export function withFractionOfPeak(cell: Cell, d: Pick<RunDiagnostics, 'peak' | 'peaks'>): Cell {
  const peak = d.peaks?.find((p) => p.threads === cell.threads) ?? d.peak;
  const f = cell.status === 'ok' ? fractionOfPeak(cell.gflops, peak) : undefined;
  return f === undefined ? cell : { ...cell, fractionOfPeak: f };
}

/**
 * Cells above the peak they are judged against. Either that peak is understated (measured while
 * the machine was busy, then cached, or through slower engines than the run's), so every fraction
 * of the run is overstated; or an engine's kernels beat the 1024² GEMM the peak is measured with
 * (seen here on an idle machine: ONNX Runtime's resnet50 convolutions at 111 % of torch's GEMM).
 */
export function abovePeakFinding(cells: readonly Cell[]): Finding | undefined {
  const above = cells.filter((c) => (c.fractionOfPeak ?? 0) > 1);
  if (above.length === 0) return undefined;
  const worst = above.reduce((a, b) => (b.fractionOfPeak! > a.fractionOfPeak! ? b : a));
  return {
    id: 'above-peak',
    severity: 'warn',
    message: `${above.length} cell(s) ran above the measured peak (up to ${(100 * worst.fractionOfPeak!).toFixed(0)} %: ${worst.id}): either the peak is understated (measured while the machine was busy), which makes every fractionOfPeak of this run too high, or that engine's kernels beat the 1024² GEMM the peak is measured with`,
    fix: "if the peak was measured on a busy machine, measure it again on an otherwise idle one: fwbench peak --no-cache (later runs use the new figures); otherwise read those cells as running at this machine's peak",
  };
}

/** run.json fields: the peak and the doctor findings, with the end-of-run cell checks added. */
export function diagnosticsFields(
  d: RunDiagnostics,
  config: Pick<RunConfig, 'device'>,
  cells: Cell[],
): { peak?: MachinePeak; peaks?: MachinePeak[]; doctor: Finding[] } {
  const ids = new Set(d.doctor.map((f) => f.id));
  const end = [...deviceFindings(config.device, undefined, cells), abovePeakFinding(cells)].filter((f): f is Finding => f !== undefined && !ids.has(f.id));
  return { ...(d.peak ? { peak: d.peak } : {}), ...(d.peaks ? { peaks: d.peaks } : {}), doctor: [...d.doctor, ...end] };
}

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { join } from 'node:path';
import { z } from 'zod';
import { cacheDir } from '../../workloads/materialize.js';
import { ENGINES } from '../engines/registry.js';
import type { Device, EngineId } from '../engines/types.js';
import { EnginePeakSchema, type EnginePeak, type MachinePeak } from './schema.js';
import { PROTOCOL_VERSION } from '../worker/protocol.js';

export { EnginePeakSchema, MachinePeakSchema, type EnginePeak, type MachinePeak } from './schema.js';
import { describeFailure } from '../run/failure.js';
import { runEngineWorker, threadEnv } from '../run/workers.js';

/**
 * `fwbench peak`: this machine's achievable FP32 GEMM rate and memory bandwidth, measured through
 * each engine in its own worker (the same process isolation as cells). The best engine's figure
 * is the machine's peak; `fwbench run` divides every ok cell's GFLOP/s by it (`fractionOfPeak`).
 * Each engine's figures are cached per host fingerprint, engine version, device and threads, so
 * repeated runs do not pay for them again.
 */

/** GEMM size for most engines (2n^3 = 2.1 GFLOP per call). */
export const GEMM_N = 1024;
/** TensorFlow.js's pure-JavaScript backend would take seconds per 1024^3 GEMM; 512 shows the same rate. */
const GEMM_N_BY_ENGINE: Partial<Record<EngineId, number>> = { 'tfjs-cpu': 512 };
/** Copy size: 2^24 float32 = 64 MiB per array, far beyond any last-level cache (128 MiB moved per copy). */
export const COPY_ELEMENTS = 2 ** 24;
/** Time budget per kernel inside a worker (ms). */
const MAX_MS = 2000;

/** Options of {@link measurePeak}. */
export interface PeakOptions {
  /** Engines to measure (those without a version are skipped with the reason). */
  engines: Array<{ id: EngineId; version?: string; unavailable?: string }>;
  device: Device;
  threads: number;
  /** Cache key part: the host fingerprint. */
  hostFingerprint: string;
  /**
   * Reuse cached figures (default true). False measures again and replaces them, so runs after
   * `fwbench peak --no-cache` on a quiet machine divide by the new figures.
   */
  cache?: boolean;
  timeoutMs?: number;
  onEngine?(p: EnginePeak): void;
}

function cachePath(key: string): string {
  return join(cacheDir(), `peak-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.json`);
}

/** Measures one engine's peak figures in a worker (no cache). */
export async function measureEnginePeak(id: EngineId, device: Device, threads: number, timeoutMs = 120_000): Promise<EnginePeak> {
  const o = await runEngineWorker(
    ENGINES[id],
    {
      type: 'peak',
      protocol: PROTOCOL_VERSION,
      engine: id,
      device,
      threads,
      gemmN: GEMM_N_BY_ENGINE[id] ?? GEMM_N,
      copyElements: COPY_ELEMENTS,
      maxMs: MAX_MS,
    },
    { timeoutMs, env: threadEnv(threads) },
  );
  if (!o.peak) return { engine: id, ok: false, reason: describeFailure(o) };
  const { type: _t, ...figures } = o.peak;
  void _t;
  return { engine: id, ok: true, ...figures, measuredAt: new Date().toISOString() };
}

/** A cached JSON file's content; a damaged one (not JSON, unreadable) counts as absent and is measured again. */
function readCachedJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Measures (or reads from the cache) every engine's figures one after the other (never
 * concurrently: they would share cores and memory bandwidth), and takes the best of each.
 * Undefined when no engine produced figures.
 */
export async function measurePeak(o: PeakOptions): Promise<{ peak?: MachinePeak; engines: EnginePeak[] }> {
  const results: EnginePeak[] = [];
  for (const e of o.engines) {
    let r: EnginePeak;
    if (e.unavailable !== undefined || !ENGINES[e.id].devices.includes(o.device)) {
      r = { engine: e.id, ok: false, reason: e.unavailable ?? `${e.id} does not run on ${o.device}` };
    } else {
      const path = cachePath(
        JSON.stringify({
          host: o.hostFingerprint,
          engine: e.id,
          version: e.version ?? 'unknown',
          device: o.device,
          threads: o.threads,
          gemmN: GEMM_N_BY_ENGINE[e.id] ?? GEMM_N,
          copy: COPY_ELEMENTS,
          protocol: PROTOCOL_VERSION,
        }),
      );
      const cached = o.cache !== false && existsSync(path) ? EnginePeakSchema.safeParse(readCachedJson(path)) : undefined;
      if (cached?.success) r = { ...cached.data, cached: true };
      else {
        r = { ...(await measureEnginePeak(e.id, o.device, o.threads, o.timeoutMs)), ...(e.version ? { version: e.version } : {}) };
        if (r.ok) {
          writeFileAtomic(path, `${JSON.stringify(r)}\n`);
        }
      }
    }
    o.onEngine?.(r);
    results.push(r);
  }
  // The machine's peak is the best any engine has reached on this host with these settings, not
  // only the engines of this run: otherwise a run without torch would get a lower denominator.
  const known = rememberHostPeaks(o, results);
  const peak = machinePeakOf(known, o.device, o.threads);
  return { ...(peak ? { peak } : {}), engines: results };
}

/**
 * Merges this measurement's figures into the host's record (one file per host, device and
 * threads) and returns them together with the figures of engines measured earlier on this host.
 */
function rememberHostPeaks(o: Pick<PeakOptions, 'hostFingerprint' | 'device' | 'threads'>, results: EnginePeak[]): EnginePeak[] {
  const path = cachePath(
    JSON.stringify({ hostPeaks: o.hostFingerprint, device: o.device, threads: o.threads, gemmN: GEMM_N, copy: COPY_ELEMENTS, protocol: PROTOCOL_VERSION }),
  );
  const stored = existsSync(path) ? z.record(z.string(), EnginePeakSchema).safeParse(readCachedJson(path)) : undefined;
  const byEngine: Record<string, EnginePeak> = stored?.success ? stored.data : {};
  for (const r of results) if (r.ok) byEngine[r.engine] = { ...r, cached: true };
  writeFileAtomic(path, `${JSON.stringify(byEngine)}\n`);
  const measuredNow = new Set(results.map((r) => r.engine));
  return [...results, ...Object.values(byEngine).filter((e) => !measuredNow.has(e.engine))];
}

/** The best GEMM rate and the best bandwidth among engines' figures. */
export function machinePeakOf(engines: EnginePeak[], device: Device, threads: number): MachinePeak | undefined {
  const ok = engines.filter((e) => e.ok && e.gemmGflops !== undefined && e.copyGBps !== undefined);
  if (ok.length === 0) return undefined;
  const bestG = ok.reduce((a, b) => (b.gemmGflops! > a.gemmGflops! ? b : a));
  const bestB = ok.reduce((a, b) => (b.copyGBps! > a.copyGBps! ? b : a));
  return { device, threads, gflops: bestG.gemmGflops!, gflopsEngine: bestG.engine, gbps: bestB.copyGBps!, gbpsEngine: bestB.engine, engines };
}

/** A cell's GFLOP/s as a fraction of the machine's peak GEMM rate. */
export function fractionOfPeak(gflops: number | undefined, peak: Pick<MachinePeak, 'gflops'> | undefined): number | undefined {
  return gflops === undefined || !peak || !(peak.gflops > 0) ? undefined : gflops / peak.gflops;
}

/** Human lines for `fwbench peak`. */
export function formatPeak(p: { peak?: MachinePeak; engines: EnginePeak[] }): string {
  const lines = p.engines.map((e) =>
    e.ok
      ? `  ${e.engine.padEnd(14)} GEMM ${e.gemmGflops!.toFixed(1).padStart(8)} GFLOP/s (n=${e.gemmN})   copy ${e.copyGBps!.toFixed(1).padStart(6)} GB/s${e.cached ? '   (cached)' : ''}`
      : `  ${e.engine.padEnd(14)} no figures: ${e.reason}`,
  );
  const head = p.peak
    ? `Peak (${p.peak.device}, ${p.peak.threads} threads): ${p.peak.gflops.toFixed(1)} GFLOP/s FP32 GEMM (${p.peak.gflopsEngine}), ${p.peak.gbps.toFixed(1)} GB/s copy (${p.peak.gbpsEngine})`
    : 'Peak: no engine produced figures';
  return `${head}\n${lines.join('\n')}\n`;
}

import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { pidAlive } from '../io/lock.js';
import { loadRun } from '../results/read.js';
import { ResultsStore, type Cell, type EngineStatus, type Run, type RunConfig } from '../results/schema.js';
import { resumeCheck, RUN_FLAGS, type RunFlagTable } from './flags.js';

/**
 * `fwbench run --resume DIR`: the run's own configuration (from DIR/run.json, written before its
 * first cell) and its finished cells (DIR/cells.jsonl); refused, naming every difference, when a
 * flag given again or the machine and its engines differ from the run's.
 */

const at = (config: RunConfig, path: string): unknown =>
  path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), config);
const show = (v: unknown): string => (v === undefined ? '(not set)' : JSON.stringify(v));

/**
 * Each field that `given` (built from the command line) sets differently from the run's `stored`
 * configuration, for the options the user gave (commander's names): the fields each flag's entry
 * in the flags table says it changes (`table` is RUN_FLAGS but in tests).
 */
export function configDifferences(stored: RunConfig, given: RunConfig, explicitOptions: string[], table: RunFlagTable = RUN_FLAGS): string[] {
  const out: string[] = [];
  for (const option of explicitOptions) {
    const { flag, fields } = resumeCheck(table, option);
    for (const path of fields) {
      const was = at(stored, path);
      const now = at(given, path);
      if (JSON.stringify(was) !== JSON.stringify(now)) out.push(`${flag} (${path}): the run has ${show(was)}, this command gives ${show(now)}`);
    }
  }
  return out;
}

/** What changed on the machine since the run started: the host fingerprint, or an engine's availability or version. */
export function environmentDifferences(run: Pick<Run, 'hostFingerprint' | 'engines'>, fingerprint: string, engines: Record<string, EngineStatus>): string[] {
  const out: string[] = [];
  if (run.hostFingerprint !== fingerprint) out.push(`host: the run has ${JSON.stringify(run.hostFingerprint)}, this machine is ${JSON.stringify(fingerprint)}`);
  for (const [id, was] of Object.entries(run.engines)) {
    const now = engines[id];
    if (!now) continue;
    if (was.available !== now.available)
      out.push(`engine ${id}: ${was.available ? 'available' : 'unavailable'} in the run, ${now.available ? 'available' : 'unavailable'} now`);
    else if (was.version !== now.version) out.push(`engine ${id}: version ${was.version} in the run, ${now.version} now`);
  }
  return out;
}

/** Refuses to resume a missing folder (before its lock is taken, so none is created). */
export function requireResumeFolder(dir: string): void {
  if (!existsSync(dir)) throw new InputError(`cannot resume ${dir}: no such folder`);
}

/** Refuses to resume a folder without a run.json. */
function requireRunFolder(dir: string): void {
  if (!existsSync(join(dir, 'run.json')))
    throw new InputError(`cannot resume ${dir}: it has no run.json (a run writes it before its first cell; this one never got that far, so start it again)`);
}

/** The run to continue in `dir` and its finished cells; a truncated last line of cells.jsonl is dropped through `warn`. */
export function loadResume(dir: string, warn: (text: string) => void): { run: Run; cells: Cell[] } {
  requireRunFolder(dir);
  const store = new ResultsStore(dir);
  try {
    const run = loadRun(store.runPath);
    if (run.sources) throw new Error('it holds a merged run (fwbench merge), not a run of this machine');
    const o = run.orchestrator;
    if (run.state === 'running' && o && o.hostname === hostname() && o.pid !== process.pid && pidAlive(o.pid))
      throw new Error(`its run is still going (fwbench pid ${o.pid}); stop it first (Ctrl-C, or kill ${o.pid}), then resume`);
    return { run, cells: store.readCells(warn) };
  } catch (e) {
    throw new InputError(`cannot resume ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The configuration a resumed run continues with (the run's own), or an InputError naming every field the command line sets differently. */
export function resumeConfig(dir: string, stored: RunConfig, given: RunConfig, explicitOptions: string[]): RunConfig {
  const diffs = configDifferences(stored, given, explicitOptions);
  if (diffs.length)
    throw new InputError(
      `cannot resume ${dir}: the configuration differs: ${diffs.join('; ')} (leave those flags out to continue the run as it was, or start a new run with --out)`,
    );
  return stored;
}

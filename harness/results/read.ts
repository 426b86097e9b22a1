import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { ResultsStore, RunSchema, SCHEMA_VERSION, type Run } from './schema.js';
import { planCells } from '../run/plan.js';
import { TOOL_VERSION } from '../version.js';

/**
 * Reading a run.json that report, compare and merge were given. A file may come from another
 * machine and another fwbench version, so before the schema judges it, it is sorted into: not
 * JSON (corrupt or truncated), JSON but not an fwbench run (foreign), an fwbench run of a newer
 * schema version than this tool knows (refused: fields may have changed meaning), or a run of
 * this or an older compatible version, which is brought up to date and then validated. Every
 * refusal is one InputError line (exit 2) naming the file.
 */

/** Oldest run.json schema version this tool reads (older versions are upgraded on reading). */
export const OLDEST_READABLE_SCHEMA_VERSION = 1;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Fields added to schema version 1 after its first release, filled the way those files were
 * measured: runs before the stopping rule existed (fwbench 0.1.0 at 34a4747) have no
 * `measure.targetInterval`; 0 means "no interval target: run to the caps", which is what they did.
 * Runs before presets per workload hold one preset name, which every workload of theirs ran.
 */
function upgradeV1(run: Record<string, unknown>): void {
  const configs = [run.config, ...(Array.isArray(run.sources) ? run.sources.map((s: unknown) => (isObject(s) ? s.config : undefined)) : [])];
  for (const config of configs) {
    if (!isObject(config)) continue;
    if (isObject(config.measure) && config.measure.targetInterval === undefined) config.measure.targetInterval = 0;
    // One preset name for every workload, as runs held it before presets per workload.
    if (typeof config.preset === 'string' && Array.isArray(config.workloads)) config.preset = Object.fromEntries(config.workloads.map((w: unknown) => [String(w), config.preset]));
  }
}

/**
 * A run as report, compare and merge read it: run.json, with the cells of the cells.jsonl beside
 * it when run.json lists fewer (a run killed or stopped between writing a cell and rewriting
 * run.json: cells.jsonl is where every finished cell is first made durable), and a note through
 * `note` when the run did not finish: "incomplete: N of M cells".
 */
export function loadRunWithCells(path: string, note: (text: string) => void): Run {
  const run = loadRun(path);
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'run.json') : path;
  const dir = dirname(file);
  if (!run.sources && existsSync(join(dir, 'cells.jsonl'))) {
    try {
      const lines = new ResultsStore(dir).readCells(() => undefined, { repair: false });
      const known = new Set(run.cells.map((c) => c.id));
      const extra = lines.filter((c) => !known.has(c.id));
      if (extra.length > 0) {
        note(`${dir}: run.json lists ${run.cells.length} cells, cells.jsonl ${run.cells.length + extra.length}: using every finished cell of cells.jsonl (fwbench run --resume ${dir} rewrites run.json from it)`);
        run.cells = [...run.cells, ...extra];
      }
    } catch (e) {
      note(`${dir}: cells.jsonl is unreadable (${e instanceof Error ? e.message : String(e)}); using the cells of run.json`);
    }
  }
  if (run.state === 'running' || run.state === 'interrupted') {
    const planned = planCells(run.config).length;
    note(`${file}: incomplete: ${run.cells.length} of ${planned} cells (run state ${run.state}); continue it with fwbench run --resume ${dir}`);
  }
  return run;
}

/** The run.json a run folder (or a run.json path) holds, refused with one line when corrupt, foreign or newer. */
export function loadRun(path: string): Run {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'run.json') : path;
  if (!existsSync(file)) throw new InputError(`no run.json at ${file} (a run writes it before its first cell; pass the run's folder or its run.json)`);
  if (statSync(file).isDirectory()) throw new InputError(`${file} is a folder, not a run.json`);
  const text = readFileSync(file, 'utf8');
  if (text.trim() === '') throw new InputError(`${file} is empty (corrupt or truncated run.json)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${file} is corrupt or truncated: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(json) || !isObject(json.tool) || json.tool.name !== 'fwbench' || !('schemaVersion' in json)) {
    throw new InputError(`${file} is not an fwbench run.json: it lacks "tool": {"name": "fwbench"} and "schemaVersion" (a file from another program?)`);
  }
  const version = json.schemaVersion;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new InputError(`${file} has schemaVersion ${JSON.stringify(version)}; fwbench run.json versions are positive integers`);
  if (version > SCHEMA_VERSION) {
    throw new InputError(`${file} has schemaVersion ${version} (written by fwbench ${typeof json.tool.version === 'string' ? json.tool.version : '?'}), newer than this fwbench ${TOOL_VERSION} reads (${OLDEST_READABLE_SCHEMA_VERSION}-${SCHEMA_VERSION}); update fwbench to read it`);
  }
  if (version < OLDEST_READABLE_SCHEMA_VERSION) throw new InputError(`${file} has schemaVersion ${version}, older than this fwbench ${TOOL_VERSION} reads (${OLDEST_READABLE_SCHEMA_VERSION}-${SCHEMA_VERSION})`);
  upgradeV1(json);
  const parsed = RunSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`${file} is not a valid fwbench run.json (schema version ${version}): ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'schema mismatch'}`);
  }
  return parsed.data;
}


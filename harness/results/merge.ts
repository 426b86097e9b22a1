import { InputError } from '../errors.js';
import { lockFolder } from '../io/lock.js';
import { insideDir, pathTaken } from '../io/output.js';
import { cellHost, cellThreads } from '../report/model.js';
import { ResultsStore, RunSchema, SCHEMA_VERSION, type Run, type RunSource } from './schema.js';
import { TOOL_VERSION } from '../version.js';

/**
 * `fwbench merge`: runs made on several machines become one run in which the host is a dimension.
 * Every cell of every input is kept and carries the fingerprint of the host that measured it;
 * every input's header (host, engines, configuration, command) is kept in `sources`. Two
 * different machines can share a fingerprint (same CPU model, memory and GPUs), so a clash is
 * made unique with the host name, or with the run's start time when it is the same machine.
 */

const sourcesOf = (run: Run): RunSource[] => run.sources ?? [run];

/**
 * Merges runs (plain or already merged) in the order given. With `sameFingerprintSameHost`, runs
 * whose fingerprints are equal count as one kind of machine and their cells are compared side by
 * side (collect uses it for jobs split by engine, each engine on an identical node).
 */
export function mergeRuns(runs: Run[], command: string[], opts: { sameFingerprintSameHost?: boolean; note?: (text: string) => void } = {}): Run {
  const first = runs[0];
  if (!first) throw new InputError('merge needs at least one run');
  const sources: RunSource[] = [];
  const cells: Run['cells'] = [];
  // One run given twice (or inside a merged run given too) is one source, not a second machine.
  const sameRun = new Map<string, string>();
  for (const run of runs) {
    const renamed = new Map<string, string>();
    for (const s of sourcesOf(run)) {
      const runKey = JSON.stringify([s.hostFingerprint, s.host.hostname, s.startedAt]);
      const earlier = sameRun.get(runKey);
      if (earlier !== undefined) {
        renamed.set(s.hostFingerprint, earlier);
        continue;
      }
      let fingerprint = s.hostFingerprint;
      const clash = (fp: string): boolean => sources.some((o) => o.hostFingerprint === fp);
      if (clash(fingerprint) && !opts.sameFingerprintSameHost) fingerprint = `${s.hostFingerprint} (${s.host.hostname})`;
      if (clash(fingerprint) && !opts.sameFingerprintSameHost) fingerprint = `${s.hostFingerprint} (${s.host.hostname}, ${s.startedAt})`;
      renamed.set(s.hostFingerprint, fingerprint);
      sameRun.set(runKey, fingerprint);
      sources.push({ hostFingerprint: fingerprint, host: s.host, tool: s.tool, command: s.command, startedAt: s.startedAt, finishedAt: s.finishedAt, engines: s.engines, config: s.config });
    }
    for (const c of run.cells) {
      const host = cellHost(run, c);
      // Cells from runs before the --threads sweep get their run's thread count, which the merged header may not carry.
      cells.push({ ...c, threads: cellThreads(run, c), hostFingerprint: renamed.get(host) ?? host });
    }
  }
  const head = sources[0]!;
  const unique = withoutDuplicates(cells, opts.note ?? (() => undefined));
  return RunSchema.parse({
    schemaVersion: SCHEMA_VERSION,
    tool: { name: 'fwbench', version: TOOL_VERSION },
    command,
    startedAt: sources.map((s) => s.startedAt).sort()[0]!,
    finishedAt: sources.map((s) => s.finishedAt).sort().at(-1)!,
    host: head.host,
    hostFingerprint: head.hostFingerprint,
    engines: head.engines,
    config: head.config,
    cells: unique,
    sources,
  } satisfies Run);
}

/**
 * The cells with each (host, cell id) once: an exact copy (the same run given twice, with its
 * fingerprint shared) is dropped with a note naming it; two different records of one cell on one
 * host cannot both be the measurement, so they are refused, naming the cell.
 */
function withoutDuplicates(cells: Run['cells'], note: (text: string) => void): Run['cells'] {
  const seen = new Map<string, string>();
  const out: Run['cells'] = [];
  const dropped: string[] = [];
  for (const c of cells) {
    const key = `${c.hostFingerprint ?? ''}\u0000${c.id}`;
    const text = JSON.stringify(c);
    const before = seen.get(key);
    if (before === undefined) {
      seen.set(key, text);
      out.push(c);
    } else if (before === text) dropped.push(c.id);
    else throw new InputError(`cell ${c.id} of host ${JSON.stringify(c.hostFingerprint)} appears twice with different results; merge one of the runs that hold it, not both`);
  }
  if (dropped.length) note(`dropped ${dropped.length} duplicate cell(s), identical copies of cells already merged: ${dropped.join(', ')}`);
  return out;
}

/** Writes a merged run as a run folder (cells.jsonl + run.json); refuses a folder that already holds a run, or a link in its place. */
export function writeMerged(run: Run, dir: string): string {
  const release = lockFolder(dir, run.command, (t) => process.stderr.write(`fwbench: ${t}\n`));
  try {
    for (const f of ['run.json', 'cells.jsonl']) if (pathTaken(insideDir(dir, f))) throw new InputError(`${insideDir(dir, f)} exists: merge writes into a new or empty folder`);
    const store = new ResultsStore(dir);
    for (const c of run.cells) store.appendCell(c);
    return store.writeRun(run);
  } finally {
    release();
  }
}

import { execa } from 'execa';
import { existsSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { compareRuns, type Comparison } from '../harness/report/compare.js';
import { loadRun } from '../harness/results/read.js';
import type { Run } from '../harness/results/schema.js';
import { packageRoot } from '../harness/run/workers.js';

/**
 * A/A experiment: the same configuration run twice (two `fwbench run`s into two folders, default
 * engines, workloads and measurement unless flags after `--` say otherwise), then the real
 * `fwbench compare A B`. Target: >= 95 % of the cells judged "no significant change".
 *
 * Also shows what the comparison would say if the intervals pooled the samples of the replicates
 * (ignoring process-to-process variation): the same runs with the replicate structure removed.
 *
 * Usage: node dist/bench/aa.js [--out DIR] [--reuse] [--threshold 5] [-- extra run flags]
 * --reuse compares DIR/a and DIR/b if they exist instead of running again.
 */
const { values: args, positionals } = parseArgs({
  options: {
    out: { type: 'string', default: join(tmpdir(), `fwbench-aa-${process.pid}`) },
    reuse: { type: 'boolean', default: false },
    threshold: { type: 'string', default: '5' },
  },
  allowPositionals: true,
});
const out = resolve(args.out);
const cli = join(packageRoot(), 'bin', 'fwbench.js');
const threshold = Number(args.threshold);
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

for (const side of ['a', 'b']) {
  const dir = join(out, side);
  if (args.reuse && existsSync(join(dir, 'run.json'))) continue;
  const t0 = performance.now();
  process.stderr.write(`aa: run ${side} (load ${load()})\n`);
  // fwbench refuses to run into a run's folder: start clean, and never compare a stale run.json.
  rmSync(dir, { recursive: true, force: true });
  const r = await execa(process.execPath, [cli, 'run', '--out', dir, ...positionals], { reject: false, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`aa: run ${side}: fwbench run exited ${r.exitCode}`);
  process.stderr.write(`aa: run ${side} took ${((performance.now() - t0) / 1000).toFixed(1)} s (load ${load()})\n`);
}

const cmp = await execa(process.execPath, [cli, 'compare', join(out, 'a'), join(out, 'b'), '--threshold', String(threshold), '--format', 'json'], {
  reject: false,
});
const real = JSON.parse(cmp.stdout) as Comparison;
const a = loadRun(join(out, 'a'));
const b = loadRun(join(out, 'b'));
const pooledOnly = (r: Run): Run => ({ ...r, cells: r.cells.map(({ replicates: _replicates, ...c }) => c) });
const pooled = compareRuns(pooledOnly(a), pooledOnly(b), { thresholdPct: threshold });

const summary = (c: Comparison): string => {
  const same = c.pairs.filter((p) => p.verdict === 'no significant change').length;
  const changed = c.pairs.filter((p) => p.verdict === 'slower' || p.verdict === 'faster');
  return `${same} of ${c.pairs.length} cells no significant change (${((same / Math.max(1, c.pairs.length)) * 100).toFixed(1)} %)${changed.length ? `; flagged: ${changed.map((p) => `${p.engine}/${p.mode} ${p.workload} b${p.batchSize} ${p.verdict} ${p.ratio.toFixed(3)} [${p.ci!.lo.toFixed(3)}, ${p.ci!.hi.toFixed(3)}]`).join('; ')}` : ''}`;
};
const widths = (c: Comparison): string => {
  const w = c.pairs
    .filter((p) => p.ci)
    .map((p) => ((p.ci!.hi - p.ci!.lo) / 2) * 100)
    .sort((x, y) => x - y);
  return w.length ? `median half-width ±${w[w.length >> 1]!.toFixed(2)} %, max ±${w.at(-1)!.toFixed(2)} %` : 'no intervals';
};
const ratios = real.pairs.map((p) => Math.abs(p.ratio - 1) * 100).sort((x, y) => x - y);
process.stdout.write(
  [
    `A/A: ${join(out, 'a')} vs ${join(out, 'b')}, threshold ±${threshold} %, compare exit ${cmp.exitCode}; load now ${load()}`,
    `|B/A - 1| of the medians: median ${ratios[ratios.length >> 1]?.toFixed(2)} %, max ${ratios.at(-1)?.toFixed(2)} %`,
    `fwbench compare (processes, then samples): ${summary(real)}; interval ${widths(real)}`,
    `pooled samples only (replicates ignored):   ${summary(pooled)}; interval ${widths(pooled)}`,
  ].join('\n') + '\n',
);

import { execa } from 'execa';
import { coefficientOfVariation } from 'simple-statistics';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINES } from '../harness/engines/registry.js';
import type { EngineId } from '../harness/engines/types.js';
import { medianCi } from '../harness/worker/measure.js';
import { RunSchema } from '../harness/results/schema.js';
import { packageRoot, pythonInterpreter, threadEnv } from '../harness/run/workers.js';
import { materialize } from '../workloads/materialize.js';
import { getFamily, resolveParams, type FamilyName } from '../workloads/index.js';
import type { BareJob, BareResult } from './bare-loop.js';

/**
 * The harness's own cost: for each engine, the median `fwbench run` reports for a cell against
 * the median of a bare timing loop written directly against the framework (bench/bare-loop.ts for
 * ONNX Runtime and TF.js, bench/bare_loop.py for PyTorch and TensorFlow) on the same model and
 * inputs, with the same thread environment and one process each. Harness and bare processes
 * alternate (the order flips every round) so a drift of the machine hits both; the bare loop takes
 * as many samples as the harness took in its latest process.
 *
 * Criterion (issue 5): |harness median - bare median| <= max(2 µs, 0.5 % of the bare median).
 *
 * Two designs, two tables:
 * - Same process (--blocks N, judged): one process per case alternates N blocks of the harness's
 *   timed loop (the engine's BuiltModel.run + harness/worker/measure.ts, or the runner's
 *   session/run/measure) with N blocks of a bare loop written against the framework objects of
 *   that same built model; each side's median is the median of its block medians, the verdict
 *   the median of the paired differences. Only the loop around the forward pass
 *   differs, so this is the harness's own cost.
 * - Separate processes (--rounds R): the median `fwbench run` reports for the cell against a bare
 *   process on the exported files, alternating. Each process's median also carries that
 *   process's own luck (JIT decisions, memory layout): the "bare CV between processes" column
 *   gives that noise floor, and the 95 % interval of the paired differences says whether the two
 *   sides can be told apart at R rounds.
 *
 * Usage: node dist/bench/overhead.js [--rounds 5] [--blocks 24] [--threads 1]
 *        [--cases onnxruntime,torch,...] [--suite] [--out DIR]
 *        node dist/bench/overhead.js --from DIR/overhead.json   (re-judges a saved run; measures nothing)
 * --suite also times the default suite (`fwbench run` with defaults) to its target interval.
 */
interface Case {
  engine: string;
  mode: string;
  family: FamilyName;
  preset: string;
}

const ENGINE_CASES: Array<Omit<Case, 'family' | 'preset'> & { presets: Array<[FamilyName, string]> }> = [
  {
    engine: 'onnxruntime',
    mode: 'all',
    presets: [
      ['cnn', 'tiny'],
      ['cnn', 'resnet18'],
    ],
  },
  {
    engine: 'tfjs-wasm',
    mode: 'eager',
    presets: [
      ['cnn', 'tiny'],
      ['cnn', 'resnet18'],
    ],
  },
  {
    engine: 'tfjs-node',
    mode: 'eager',
    presets: [
      ['cnn', 'tiny'],
      ['cnn', 'resnet18'],
    ],
  },
  {
    engine: 'torch',
    mode: 'eager',
    presets: [
      ['cnn', 'tiny'],
      ['cnn', 'resnet18'],
    ],
  },
  {
    engine: 'tensorflow',
    mode: 'function',
    presets: [
      ['cnn', 'tiny'],
      ['cnn', 'resnet18'],
    ],
  },
  // The pure-JS backend takes seconds per resnet18 pass: tiny only.
  { engine: 'tfjs-cpu', mode: 'eager', presets: [['cnn', 'tiny']] },
];

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    blocks: { type: 'string', default: '24' },
    threads: { type: 'string', default: '1' },
    cases: { type: 'string' },
    suite: { type: 'boolean', default: false },
    out: { type: 'string', default: join(tmpdir(), `fwbench-overhead-${process.pid}`) },
    from: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const blockCount = Number(args.blocks);
const threads = Number(args.threads);
const out = resolve(args.out);
const wanted = args.cases?.split(',');
const root = packageRoot();
const cli = join(root, 'bin', 'fwbench.js');
if (!args.from) mkdirSync(out, { recursive: true });

const cases: Case[] = ENGINE_CASES.filter((e) => !wanted || wanted.includes(e.engine)).flatMap((e) =>
  e.presets.map(([family, preset]) => ({ engine: e.engine, mode: e.mode, family, preset })),
);
const batch = 1;
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Writes the model, weights and inputs the run uses with the real `fwbench export`. */
async function exportCase(c: Case): Promise<Omit<BareJob, 'samples' | 'warmupMs'> & { mode: string; nativeWeightsPath?: string }> {
  const base = join(out, `${c.family}-${c.preset}`);
  const files = { onnx: `${base}.onnx`, weights: `${base}.weights.safetensors`, inputs: `${base}.inputs-b${batch}.safetensors` };
  for (const [format, file] of Object.entries(files)) {
    await execa(process.execPath, [
      cli,
      'export',
      '--workload',
      c.family,
      '--preset',
      c.preset,
      '--format',
      format,
      '--batch-size',
      String(batch),
      '--out',
      file,
    ]);
  }
  const family = getFamily(c.family);
  const params = resolveParams(family, c.preset);
  const native = ENGINES[c.engine as EngineId].nativeWeights?.(family, params, materialize(family, params, 0, batch));
  return {
    engine: c.engine,
    mode: c.mode,
    family: c.family,
    params,
    ...(c.engine === 'onnxruntime' ? { onnxPath: files.onnx } : {}),
    weightsPath: files.weights,
    inputsPath: files.inputs,
    threads,
    ...(native ? { nativeWeightsPath: native } : {}),
  };
}

/** One `fwbench run` of the cell in one worker process; its reported median and sample count. */
async function harness(c: Case, dir: string): Promise<{ medianNs: number; n: number }> {
  const argv = [
    cli,
    'run',
    '--engines',
    c.engine,
    '--modes',
    c.mode,
    '--workloads',
    c.family,
    '--preset',
    c.preset,
    '--batch-sizes',
    String(batch),
    '--replicates',
    '1',
    '--threads',
    String(threads),
    '--out',
    dir,
  ];
  // fwbench refuses to run into a run's folder: start clean, and never read a stale run.json.
  rmSync(dir, { recursive: true, force: true });
  const r = await execa(process.execPath, argv, { reject: false });
  if (r.exitCode !== 0) throw new Error(`${c.engine} ${c.preset}: fwbench run exited ${r.exitCode}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  const run = RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
  const cell = run.cells[0];
  if (!cell?.stats || cell.status !== 'ok') throw new Error(`${c.engine} ${c.preset}: cell ${cell?.status ?? 'missing'}: ${cell?.reason ?? ''}`);
  return { medianNs: cell.stats.medianMs * 1e6, n: cell.stats.n };
}

/**
 * One bare process: the same model and inputs in a plain loop (or, with `blocks`, alternating with
 * the harness's loop). Started in its own session, as fwbench starts its workers: with the
 * kernel's autogroup scheduling a session is its own scheduling group.
 */
async function bareProcess(job: BareJob & { nativeWeightsPath?: string }): Promise<BareResult> {
  let command = process.execPath;
  let script = join(root, 'dist', 'bench', 'bare-loop.js');
  let env = threadEnv(threads);
  if (job.engine === 'torch' || job.engine === 'tensorflow') {
    const py = pythonInterpreter();
    if ('missing' in py) throw new Error(py.missing);
    [command, script, env] = [py.path, join(root, 'bench', 'bare_loop.py'), { ...env, PYTHONPATH: join(root, 'python-runners') }];
  }
  const r = await execa(command, [script, JSON.stringify(job)], { env, detached: true });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as BareResult;
}

async function bare(job: BareJob & { nativeWeightsPath?: string }): Promise<{ medianNs: number; n: number }> {
  const res = await bareProcess(job);
  return { medianNs: medianCi(res.samplesNs).medianNs, n: res.samplesNs.length };
}

const median = (xs: number[]): number => medianCi(xs).medianNs;

const fmt = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(3)} ms` : `${(ns / 1e3).toFixed(1)} µs`);
/** Coefficient of variation of `xs`, in % (sample standard deviation over the mean). */
const cvPct = (xs: number[]): number => (xs.length < 2 ? 0 : coefficientOfVariation(xs) * 100);
/**
 * The verdict of one case. Both designs pair each harness measurement with its bare neighbour
 * (alternating order), so the estimate of the harness's cost is the median of the paired
 * differences, with its 95 % order-statistic interval; a drift of the machine between pairs
 * (a block of a slow mode, a busy minute) then cancels instead of landing on one side's median.
 * The difference of the two sides' medians is shown beside it.
 */
const judged = (c: Pick<Case, 'engine' | 'mode' | 'family' | 'preset'>, harnessNs: number[], bareNs: number[]) => {
  const h = median(harnessNs);
  const b = median(bareNs);
  const tolerance = Math.max(2000, 0.005 * b);
  const paired = harnessNs.map((x, k) => ((x - bareNs[k]!) / bareNs[k]!) * 100);
  const pairedCi = medianCi(paired);
  const diffPct = pairedCi.medianNs;
  const diffNs = (diffPct / 100) * b;
  const pass = Math.abs(diffNs) <= tolerance;
  const verdict = pass ? 'yes' : pairedCi.loNs <= 0 && pairedCi.hiNs >= 0 ? 'no: not significant (interval includes 0)' : 'no';
  return {
    ...c,
    batch,
    harnessNs: h,
    bareNs: b,
    diffNs,
    diffPct,
    pairedLoPct: pairedCi.loNs,
    pairedHiPct: pairedCi.hiNs,
    mediansDiffPct: ((h - b) / b) * 100,
    toleranceNs: tolerance,
    pass,
    verdict,
    pairedPct: paired,
    // Spread of the bare side's medians between rounds (processes) or blocks: the noise floor.
    bareCvPct: cvPct(bareNs),
    roundsHarnessNs: harnessNs,
    roundsBareNs: bareNs,
  };
};
const signed = (x: number, digits: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
const table = (rs: Array<ReturnType<typeof judged>>, pairs: string, spread: string): string[] => [
  `| engine | workload/preset | batch | harness median | bare median | difference: median of paired differences [95 % interval] (${pairs}) | difference of the medians | ${spread} | pass (≤ max(2 µs, 0.5 %)) |`,
  '|---|---|---|---|---|---|---|---|---|',
  ...rs.map(
    (r) =>
      `| ${r.engine} ${r.mode} | ${r.family}/${r.preset} | ${r.batch} | ${fmt(r.harnessNs)} | ${fmt(r.bareNs)} | ${signed(r.diffNs / 1e3, 1)} µs (${signed(r.diffPct, 2)} % [${signed(r.pairedLoPct, 2)} … ${signed(r.pairedHiPct, 2)}], ${r.pairedPct.length}) | ${signed(r.mediansDiffPct, 2)} % | ${r.bareCvPct.toFixed(2)} % | ${r.verdict} |`,
  ),
];
const SEPARATE = ['rounds', 'bare CV between processes'] as const;
const SAME = ['block pairs', 'bare CV between blocks'] as const;

// --from: the tables of a saved overhead.json, judged by the current rules; nothing is measured.
if (args.from) {
  type Saved = { rows: Array<Parameters<typeof judged>[0] & { roundsHarnessNs: number[]; roundsBareNs: number[] }>; blockRows: Saved['rows'] };
  const saved = JSON.parse(readFileSync(args.from, 'utf8')) as Saved;
  const again = (rs: Saved['rows']) => rs.map((r) => judged(r, r.roundsHarnessNs, r.roundsBareNs));
  process.stdout.write(
    `${[`Separate processes (${args.from}):`, '', ...table(again(saved.rows), ...SEPARATE), '', 'Same process:', '', ...table(again(saved.blockRows), ...SAME)].join('\n')}\n`,
  );
  process.exit(0);
}

const startLoad = load();
process.stderr.write(`overhead: ${cases.length} cases x ${rounds} rounds, threads ${threads}, load ${startLoad}, out ${out}\n`);
const jobs = await Promise.all(cases.map(exportCase));
const perCase = cases.map(() => ({ harness: [] as number[], bare: [] as number[], n: 0 }));
for (let r = 0; r < rounds; r++) {
  for (const [i, c] of cases.entries()) {
    const acc = perCase[i]!;
    const runHarness = async (): Promise<void> => {
      const h = await harness(c, join(out, `run-${c.engine}-${c.preset}-r${r}`));
      acc.harness.push(h.medianNs);
      acc.n = h.n;
    };
    // The bare loop takes as many samples as the harness's latest process.
    const runBare = async (): Promise<void> => {
      acc.bare.push((await bare({ ...jobs[i]!, samples: Math.max(acc.n, 64), warmupMs: 1000 })).medianNs);
    };
    if (r % 2 === 0 || acc.n === 0) {
      await runHarness();
      await runBare();
    } else {
      await runBare();
      await runHarness();
    }
    process.stderr.write(
      `round ${r + 1} ${c.engine} ${c.family}/${c.preset}: harness ${(acc.harness.at(-1)! / 1e3).toFixed(1)} µs, bare ${(acc.bare.at(-1)! / 1e3).toFixed(1)} µs (n ${acc.n}, load ${load()})\n`,
    );
  }
}

const rows = rounds > 0 ? cases.map((c, i) => ({ ...judged(c, perCase[i]!.harness, perCase[i]!.bare), n: perCase[i]!.n })) : [];
const lines =
  rounds > 0
    ? [
        `Separate processes: threads ${threads}, ${rounds} rounds (harness and bare processes alternating), load average at start ${startLoad}, at end ${load()}.`,
        '',
        ...table(rows, ...SEPARATE),
      ]
    : [];

// Same process, alternating blocks: the harness's loop against the bare loop under the same machine state.
const blockRows: Array<ReturnType<typeof judged>> = [];
if (blockCount > 0) {
  const blockLoad = load();
  for (const [i, c] of cases.entries()) {
    const r = await bareProcess({ ...jobs[i]!, samples: 64, warmupMs: 1000, blocks: blockCount });
    blockRows.push(judged(c, r.harnessBlocksNs!, r.bareBlocksNs!));
    process.stderr.write(
      `blocks ${c.engine} ${c.family}/${c.preset}: harness ${fmt(blockRows.at(-1)!.harnessNs)}, bare ${fmt(blockRows.at(-1)!.bareNs)} (load ${load()})\n`,
    );
  }
  lines.push(
    '',
    `Same process, ${blockCount} harness blocks alternating with ${blockCount} bare blocks (each side: the median of its block medians), threads ${threads}, load average at start ${blockLoad}, at end ${load()}.`,
    '',
    ...table(blockRows, ...SAME),
  );
}

let suite: { wallS: number; cells: number; reached: number } | undefined;
if (args.suite) {
  const dir = join(out, 'default-suite');
  const t0 = performance.now();
  await execa(process.execPath, [cli, 'run', '--out', dir], { reject: false });
  const wallS = (performance.now() - t0) / 1000;
  const run = RunSchema.parse(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')));
  const reps = run.cells.flatMap((c) => c.replicates ?? []);
  suite = { wallS, cells: run.cells.length, reached: reps.filter((x) => x.stopReason === 'target-interval').length };
  lines.push(
    '',
    `Default suite (\`fwbench run\`, defaults): ${run.cells.length} cells x ${run.config.replicates ?? 1} replicates in ${wallS.toFixed(1)} s wall; ${suite.reached} of ${reps.length} worker processes stopped on the target interval (±${run.config.measure.targetInterval * 100} %). Load ${load()}.`,
  );
}
writeFileSync(join(out, 'overhead.json'), `${JSON.stringify({ threads, rounds, blocks: blockCount, load: startLoad, rows, blockRows, suite }, null, 1)}\n`);
process.stdout.write(`${lines.join('\n')}\n`);

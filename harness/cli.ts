import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { copyFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import si from 'systeminformation';
import { FAMILIES, FAMILY_NAMES, getFamily, InputError, parseSetText, resolveParams, setsForFamily } from '../workloads/index.js';
import { materialize } from '../workloads/materialize.js';
import { loadTensors } from '../workloads/safetensors.js';
import { detectHost } from './detect/host.js';
import { registerDiagnosticCommands } from './diagnostic-commands.js';
import { buildOnnxModel } from './engines/onnx/index.js';
import { checkModes, DEFAULT_ENGINES, ENGINES, getEngine, type ModeSelection } from './engines/registry.js';
import { DEVICES, ENGINE_IDS, type Device, type EngineId } from './engines/types.js';
import { DEFAULT_MEASURE, PRESET_REPLICATES, QUICK_MEASURE, RIGOROUS_MEASURE } from './measure.js';
import { progressHooks } from './progress.js';
import { registerReportCommands } from './report-commands.js';
import type { RunConfig } from './results.js';
import { probeEngines, runMatrix } from './run.js';
import { writeSchemas } from './schemas.js';
import { registerSetupCommands } from './setup/commands.js';
import { summaryTable } from './summary.js';
import { TOOL_VERSION } from './version.js';

/** Exit codes: 0 all cells ok or skipped; 1 some cell failed or parity-failed; 2 bad input; 3 internal error. */
export const EXIT = { ok: 0, cellsFailed: 1, badInput: 2, internal: 3 } as const;

const list = (what: string, valid: readonly string[]) => (text: string): string[] => {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new InvalidArgumentError(`empty ${what} list; valid ${what}s: ${valid.join(', ')}`);
  for (const i of items) if (!valid.includes(i)) throw new InvalidArgumentError(`unknown ${what} '${i}'; valid ${what}s: ${valid.join(', ')}`);
  return [...new Set(items)];
};
const positiveInt = (what: string) => (text: string): number => {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new InvalidArgumentError(`${what} must be a positive integer, got '${text}'`);
  return Number(text);
};
const nonNegative = (what: string) => (text: string): number => {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative number, got '${text}'`);
  return v;
};
const nonNegativeInt = (what: string) => (text: string): number => {
  if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError(`${what} must be a non-negative integer, got '${text}'`);
  return Number(text);
};
const modeList = (text: string): ModeSelection => {
  const items = [...new Set(text.split(',').map((s) => s.trim()).filter(Boolean))];
  if (items.length === 0) throw new InvalidArgumentError(`empty mode list; give mode names (see fwbench list) or 'all'`);
  return items.includes('all') && items.length === 1 ? 'all' : items;
};
const intList = (what: string) => (text: string): number[] => text.split(',').map((s) => positiveInt(what)(s.trim()));

function presetNames(): string[] {
  return [...new Set(Object.values(FAMILIES).flatMap((f) => Object.keys(f.presets)))];
}

async function defaultThreads(): Promise<number> {
  const cpu = await si.cpu();
  return Math.max(1, cpu.physicalCores || cpu.cores || 1);
}

function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = new Command('fwbench')
    .description('Cross-framework deep-learning benchmarks: identical models and weights on every engine, verified equal, then timed.')
    .version(TOOL_VERSION)
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (s, write) => write(`fwbench: ${s.replace(/^error: /, '')}`) });

  program
    .command('detect')
    .description('describe this host (CPU, SIMD, memory, NVIDIA GPUs, TPUs) and which engines can run here, with the reason and fix for those that cannot')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { json?: boolean }) => {
      const [host, engines] = await Promise.all([detectHost(), probeEngines([...ENGINE_IDS])]);
      if (opts.json) return printJson({ host, engines });
      const c = host.cpu;
      const lines = [
        `CPU      ${c.brand} (${c.manufacturer}), ${c.physicalCores} physical / ${c.logicalCores} logical cores, ${c.speedGHz} GHz`,
        `SIMD     ${c.simd.join(' ') || 'none of the DL-relevant flags'}`,
        `Memory   ${(host.memory.totalBytes / 2 ** 30).toFixed(1)} GiB`,
        `OS       ${host.os.distro} ${host.os.release} (${host.os.platform} ${host.os.arch}, kernel ${host.os.kernel}), Node ${host.node}`,
        `GPUs     ${host.gpus.gpus.length ? host.gpus.gpus.map((g) => `${g.name} ${(g.memoryBytes / 2 ** 30).toFixed(0)} GiB`).join(', ') + ` (driver ${host.gpus.driver}, CUDA ${host.gpus.cuda})` : `none (${host.gpus.reason})`}`,
        `TPU      ${host.tpu.present ? `${host.tpu.chips} chip(s): ${host.tpu.signs.join('; ')}` : 'none'}`,
        '',
        'Engines:',
        ...Object.entries(engines).map(([id, e]) =>
          e.available
            ? `  ${id.padEnd(14)} available    ${e.framework} ${e.version}, devices ${e.devices?.join(', ')}${Object.entries(e.details ?? {}).filter(([k]) => !k.endsWith('Fix')).map(([k, v]) => `\n  ${''.padEnd(14)}              ${k}: ${v}`).join('')}`
            : `  ${id.padEnd(14)} unavailable  ${e.reason}${e.fix ? `\n  ${''.padEnd(14)}              fix: ${e.fix}` : ''}`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program
    .command('list')
    .description('list workloads, their presets and parameters, and engines')
    .option('--json', 'print JSON on stdout')
    .action((opts: { json?: boolean }) => {
      const workloads = FAMILY_NAMES.map((n) => {
        const f = FAMILIES[n];
        return { name: n, description: f.description, params: f.params, presets: Object.fromEntries(Object.entries(f.presets).map(([p, v]) => [p, { params: v, flopsPerSample: f.flopsPerSample(v) }])) };
      });
      const engines = ENGINE_IDS.map((id) => {
        const e = ENGINES[id];
        return { id, framework: e.framework, language: e.language, devices: e.devices, modes: e.modes, description: e.description };
      });
      if (opts.json) return printJson({ workloads, engines });
      const out: string[] = ['Workloads (override any parameter with --set key=value):'];
      for (const w of workloads) {
        out.push(`  ${w.name}: ${w.description}`);
        for (const d of w.params) out.push(`    ${d.name.padEnd(9)} ${d.doc}${d.choices ? ` (${d.choices.join('|')})` : ''}`);
        for (const [p, v] of Object.entries(w.presets)) {
          out.push(`    preset ${p.padEnd(10)} ${Object.entries(v.params).map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : x}`).join(' ')}  (${(v.flopsPerSample / 1e9).toPrecision(3)} GFLOP/sample)`);
        }
      }
      out.push('', 'Engines:');
      for (const e of engines) out.push(`  ${e.id.padEnd(14)} ${e.description} [devices ${e.devices.join(',')}; modes ${e.modes.join(',')}]`);
      process.stdout.write(`${out.join('\n')}\n`);
    });

  program
    .command('run')
    .description('run the benchmark matrix (engines x workloads x batch sizes); each cell in its own process')
    .option('--engines <list>', `comma-separated engines (${ENGINE_IDS.join(', ')})`, list('engine', ENGINE_IDS), DEFAULT_ENGINES)
    .option('--workloads <list>', `comma-separated workloads (${FAMILY_NAMES.join(', ')})`, list('workload', FAMILY_NAMES), [...FAMILY_NAMES])
    .option('--modes <list>', "comma-separated execution modes (e.g. eager,compile), or 'all' for every mode of every engine; default: every mode of torch and tensorflow, the first mode of the others; an engine with none of the listed modes runs its first", modeList)
    .option('--preset <name>', `preset for every workload (${presetNames().join(', ')})`, 'tiny')
    .option('--batch-sizes <list>', 'comma-separated batch sizes', intList('batch size'), [1, 8])
    .option('--out <dir>', 'output folder for cells.jsonl and run.json', `results/run-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    .option('--set <key=value,...>', 'override workload parameters, e.g. seq=37,hidden=96,heads=3 (list values continue after commas: depths=1,1,2,1)', (v: string, prev: Array<[string, string]>) => [...prev, ...parseSetText(v)], [] as Array<[string, string]>)
    .addOption(new Option('--device <device>', 'device for every cell').choices([...DEVICES]).default('cpu'))
    .option('--threads <list>', 'intra-op threads, or a comma-separated list to sweep (each count is a matrix dimension: every cell runs at each); default: physical cores', intList('--threads'))
    .option('--seed <n>', 'seed of weights and inputs', nonNegativeInt('--seed'), 0)
    .option('--quick', `measurement preset: ±${QUICK_MEASURE.targetInterval * 100} % target, >= ${QUICK_MEASURE.minSamples} samples, ${QUICK_MEASURE.minTimeMs}-${QUICK_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.quick} process per cell`)
    .option('--rigorous', `measurement preset: ±${RIGOROUS_MEASURE.targetInterval * 100} % target, >= ${RIGOROUS_MEASURE.minSamples} samples (p99), ${RIGOROUS_MEASURE.minTimeMs}-${RIGOROUS_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.rigorous} processes per cell`)
    .option('--target-interval <pct>', `stop once the 95 % interval of the median is within ±PCT % of it (default ${DEFAULT_MEASURE.targetInterval * 100}; 0 = run to --max-time)`, nonNegative('--target-interval'))
    .option('--replicates <n>', `fresh worker processes per cell, interleaved across cells (default ${PRESET_REPLICATES.default})`, positiveInt('--replicates'))
    .option('--min-samples <n>', `timed loop: at least this many samples (default ${DEFAULT_MEASURE.minSamples}: p90 needs 64, p99 662)`, positiveInt('--min-samples'))
    .option('--min-time <ms>', `timed loop: at least this long (ms, default ${DEFAULT_MEASURE.minTimeMs})`, nonNegative('--min-time'))
    .option('--max-time <ms>', `timed loop: at most this long (ms, default ${DEFAULT_MEASURE.maxTimeMs})`, nonNegative('--max-time'))
    .option('--warmup-max-time <ms>', `warm-up: at most this long (ms, default ${DEFAULT_MEASURE.warmupMaxMs})`, nonNegative('--warmup-max-time'))
    .option('--timeout <s>', 'kill a cell\'s worker after this many seconds', positiveInt('--timeout'), 600)
    .option('--json', 'print run.json on stdout instead of the summary table')
    .action(async (o: { engines: string[]; modes?: ModeSelection; workloads: string[]; preset: string; batchSizes: number[]; out: string; set: Array<[string, string]>; device: Device; threads?: number[]; seed: number; quick?: boolean; rigorous?: boolean; targetInterval?: number; replicates?: number; minSamples?: number; minTime?: number; maxTime?: number; warmupMaxTime?: number; timeout: number; json?: boolean }) => {
      if (o.quick && o.rigorous) throw new InputError('--quick and --rigorous exclude each other');
      const measurePreset = o.quick ? 'quick' : o.rigorous ? 'rigorous' : 'default';
      const p = { quick: QUICK_MEASURE, default: DEFAULT_MEASURE, rigorous: RIGOROUS_MEASURE }[measurePreset];
      const minTimeMs = o.minTime ?? p.minTimeMs;
      const config: RunConfig = {
        engines: o.engines.map((e) => getEngine(e).id as EngineId),
        workloads: o.workloads.map((w) => getFamily(w).name),
        preset: o.preset,
        batchSizes: [...new Set(o.batchSizes)],
        ...(o.modes ? { modes: o.modes } : {}),
        sets: o.set,
        device: o.device,
        threads: o.threads ? [...new Set(o.threads)] : [await defaultThreads()],
        seed: o.seed,
        measure: {
          ...p,
          minSamples: o.minSamples ?? p.minSamples,
          minTimeMs,
          maxTimeMs: Math.max(o.maxTime ?? p.maxTimeMs, minTimeMs),
          warmupMaxMs: o.warmupMaxTime ?? p.warmupMaxMs,
          // A shorter --warmup-max-time also shortens the preset's minimum warm-up.
          warmupMinMs: Math.min(p.warmupMinMs ?? 0, o.warmupMaxTime ?? p.warmupMaxMs),
          targetInterval: o.targetInterval !== undefined ? o.targetInterval / 100 : p.targetInterval,
        },
        replicates: o.replicates ?? PRESET_REPLICATES[measurePreset],
        measurePreset,
        cellTimeoutMs: o.timeout * 1000,
      };
      // Validate modes and every workload's parameters before anything starts.
      checkModes(config.engines.map((e) => getEngine(e)), config.modes);
      const families = config.workloads.map((w) => getFamily(w));
      for (const f of families) resolveParams(f, config.preset, setsForFamily(f, config.sets, families));
      const outDir = resolve(o.out);
      const run = await runMatrix(config, outDir, ['fwbench', ...process.argv.slice(2)], progressHooks());
      if (o.json) printJson(run);
      else process.stdout.write(`${summaryTable(run)}Results: ${outDir}/run.json\n`);
      if (run.cells.some((c) => c.status === 'failed' || c.status === 'parity-failed')) process.exitCode = EXIT.cellsFailed;
    });

  program
    .command('export')
    .description('write the exact model, canonical weights or inputs a run uses, to reproduce a number outside fwbench')
    .requiredOption('--workload <name>', `workload (${FAMILY_NAMES.join(', ')})`)
    .option('--preset <name>', 'preset', 'tiny')
    .option('--set <key=value,...>', 'parameter overrides, as for run', (v: string, prev: Array<[string, string]>) => [...prev, ...parseSetText(v)], [] as Array<[string, string]>)
    .addOption(new Option('--format <format>', 'onnx (ONNX model, opset 17, symbolic batch), weights (canonical safetensors) or inputs (safetensors)').choices(['onnx', 'weights', 'inputs']).makeOptionMandatory())
    .option('--batch-size <n>', 'batch size of the inputs', positiveInt('--batch-size'), 1)
    .option('--seed <n>', 'seed of weights and inputs', nonNegativeInt('--seed'), 0)
    .requiredOption('--out <file>', 'output file')
    .action((o: { workload: string; preset: string; set: Array<[string, string]>; format: 'onnx' | 'weights' | 'inputs'; batchSize: number; seed: number; out: string }) => {
      const family = getFamily(o.workload);
      const params = resolveParams(family, o.preset, o.set);
      const m = materialize(family, params, o.seed, o.batchSize);
      if (o.format === 'weights') copyFileSync(m.weightsPath, o.out);
      else if (o.format === 'inputs') copyFileSync(m.inputsPath, o.out);
      else writeFileSync(o.out, buildOnnxModel(family.name, params, loadTensors(m.weightsPath).tensors));
      process.stderr.write(`fwbench: wrote ${o.format} of ${family.name}/${o.preset} (${JSON.stringify(params)}, seed ${o.seed}) to ${o.out}\n`);
    });

  program
    .command('schema')
    .description('write the JSON Schemas of run.json, cells.jsonl lines and the worker protocol')
    .option('--out <dir>', 'output folder', 'results/schema')
    .action((o: { out: string }) => {
      writeSchemas(o.out);
      process.stderr.write(`fwbench: wrote run.schema.json, cell.schema.json, protocol.schema.json to ${o.out}\n`);
    });

  registerSetupCommands(program);
  registerReportCommands(program);
  registerDiagnosticCommands(program);
  return program;
}

/** Entry point: parses argv, maps errors to one-line messages and exit codes. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return;
      process.exitCode = EXIT.badInput;
      return;
    }
    if (e instanceof InputError) {
      process.stderr.write(`fwbench: ${e.message}\n`);
      process.exitCode = EXIT.badInput;
      return;
    }
    process.stderr.write(`fwbench: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = EXIT.internal;
  }
}

import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { checkTensorSizes, FAMILIES, FAMILY_NAMES, getFamily, parseSetText, resolveParams, SIZES } from '../../workloads/index.js';
import { InputError } from '../errors.js';
import { materialize } from '../../workloads/materialize.js';
import { loadTensors } from '../../workloads/safetensors.js';
import { detectHost } from '../diagnostics/detect/host.js';
import { FLAG, PRESET_NAMES, PRESET_PER_FAMILY_EXAMPLE, runFlag, runSettings } from '../run/config.js';
import { registerDiagnosticCommands } from './diagnostics.js';
import { buildOnnxModel } from '../engines/onnx/index.js';
import { DEFAULT_ENGINES, ENGINES } from '../engines/registry.js';
import { DEVICES, ENGINE_IDS } from '../engines/types.js';
import { DEFAULT_MEASURE, PRESET_REPLICATES, QUICK_MEASURE, RIGOROUS_MEASURE } from '../worker/measure.js';
import { escapeControl } from '../io/escape.js';
import { fsCause } from '../io/files.js';
import { checkOutputDir, checkOutputFile, writeOutputFile } from '../io/output.js';
import { registerReportCommands } from './report.js';
import { runCommand } from './run.js';
import { probeEngines } from '../run/execute.js';
import { registerScheduleCommands } from './schedule.js';
import { writeSchemas } from '../results/json-schemas.js';
import { registerSetupCommands } from './setup.js';
import { TOOL_VERSION } from '../version.js';

/** Exit codes: 0 all cells ok or skipped; 1 some cell failed or parity-failed (compare: a regression); 2 bad input; 3 internal error; 130 / 143 run interrupted by SIGINT / SIGTERM (partial run kept, resumable). */
export const EXIT = { ok: 0, cellsFailed: 1, badInput: 2, internal: 3, SIGINT: 130, SIGTERM: 143 } as const;

function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = new Command('fwbench')
    .description('Cross-framework deep-learning benchmarks: identical models and weights on every engine, verified equal, then timed.')
    .version(TOOL_VERSION)
    .showSuggestionAfterError(true)
    .option('--debug', 'print the stack trace of an internal error')
    .configureOutput({
      outputError: (s, write) =>
        write(
          `fwbench: ${s
            .replace(/^error: /, '')
            .trimEnd()
            .split('\n')
            .map(escapeControl)
            .join('\n')}\n`,
        ),
    });

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
            ? `  ${id.padEnd(14)} available    ${e.framework} ${e.version}, devices ${e.devices?.join(', ')}${Object.entries(e.details ?? {})
                .filter(([k]) => !k.endsWith('Fix'))
                .map(([k, v]) => `\n  ${''.padEnd(14)}              ${k}: ${v}`)
                .join('')}`
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
        return {
          name: n,
          description: f.description,
          params: f.params,
          presets: Object.fromEntries(Object.entries(f.presets).map(([p, v]) => [p, { params: v, flopsPerSample: f.flopsPerSample(v) }])),
        };
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
          out.push(
            `    preset ${p.padEnd(10)} ${Object.entries(v.params)
              .map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : x}`)
              .join(' ')}  (${(v.flopsPerSample / 1e9).toPrecision(3)} GFLOP/sample)`,
          );
        }
      }
      out.push('', 'Engines:');
      for (const e of engines) out.push(`  ${e.id.padEnd(14)} ${e.description} [devices ${e.devices.join(',')}; modes ${e.modes.join(',')}]`);
      process.stdout.write(`${out.join('\n')}\n`);
    });

  program
    .command('run')
    .description('run the benchmark matrix (engines x workloads x batch sizes); each cell in its own process')
    .option(
      '--config <file>',
      'YAML or JSON file whose keys are these flags without dashes (engines: [onnxruntime], batch-sizes: [1, 8], target-interval: 1); flags given here override it',
    )
    .addOption(
      new Option('--engines <list>', `comma-separated engines (${ENGINE_IDS.join(', ')})`)
        .argParser(runFlag('engines'))
        .default(DEFAULT_ENGINES, `every engine available here but ${ENGINE_IDS.filter((id) => !DEFAULT_ENGINES.includes(id)).join(', ')}`),
    )
    .option('--workloads <list>', `comma-separated workloads (${FAMILY_NAMES.join(', ')})`, runFlag('workloads'), [...FAMILY_NAMES])
    .option(
      '--modes <list>',
      `comma-separated execution modes (e.g. eager,compile), or 'all' for every mode of every engine; default: ${ENGINE_IDS.filter(
        (id) => ENGINES[id].defaultModes,
      )
        .map((id) => `${ENGINES[id].defaultModes!.join(' and ')} of ${id}`)
        .join(', ')}, the first mode of the others; an engine with none of the listed modes runs its first`,
      runFlag('modes'),
    )
    .option(
      '--preset <presets>',
      `preset of every workload (${PRESET_NAMES.join(', ')}), or one per workload (${PRESET_PER_FAMILY_EXAMPLE}); workloads it does not name take their --size preset`,
      runFlag('preset'),
    )
    .option(
      '--size <class>',
      `size class of every workload's preset (${SIZES.join(', ')}); default small (${PRESET_PER_FAMILY_EXAMPLE}), tiny with --quick`,
      runFlag('size'),
    )
    .addOption(new Option('--batch-sizes <list>', 'comma-separated batch sizes').argParser(runFlag('batch-sizes')).default([1, 8], '1,8; 1 with --quick'))
    .option('--out <dir>', 'output folder for cells.jsonl and run.json', runFlag('out'), `results/run-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    .option(
      '--set <key=value,...>',
      'override workload parameters, e.g. seq=37,hidden=96,heads=3 (list values continue after commas: depths=1,1,2,1)',
      (v: string, prev: Array<[string, string]>) => [...prev, ...parseSetText(v)],
      [] as Array<[string, string]>,
    )
    .option('--device <device>', `device for every cell (${DEVICES.join(', ')})`, runFlag('device'), 'cpu')
    .option(
      '--threads <list>',
      'intra-op threads, or a comma-separated list to sweep (each count is a matrix dimension: every cell runs at each); default: physical cores, capped at the CPUs allowed',
      runFlag('threads'),
    )
    .option('--seed <n>', 'seed of weights and inputs', runFlag('seed'), 0)
    .option(
      '--quick',
      `smoke run: --size tiny and batch 1 unless given, measured with ±${QUICK_MEASURE.targetInterval * 100} % target, >= ${QUICK_MEASURE.minSamples} samples, ${QUICK_MEASURE.minTimeMs}-${QUICK_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.quick} process per cell`,
    )
    .option(
      '--rigorous',
      `measurement preset: ±${RIGOROUS_MEASURE.targetInterval * 100} % target, >= ${RIGOROUS_MEASURE.minSamples} samples (p99), ${RIGOROUS_MEASURE.minTimeMs}-${RIGOROUS_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.rigorous} processes per cell`,
    )
    .option(
      '--target-interval <pct>',
      `stop once the 95 % interval of the median is within ±PCT % of it (default ${DEFAULT_MEASURE.targetInterval * 100}; 0 = run to --max-time)`,
      runFlag('target-interval'),
    )
    .option('--replicates <n>', `fresh worker processes per cell, interleaved across cells (default ${PRESET_REPLICATES.default})`, runFlag('replicates'))
    .option(
      '--min-samples <n>',
      `timed loop: at least this many samples (default ${DEFAULT_MEASURE.minSamples}: p90 needs 64, p99 662)`,
      runFlag('min-samples'),
    )
    .option('--min-time <ms>', `timed loop: at least this long (ms, default ${DEFAULT_MEASURE.minTimeMs})`, runFlag('min-time'))
    .option('--max-time <ms>', `timed loop: at most this long (ms, default ${DEFAULT_MEASURE.maxTimeMs})`, runFlag('max-time'))
    .option('--warmup-max-time <ms>', `warm-up: at most this long (ms, default ${DEFAULT_MEASURE.warmupMaxMs})`, runFlag('warmup-max-time'))
    .option('--timeout <s>', "kill a cell's worker after this many seconds", runFlag('timeout'), 600)
    .option('--json', 'print run.json on stdout instead of the summary table')
    .option(
      '--resume <dir>',
      'continue the interrupted or killed run in DIR: run only its missing cells, with its configuration (flags given again must match it)',
    )
    .option(
      '--max-memory-mb <n>',
      "cap each cell worker's private memory (RLIMIT_DATA via prlimit; Node workers also get V8's heap limit); running past it is an out-of-memory cell, and a batch-size sweep stops there",
      runFlag('max-memory-mb'),
    )
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const { config, out, json, given } = await runSettings(o, (key) => cmd.getOptionValueSource(key) === 'cli');
      const resume = typeof o.resume === 'string' ? { resume: resolve(checkOutputDir(o.resume, '--resume')) } : {};
      const end = await runCommand(config, { out: resolve(out), ...resume, explicitOptions: given, json, command: ['fwbench', ...process.argv.slice(2)] });
      process.exitCode = EXIT[end];
    });

  program
    .command('export')
    .description('write the exact model, canonical weights or inputs a run uses, to reproduce a number outside fwbench')
    .requiredOption('--workload <name>', `workload (${FAMILY_NAMES.join(', ')})`, FLAG.workload)
    .option('--preset <name>', 'preset', FLAG.preset, 'tiny')
    .option(
      '--set <key=value,...>',
      'parameter overrides, as for run',
      (v: string, prev: Array<[string, string]>) => [...prev, ...parseSetText(v)],
      [] as Array<[string, string]>,
    )
    .addOption(
      new Option('--format <format>', 'onnx (ONNX model, opset 17, symbolic batch), weights (canonical safetensors) or inputs (safetensors)')
        .choices(['onnx', 'weights', 'inputs'])
        .makeOptionMandatory(),
    )
    .option('--batch-size <n>', 'batch size of the inputs', FLAG.positiveInt, 1)
    .option('--seed <n>', 'seed of weights and inputs', FLAG.nonNegativeInt, 0)
    .requiredOption('--out <file>', 'output file')
    .action(
      (o: {
        workload: string;
        preset: string;
        set: Array<[string, string]>;
        format: 'onnx' | 'weights' | 'inputs';
        batchSize: number;
        seed: number;
        out: string;
      }) => {
        const family = getFamily(o.workload);
        const params = resolveParams(family, o.preset, o.set);
        checkTensorSizes(family, params, o.batchSize);
        checkOutputFile(o.out, '--out');
        const m = materialize(family, params, o.seed, o.batchSize);
        if (o.format === 'weights') writeOutputFile(o.out, readFileSync(m.weightsPath));
        else if (o.format === 'inputs') writeOutputFile(o.out, readFileSync(m.inputsPath));
        else writeOutputFile(o.out, buildOnnxModel(family.name, params, loadTensors(m.weightsPath).tensors));
        process.stderr.write(`fwbench: wrote ${o.format} of ${family.name}/${o.preset} (${JSON.stringify(params)}, seed ${o.seed}) to ${o.out}\n`);
      },
    );

  program
    .command('schema')
    .description('write the JSON Schemas of run.json, cells.jsonl lines, the worker protocol and the run config file')
    .option('--out <dir>', 'output folder', 'results/schema')
    .action((o: { out: string }) => {
      writeSchemas(checkOutputDir(o.out, '--out'));
      process.stderr.write(`fwbench: wrote run.schema.json, cell.schema.json, protocol.schema.json, config.schema.json to ${o.out}\n`);
    });

  registerSetupCommands(program);
  registerReportCommands(program);
  registerDiagnosticCommands(program);
  registerScheduleCommands(program);
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
      // One line, whatever the message quotes (a parser's excerpt of a file may hold newlines).
      process.stderr.write(`fwbench: ${escapeControl(e.message.replace(/\s*\n\s*/g, ' '))}\n`);
      process.exitCode = EXIT.badInput;
      return;
    }
    // A file-system fault that escaped the file helpers is still the machine's, not fwbench's: one line.
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (code && /^E[A-Z]+$/.test(code) && e instanceof Error) {
      process.stderr.write(`fwbench: ${escapeControl(`${fsCause(e)}: ${e.message.replace(/^E[A-Z]+: /, '')}`)}\n`);
      process.exitCode = EXIT.badInput;
      return;
    }
    const debug = program.opts<{ debug?: boolean }>().debug === true;
    const text = e instanceof Error ? (debug ? (e.stack ?? e.message) : `${e.message} (fwbench --debug ... prints the stack trace)`) : String(e);
    process.stderr.write(`fwbench: internal error: ${text.split('\n').map(escapeControl).join('\n')}\n`);
    process.exitCode = EXIT.internal;
  }
}

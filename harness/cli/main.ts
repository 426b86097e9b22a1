import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { checkTensorSizes, FAMILIES, FAMILY_NAMES, familyTasks, getFamily, parseSetText, resolveParams } from '../../workloads/index.js';
import { InputError } from '../errors.js';
import { materialize } from '../../workloads/materialize.js';
import { loadTensors } from '../../workloads/safetensors.js';
import { detectHost } from '../diagnostics/detect/host.js';
import { FLAG } from '../run/config.js';
import { registerDiagnosticCommands } from './diagnostics.js';
import { buildOnnxModel } from '../engines/onnx/index.js';
import { ENGINES, modesToRun } from '../engines/registry.js';
import { ENGINE_IDS } from '../engines/types.js';
import { escapeControl } from '../io/escape.js';
import { fsCause } from '../io/files.js';
import { checkOutputDir, checkOutputFile, writeOutputFile } from '../io/output.js';
import { EXIT, newProgram } from './program.js';
import { registerReportCommands } from './report.js';
import { registerRunCommand } from './run.js';
import { probeEngines } from '../run/execute.js';
import { registerScheduleCommands } from './schedule.js';
import { writeSchemas } from '../results/json-schemas.js';
import { registerSetupCommands } from './setup.js';

function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Builds the commander program. */
export function buildProgram(): Command {
  const program = newProgram();

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
          tasks: familyTasks(f),
          params: f.params,
          presets: Object.fromEntries(Object.entries(f.presets).map(([p, v]) => [p, { params: v, flopsPerSample: f.flopsPerSample(v) }])),
        };
      });
      const engines = ENGINE_IDS.map((id) => {
        const e = ENGINES[id];
        // The modes that can generate, those a generation run gets by default, and why the others cannot.
        const cannot = e.unsupported?.generate ?? {};
        const generate = {
          modes: cannot['*'] ? [] : e.modes.filter((m) => !cannot[m]),
          defaultModes: cannot['*'] ? [] : modesToRun(e, undefined, 'generate'),
          unsupported: cannot,
        };
        return {
          id,
          framework: e.framework,
          language: e.language,
          devices: e.devices,
          modes: e.modes,
          generate,
          precisions: e.precisions,
          description: e.description,
        };
      });
      if (opts.json) return printJson({ workloads, engines });
      const out: string[] = ['Workloads (override any parameter with --set key=value):'];
      for (const w of workloads) {
        out.push(`  ${w.name}: ${w.description} [tasks ${w.tasks.join(',')}]`);
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
      for (const e of engines) {
        out.push(`  ${e.id.padEnd(14)} ${e.description} [devices ${e.devices.join(',')}; modes ${e.modes.join(',')}]`);
        out.push(
          `    ${'generate'.padEnd(5)} ${
            e.generate.modes.length ? `modes ${e.generate.modes.join(',')} (by default ${e.generate.defaultModes.join(',')})` : 'no'
          }${Object.entries(e.generate.unsupported)
            .map(([m, why]) => `; ${m === '*' ? '' : `${m}: `}no: ${why}`)
            .join('')}`,
        );
        for (const [p, way] of Object.entries(e.precisions))
          out.push(
            `    ${p.padEnd(5)} ${
              typeof way === 'string'
                ? `no: ${way}`
                : `${way.mechanism} [${way.devices.join(',')}${way.families ? `; ${way.families.join(',')}` : ''}${way.modes ? `; modes ${way.modes.join(',')}` : ''}]`
            }`,
          );
      }
      process.stdout.write(`${out.join('\n')}\n`);
    });

  registerRunCommand(program);

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
      new Option(
        '--format <format>',
        "onnx (ONNX model, opset 17, symbolic batch; the decoder's is its generation graph, tokens and past key/values in, next id, logits and presents out), weights (canonical safetensors) or inputs (safetensors)",
      )
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
    .description(
      'write the JSON Schemas of run.json, cells.jsonl lines, the worker protocol and the run config file, and manifest.json (engines, modes, devices, workload families, sizes: the lists the Python runner reads)',
    )
    .option('--out <dir>', 'output folder', 'results/schema')
    .action((o: { out: string }) => {
      const names = writeSchemas(checkOutputDir(o.out, '--out'));
      process.stderr.write(`fwbench: wrote ${names.join(', ')} to ${o.out}\n`);
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

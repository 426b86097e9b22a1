import { type Command, Option } from 'commander';
import { detectHost, hostFingerprint } from '../diagnostics/detect/host.js';
import { formatFindings, runDoctor } from '../diagnostics/doctor.js';
import { FLAG } from '../run/config.js';
import { defaultThreads } from '../run/flags.js';
import { DEVICES, ENGINE_IDS, type Device, type EngineId } from '../engines/types.js';
import { formatPeak, measurePeak } from '../diagnostics/peak.js';
import { probeEngines } from '../run/execute.js';

/** The engines `fwbench doctor` checks when --engines is not given (its help names them). */
const DOCTOR_ENGINES: EngineId[] = ['onnxruntime', 'tfjs-wasm', 'tfjs-cpu', 'torch', 'tensorflow'];

/** Registers `fwbench peak` and `fwbench doctor`. */
export function registerDiagnosticCommands(program: Command): void {
  program
    .command('peak')
    .description(
      "measure this machine's achievable FP32 GEMM rate (GFLOP/s) and memory copy bandwidth (GB/s) through each engine, each in its own worker; the best engine's figures are the machine's peak",
    )
    .option('--engines <list>', 'comma-separated engines (default: every engine available here)', FLAG.engines)
    .addOption(new Option('--device <device>', 'device').choices([...DEVICES]).default('cpu'))
    .option('--threads <n>', 'intra-op threads (default: physical cores, capped at the CPUs allowed)', FLAG.positiveInt)
    .option('--no-cache', 'measure again instead of reusing cached figures')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { engines?: EngineId[]; device: Device; threads?: number; cache: boolean; json?: boolean }) => {
      const ids = o.engines ?? [...ENGINE_IDS];
      const [host, statuses, threads] = await Promise.all([detectHost(), probeEngines(ids), o.threads ?? defaultThreads()]);
      const engines = ids.map((id) =>
        statuses[id]?.available
          ? { id, ...(statuses[id].version ? { version: statuses[id].version } : {}) }
          : { id, unavailable: statuses[id]?.reason ?? 'not probed' },
      );
      const onEngine = o.json
        ? undefined
        : (p: { engine: string; ok: boolean }): void => void process.stderr.write(`fwbench: peak ${p.engine} ${p.ok ? 'done' : 'skipped'}\n`);
      const r = await measurePeak({
        engines,
        device: o.device,
        threads,
        hostFingerprint: hostFingerprint(host),
        cache: o.cache,
        ...(onEngine ? { onEngine } : {}),
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ hostFingerprint: hostFingerprint(host), ...r }, null, 2)}\n`);
      else process.stdout.write(formatPeak(r));
      if (!r.peak) process.exitCode = 1;
    });

  program
    .command('doctor')
    .description(
      'detect what makes numbers wrong or slow here (reference BLAS, too few threads, CPU governor, busy machine, GPU asked but not used, GPU throttling, pure-JS TF.js), each with its fix',
    )
    .option('--engines <list>', `engines you intend to run (default: ${DOCTOR_ENGINES.join(',')})`, FLAG.engines)
    .addOption(new Option('--device <device>', 'device you intend to run on').choices([...DEVICES]).default('cpu'))
    .option('--threads <n>', 'threads you intend to pass to run (default: physical cores, capped at the CPUs allowed)', FLAG.positiveInt)
    .option('--python <path>', 'interpreter whose PyTorch the BLAS check loads (default: FWBENCH_PYTHON, else python-runners/.venv/bin/python, else python3)')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { engines?: EngineId[]; device: Device; threads?: number; python?: string; json?: boolean }) => {
      const host = await detectHost();
      const engines = o.engines ?? DOCTOR_ENGINES;
      const findings = await runDoctor({
        engines,
        threads: o.threads ?? (await defaultThreads()),
        device: o.device,
        host,
        ...(o.python ? { python: o.python } : {}),
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ findings }, null, 2)}\n`);
      else process.stdout.write(formatFindings(findings));
    });
}

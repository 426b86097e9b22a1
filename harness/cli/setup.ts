import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { InputError } from '../errors.js';
import { probeEngine } from '../run/execute.js';
import { SetupError, setupTfjsNode } from '../setup/tfjs-node.js';

/** `fwbench setup ...`: set-up steps for engines whose npm install cannot fetch what they need. */
export function registerSetupCommands(program: Command): void {
  program
    .command('setup')
    .description('set up an engine that npm cannot install here: tfjs-node (or --gpu: tfjs-node-gpu) built offline against the TensorFlow Python wheel')
    .argument('<what>', 'tfjs-node')
    .option('--gpu', 'build @tensorflow/tfjs-node-gpu instead (against a CUDA build of the TensorFlow wheel)')
    .option('--python <path>', 'interpreter whose TensorFlow to use (default: FWBENCH_PYTHON, python-runners/.venv, python3)')
    .option('--if-possible', 'exit 0 with a message when it cannot succeed here (for set-up scripts)')
    .action(async (what: string, o: { gpu?: boolean; python?: string; ifPossible?: boolean }) => {
      if (what !== 'tfjs-node') throw new InputError(`unknown set-up target '${what}'; valid targets: tfjs-node`);
      if (o.python?.includes('/') && !existsSync(o.python)) throw new InputError(`--python ${o.python}: no such file; give the path of a Python interpreter`);
      const log = (line: string): void => void process.stderr.write(`fwbench setup: ${line}\n`);
      const id = o.gpu ? 'tfjs-node-gpu' : 'tfjs-node';
      try {
        const { packageDir, origin } = await setupTfjsNode({ gpu: !!o.gpu, ...(o.python ? { python: o.python } : {}), log });
        log(`built ${packageDir} against TensorFlow ${origin.tensorflowVersion}; checking that it loads`);
        const status = await probeEngine(id);
        if (!status.available)
          throw new SetupError(
            `the addon was built but the engine does not load: ${status.reason}`,
            'see the reason; rerun with --python pointing at another TensorFlow',
          );
        log(
          `${id} available: TensorFlow.js ${status.version}, libtensorflow ${status.details?.libtensorflow ?? '?'} from the ${origin.distribution} ${origin.tensorflowVersion} wheel`,
        );
      } catch (e) {
        if (!(e instanceof SetupError)) throw e;
        process.stderr.write(`fwbench: setup ${id} failed: ${e.message}\nfwbench: fix: ${e.fix}\n`);
        process.exitCode = o.ifPossible ? 0 : 1;
      }
    });
}

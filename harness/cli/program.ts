import { Command } from 'commander';
import { escapeControl } from '../io/escape.js';
import { TOOL_VERSION } from '../version.js';

/**
 * The program's root: its name, version, global options and error format, before any command is
 * added. main.ts adds every command; `fwbench schedule` builds one with only `run`, to check the
 * run flags with run's own parser.
 */

/** Exit codes: 0 all cells ok or skipped; 1 some cell failed or parity-failed (compare: a regression); 2 bad input; 3 internal error; 130 / 143 run interrupted by SIGINT / SIGTERM (partial run kept, resumable). */
export const EXIT = { ok: 0, cellsFailed: 1, badInput: 2, internal: 3, SIGINT: 130, SIGTERM: 143 } as const;

/** The `fwbench` program without its commands. */
export function newProgram(): Command {
  return new Command('fwbench')
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
}

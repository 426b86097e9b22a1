import cliProgress from 'cli-progress';
import type { Cell } from '../results/schema.js';
import type { RunHooks } from './execute.js';
import type { PlannedCell } from './plan.js';

/** One short line about a finished cell. */
export function cellLine(c: Cell): string {
  if (c.status === 'ok' && c.stats)
    return `${c.status} median ${c.stats.medianMs.toFixed(3)} ms, ${c.throughput?.toFixed(1)} samples/s, relL2 ${c.parity?.relL2?.toExponential(1)}`;
  return `${c.status}: ${c.reason}`;
}

/**
 * Progress on stderr: a bar on a TTY, one plain line per cell otherwise. stdout stays clean for
 * the summary table or the JSON.
 */
export function progressHooks(stream: NodeJS.WriteStream = process.stderr): RunHooks {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream, format: '{bar} {value}/{total} cells | {cell} | {last}', hideCursor: true, clearOnComplete: false, barsize: 24 },
      cliProgress.Presets.shades_classic,
    );
    return {
      onNote: (t) => stream.write(`fwbench: ${t}\n`),
      onPlan: (cells: PlannedCell[]) => bar.start(cells.length, 0, { cell: '', last: '' }),
      onCellStart: (c) => bar.update({ cell: c.id }),
      onCellDone: (c) => {
        bar.increment({ last: c.status });
        if (bar.getProgress() >= 1) bar.stop();
      },
    };
  }
  let total = 0;
  let done = 0;
  return {
    onNote: (t) => stream.write(`fwbench: ${t}\n`),
    onPlan: (cells) => {
      total = cells.length;
      stream.write(`fwbench: ${total} cells\n`);
    },
    onCellDone: (c) => stream.write(`[${++done}/${total}] ${c.id} ${cellLine(c)}\n`),
  };
}

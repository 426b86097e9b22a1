import { execa } from 'execa';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs the real CLI (compiled, as `npx fwbench` does) and returns its exit code and output. */
export async function fwbench(args: string[], opts: { timeoutMs?: number } = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(process.execPath, ['bin/fwbench.js', ...args], { reject: false, timeout: opts.timeoutMs ?? 300_000, env: { FORCE_COLOR: '0' } });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh temporary folder. */
export const tempDir = (prefix = 'fwbench-'): string => mkdtempSync(join(tmpdir(), prefix));

/** Short measurement flags so end-to-end tests stay quick (the defaults are for real runs). */
export const QUICK = ['--min-samples', '5', '--min-time', '50', '--max-time', '2000', '--warmup-max-time', '200'];

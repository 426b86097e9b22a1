import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Builds dist/ (workers run compiled) and gives the suite its own weight cache. */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  process.env.FWBENCH_CACHE ??= mkdtempSync(join(tmpdir(), 'fwbench-test-cache-'));
}

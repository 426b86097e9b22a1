import { readFileSync } from 'node:fs';

/**
 * Peak resident set size of this process (VmHWM), read the same way by every worker. Not
 * ru_maxrss: on Linux a child inherits its parent's high-water mark through exec.
 */
export function peakHostBytes(statusPath = '/proc/self/status'): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(statusPath, 'utf8'));
  if (!m) throw new Error(`${statusPath} has no VmHWM line`);
  return Number(m[1]) * 1024;
}

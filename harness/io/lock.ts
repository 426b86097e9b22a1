import { linkSync, readFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { FileError, fsCause, makeFolder, writeFileAtomic } from './files.js';

/**
 * One writer per output folder: `run`, `run --resume`, `merge` and `collect` hold DIR/.fwbench.lock
 * (pid, host, command) while they write there; a second one is refused with who holds it. A lock
 * whose process is gone (same host, pid not alive: a kill -9, a crash) is stale and taken over
 * with a note; a lock from another host is never guessed about.
 */

/** Name of the lock file inside a folder fwbench writes. */
export const LOCK_FILE = '.fwbench.lock';

const LockSchema = z.object({ pid: z.number().int(), hostname: z.string(), command: z.array(z.string()), since: z.string() });

/** True when a process with this pid exists on this host (EPERM: it does, another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What the lock file at `path` says, or undefined when it is unreadable or not a lock. */
function readLock(path: string): z.infer<typeof LockSchema> | undefined {
  try {
    const parsed = LockSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock of `dir` (created if missing) for this process, or throws an InputError naming
 * the process that holds it. Returns the release function; the lock is also released when the
 * process exits (a second Ctrl-C, process.exit).
 */
export function lockFolder(dir: string, command: string[], note: (text: string) => void): () => void {
  makeFolder(dir);
  const path = join(dir, LOCK_FILE);
  const mine = { pid: process.pid, hostname: hostname(), command, since: new Date().toISOString() };
  // Written whole under a temporary name, then linked into place: link fails if a lock exists, so
  // two processes cannot both take it, and a reader never sees a half-written lock.
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}`);
  writeFileAtomic(tmp, `${JSON.stringify(mine)}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new FileError(`cannot create ${path}: ${fsCause(e)}`);
      }
      const held = readLock(path);
      const stale = held && held.hostname === mine.hostname && !pidAlive(held.pid);
      if (!stale || attempt > 0) {
        const who = held
          ? `fwbench pid ${held.pid} on ${held.hostname} (${held.command.join(' ')}, since ${held.since})`
          : `a process whose lock file is unreadable`;
        throw new InputError(
          `${dir} is in use by ${who}: one fwbench writes a folder at a time; wait for it to finish, or remove ${path} if that process is gone`,
        );
      }
      note(`${path}: taking over the lock of fwbench pid ${held.pid}, which is no longer running (killed or crashed)`);
      unlinkSync(path);
    }
  } finally {
    unlinkSync(tmp);
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock is removed: a lock another process took over after us is theirs.
    const now = readLock(path);
    if (now?.pid === mine.pid && now.hostname === mine.hostname) unlinkSync(path);
  };
  process.on('exit', release);
  return release;
}

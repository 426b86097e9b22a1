import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';

/**
 * Every file fwbench writes goes through here, so that a full disk, a read-only folder or a kill
 * mid-write never leaves a half file behind and never passes unnoticed: whole files are written to
 * a temporary file in the same folder, checked to be complete, fsynced and renamed over the
 * target; lines are appended with one checked write and fsynced, and cut back on failure. Every
 * failure is a FileError: one line naming the path and the cause (exit 2, like bad input: the
 * machine, not fwbench, has to change).
 */

/** A file could not be read, written or renamed: an environmental fault, reported as one line. */
export class FileError extends InputError {
  override name = 'FileError';
}

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'is a folder',
  ELOOP: 'is a symbolic link; fwbench does not write through links',
  EIO: 'input/output error',
  EFBIG: 'file too large',
};

/** `CODE (what it means)` for a file-system error, else its message. */
export function fsCause(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code) return CAUSES[code] ? `${code} (${CAUSES[code]})` : code;
  return e instanceof Error ? e.message : String(e);
}

/** Writes all of `bytes` at the file position; a write that makes no progress is an error, not a loop. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const n = writeSync(fd, bytes, at, bytes.length - at);
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    at += n;
  }
}

const asBytes = (chunk: string | Uint8Array): Uint8Array => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk);

/** The folder's entries are durable too (the rename itself); a file system that cannot fsync a folder is left as it is. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a folder; the file's own data is already synced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `data` (text, bytes, or chunks produced one at a time) as the whole content of `path`,
 * atomically: a reader sees the old file or the new one, never a part. A symbolic link at `path`
 * is refused, never followed; a device or pipe there (/dev/null, a FIFO) is written to directly.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const existing = (() => {
    try {
      return lstatSync(path);
    } catch {
      return undefined;
    }
  })();
  if (existing?.isSymbolicLink()) throw new FileError(`cannot write ${path}: ${CAUSES.ELOOP} (remove it or give another path)`);
  const chunks = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
  if (existing && !existing.isFile() && !existing.isDirectory()) {
    writeStream(path, chunks);
    return;
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    let expected = 0;
    for (const chunk of chunks) {
      const bytes = asBytes(chunk);
      writeAll(fd, bytes);
      expected += bytes.length;
    }
    fsyncSync(fd);
    // The size on disk is what we wrote: a file system that dropped data says so here.
    const size = fstatSync(fd).size;
    if (size !== expected) throw Object.assign(new Error(`wrote ${expected} bytes, file has ${size}`), { code: 'EIO' });
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // Never created (the open failed) or already renamed.
    }
    // A producer's own error (not the file system's) is passed on as it is.
    if (e instanceof FileError || !(e as NodeJS.ErrnoException | undefined)?.code) throw e;
    throw new FileError(`cannot write ${path}: ${fsCause(e)}`);
  }
  syncDir(dirname(path));
}

/** A device or pipe: written in place, errors as FileError. */
function writeStream(path: string, chunks: Iterable<string | Uint8Array>): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    for (const chunk of chunks) writeAll(fd, asBytes(chunk));
  } catch (e) {
    throw new FileError(`cannot write ${path}: ${fsCause(e)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Appends `text` to `path` (created if missing) and fsyncs it. On failure the file is cut back to
 * its size before, so it never ends in part of a line, and a FileError names the path and cause.
 */
export function appendDurable(path: string, text: string): void {
  let fd: number | undefined;
  let before: number | undefined;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    before = fstatSync(fd).size;
    writeAll(fd, Buffer.from(text));
    fsyncSync(fd);
  } catch (e) {
    if (fd !== undefined && before !== undefined) {
      try {
        ftruncateSync(fd, before);
      } catch {
        // The reader drops a partial last line anyway (ResultsStore.readCells).
      }
    }
    throw new FileError(`cannot write ${path}: ${fsCause(e)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Creates `dir` and its missing parents; a failure is a FileError with the real cause. */
export function makeFolder(dir: string, what = dir): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    // A recursive mkdir reports ENOENT for a parent it could not create (on a read-only file
    // system, say); creating the first missing folder alone tells the real cause.
    let first = dir;
    while (!existsSync(dirname(first)) && dirname(first) !== first) first = dirname(first);
    let cause: unknown = e;
    try {
      mkdirSync(first);
    } catch (inner) {
      cause = inner;
    }
    throw new FileError(`cannot create ${what}: ${fsCause(cause)}`);
  }
}

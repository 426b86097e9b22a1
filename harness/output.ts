import { existsSync, lstatSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';
import { InputError } from '../workloads/index.js';

/**
 * Where commands write, checked before any work starts, and how they write. Output paths come
 * only from the command line (never from the results files a command reads), and every file is
 * written through a temporary file in the same folder that is then renamed over the target: a
 * results folder from elsewhere that holds a symbolic link named like an output (report.html ->
 * ~/.bashrc) gets the link replaced, never its target written.
 */

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The nearest existing ancestor of a path (the path itself if it exists). */
function existingAncestor(path: string): string {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** Checks that `dir` is a folder or can be created as one (its nearest existing ancestor is a folder); returns it. */
export function checkOutputDir(dir: string, flag: string): string {
  if (dir.trim() === '') throw new InputError(`${flag}: empty path; give a folder`);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new InputError(`${flag} ${dir}: exists and is not a folder; give a folder`);
    return dir;
  }
  const ancestor = existingAncestor(dir);
  if (!statSync(ancestor).isDirectory()) throw new InputError(`${flag} ${dir}: cannot create a folder under ${ancestor}, which is a file`);
  return dir;
}

/** Checks that `file` can be written: not a folder, in an existing folder ('-' = stdout is always fine); returns it. */
export function checkOutputFile(file: string, flag: string): string {
  if (file === '-') return file;
  if (file.trim() === '') throw new InputError(`${flag}: empty path; give a file (or '-' for stdout)`);
  if (existsSync(file) && statSync(file).isDirectory()) throw new InputError(`${flag} ${file}: is a folder; give a file name (or '-' for stdout)`);
  const dir = dirname(resolve(file));
  if (!existsSync(dir)) throw new InputError(`${flag} ${file}: folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${flag} ${file}: ${dir} is not a folder`);
  return file;
}

/** Writes a file by temporary file + rename: atomic, and a symbolic link at `path` is replaced instead of followed. */
export function writeOutputFile(path: string, data: string | Uint8Array): void {
  const tmp = resolve(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data, { flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new InputError(`cannot write ${path}: ${describe(e)}`);
  }
}

/** `root/name`, refusing a name that would leave root (`..`, an absolute path, a path separator): names read from files never choose where we write. */
export function insideDir(root: string, name: string): string {
  const path = resolve(root, name);
  const rel = relative(resolve(root), path);
  if (name === '' || name.includes('/') || name.includes('\\') || name.includes('\0') || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new InputError(`refusing to write ${JSON.stringify(name)}: not a plain file name inside ${root}`);
  }
  return path;
}

/** True when `path` exists as anything, a dangling symbolic link included. */
export function pathTaken(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

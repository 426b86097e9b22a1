import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { writeFileAtomic } from './files.js';

/**
 * Where commands write, checked before any work starts, and how they write. Output paths come
 * only from the command line (never from the results files a command reads), and no file is
 * written through a symbolic link: a results folder from elsewhere that holds a link named like
 * an output (report.html -> ~/.bashrc) makes the command refuse, never write the link's target.
 * Devices and pipes (/dev/null, a FIFO) are written to as they are.
 */

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
  if (pathTaken(file) && lstatSync(file).isSymbolicLink())
    throw new InputError(`${flag} ${file}: is a symbolic link; fwbench does not write through links (remove it or give another path)`);
  if (existsSync(file) && statSync(file).isDirectory()) throw new InputError(`${flag} ${file}: is a folder; give a file name (or '-' for stdout)`);
  const dir = dirname(resolve(file));
  if (!existsSync(dir)) throw new InputError(`${flag} ${file}: folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${flag} ${file}: ${dir} is not a folder`);
  return file;
}

/** Writes a file atomically, refusing to follow a symbolic link in its place. */
export function writeOutputFile(path: string, data: string | Uint8Array): void {
  writeFileAtomic(path, data);
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

/**
 * `path` as a folder fwbench may delete inside: a real folder (or none yet), never a symbolic
 * link, which would make the deletion happen wherever it points.
 */
export function ownFolder(path: string): string {
  if (!pathTaken(path)) return path;
  const st = lstatSync(path);
  if (st.isSymbolicLink()) throw new InputError(`${path} is a symbolic link; fwbench deletes and writes only inside its own folders (remove the link)`);
  if (!st.isDirectory()) throw new InputError(`${path} is not a folder; fwbench expected its own folder there (remove it)`);
  return path;
}

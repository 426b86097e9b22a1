import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../harness/io/files.js';

/**
 * Cache entries check themselves: each file fwbench caches (canonical weights, inputs, reference
 * outputs, Keras-layout weights) has a `<file>.sha256` written beside it with the hash of its
 * content. An entry whose hash is missing, differs or cannot be read is never used: it is rebuilt
 * from the seed, with a note on stderr, so a damaged cache cannot pass for an engine's fault.
 */

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Why the entry at `path` cannot be used, or undefined when its content matches its recorded hash (or it does not exist yet: ''). */
function entryProblem(path: string): string | undefined {
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? '' : `unreadable (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
  let recorded: string;
  try {
    recorded = readFileSync(`${path}.sha256`, 'utf8').trim();
  } catch {
    return 'it has no content hash beside it';
  }
  return sha256(content) === recorded ? undefined : 'its content does not match its hash (damaged or edited)';
}

/**
 * `path`, holding a verified cache entry: used as it is when its hash matches, else (re)built with
 * `build` and its hash recorded. `note` hears about an entry that had to be rebuilt.
 */
export function cachedFile(path: string, build: (path: string) => void, note?: (text: string) => void): string {
  if (cacheEntryOk(path, note)) return path;
  build(path);
  recordCacheEntry(path);
  return path;
}

/** True when the entry at `path` exists and matches its hash; a damaged one is reported through `note` (it is then to be rebuilt). */
export function cacheEntryOk(path: string, note: (text: string) => void = (t) => process.stderr.write(`fwbench: ${t}\n`)): boolean {
  const problem = entryProblem(path);
  if (problem && problem !== '') note(`cache file ${path}: ${problem}; rebuilding it from the seed`);
  return problem === undefined;
}

/** Records the hash of the entry just written at `path`. */
export function recordCacheEntry(path: string): void {
  writeFileAtomic(`${path}.sha256`, `${sha256(readFileSync(path))}\n`);
}

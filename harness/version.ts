import { readFileSync } from 'node:fs';

/** fwbench's version, from package.json. */
export const TOOL_VERSION: string = (
  JSON.parse(readFileSync(new URL(import.meta.url.endsWith('.ts') ? '../package.json' : '../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

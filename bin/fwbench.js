#!/usr/bin/env node
// fwbench runs from the compiled output; `npm ci` builds it (the package's prepare script).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/harness/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("fwbench: not built yet: run 'npm ci' (or 'npm run build') in the fwbench folder\n");
  process.exit(3);
}
const { main } = await import(entry.href);
await main(process.argv);

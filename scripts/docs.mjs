// `npm run docs`: writes the generated run flags reference into docs/cli.md (from dist/, built first).
import { readFileSync, writeFileSync } from 'node:fs';
import { withRunFlagsReference } from '../dist/harness/run/flags-doc.js';

const page = 'docs/cli.md';
writeFileSync(page, withRunFlagsReference(readFileSync(page, 'utf8')));

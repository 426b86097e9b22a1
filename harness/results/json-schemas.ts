import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { z } from 'zod';
import { RunConfigFileSchema } from '../run/config.js';
import { FromWorkerSchema, ToWorkerSchema } from '../worker/protocol.js';
import { identityManifest } from './manifest.js';
import { CellLineSchema, RunSchema } from './schema.js';

/**
 * The published JSON Schemas, generated from the zod definitions (the single source of truth):
 * results/schema/run.schema.json, cell.schema.json (one line of cells.jsonl) and
 * protocol.schema.json (worker messages, which the Python runner validates against) and
 * config.schema.json (the `fwbench run --config` file, for editors and CI linters).
 */
export function publishedSchemas(): Record<string, unknown> {
  const gen = (s: z.ZodType, title: string) => ({ title, ...z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) });
  return {
    'run.schema.json': gen(RunSchema, 'fwbench run.json'),
    'cell.schema.json': gen(CellLineSchema, 'fwbench cells.jsonl line'),
    'protocol.schema.json': {
      title: 'fwbench worker protocol (line-delimited JSON on fd 3)',
      $defs: { toWorker: z.toJSONSchema(ToWorkerSchema, { io: 'input' }), fromWorker: z.toJSONSchema(FromWorkerSchema, { io: 'input' }) },
    },
    'config.schema.json': gen(RunConfigFileSchema, 'fwbench run --config file (YAML or JSON); keys are the run flags without their dashes'),
  };
}

/** Everything `fwbench schema` writes, by file name: the JSON Schemas and the identity manifest (manifest.ts). */
export function publishedFiles(): Record<string, unknown> {
  return { ...publishedSchemas(), 'manifest.json': identityManifest() };
}

/** Writes the schemas and the manifest into a folder (default results/schema); returns the file names. */
export function writeSchemas(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files = publishedFiles();
  for (const [name, content] of Object.entries(files)) writeFileAtomic(`${dir}/${name}`, `${JSON.stringify(content, null, 2)}\n`);
  return Object.keys(files);
}

import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../io/files.js';
import { z } from 'zod';
import { RunConfigFileSchema } from '../run/config.js';
import { FromWorkerSchema, ToWorkerSchema } from '../worker/protocol.js';
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
    'config.schema.json': gen(RunConfigFileSchema, 'fwbench run --config file (YAML or JSON); keys are the run flags without their dashes'),
    'protocol.schema.json': {
      title: 'fwbench worker protocol (line-delimited JSON on fd 3)',
      $defs: { toWorker: z.toJSONSchema(ToWorkerSchema, { io: 'input' }), fromWorker: z.toJSONSchema(FromWorkerSchema, { io: 'input' }) },
    },
  };
}

/** Writes the schemas into a folder (default results/schema). */
export function writeSchemas(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, schema] of Object.entries(publishedSchemas())) writeFileAtomic(`${dir}/${name}`, `${JSON.stringify(schema, null, 2)}\n`);
}

import { Command, CommanderError, type Command as CommandType } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildProgram } from '../harness/cli/main.js';
import { InputError } from '../harness/errors.js';
import { RunConfigSchema, type RunConfig } from '../harness/results/schema.js';
import { readConfigFile, runSettings, type RunSettings } from '../harness/run/config.js';
import {
  asNumber,
  configFileSchema,
  defineRunFlag,
  PositiveInt,
  RUN_FLAGS,
  runConfigSchema,
  runConfigShape,
  runOptions,
  type FlagResults,
  type RunFlagTable,
} from '../harness/run/flags.js';
import { runFlagsReference, withRunFlagsReference } from '../harness/run/flags-doc.js';
import { configDifferences } from '../harness/run/resume.js';
import { tempDir } from './helpers.js';

/**
 * The flags table (harness/run/flags.ts) is the one place a run flag is declared: a flag added to
 * it reaches the command line, the config file's schema, run.json's config and the resume check,
 * and the CLI reference in docs/cli.md is generated from it.
 */

const dir = tempDir('fwbench-run-flags-');

/** A flag that is not in RUN_FLAGS: untimed runs before the warm-up, with a run.json field of its own. */
const WARMUP_RUNS = defineRunFlag({
  arg: '<n>',
  help: 'untimed runs of each worker before its warm-up',
  default: { value: 2 },
  file: { schema: PositiveInt, fromText: asNumber, doc: 'untimed runs of each worker before its warm-up' },
  results: { field: 'warmupRuns', stored: z.number().int().min(1), from: (v) => v },
});
/** A flag that changes a shared field (the measure settings) with other flags. */
const SAMPLES_FLOOR = defineRunFlag({
  arg: '<n>',
  help: 'a floor of the timed samples',
  file: { schema: PositiveInt, fromText: asNumber, doc: 'a floor of the timed samples' },
  results: { sets: ['measure.minSamples'] },
});
/** A flag that changes no result. */
const COLOR = defineRunFlag({
  help: 'colour the summary table',
  file: { schema: z.boolean(), doc: 'colour the summary table' },
  results: { none: 'how the run is printed' },
});
const TABLE = { ...RUN_FLAGS, 'warmup-runs': WARMUP_RUNS, 'samples-floor': SAMPLES_FLOOR, color: COLOR } satisfies RunFlagTable;

/** A cheap valid run: nothing starts, runSettings only builds and checks the configuration. */
const SMALL = ['--engines', 'onnxruntime', '--workloads', 'rnn', '--quick', '--threads', '1'];

/** `fwbench run`'s command as a table makes it, with the run action replaced by runSettings. */
function runCommandOf(table: RunFlagTable): { command: CommandType; settings: () => RunSettings | undefined } {
  let got: RunSettings | undefined;
  const command = new Command('run').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  for (const option of runOptions(table)) command.addOption(option);
  command.action(async (o: Record<string, unknown>, cmd: CommandType) => {
    got = await runSettings(o, (key) => cmd.getOptionValueSource(key) === 'cli', table);
  });
  return { command, settings: () => got };
}

async function settingsOf(table: RunFlagTable, args: string[]): Promise<RunSettings> {
  const { command, settings } = runCommandOf(table);
  await command.parseAsync(args, { from: 'user' });
  return settings()!;
}

const own = (config: RunConfig): Record<string, unknown> => config as Record<string, unknown>;

describe('a flag added to the table', () => {
  it('is an option of the command line, with its help, default and value rule', async () => {
    const { command } = runCommandOf(TABLE);
    expect(command.options.map((o) => o.long)).toEqual([...Object.keys(RUN_FLAGS), 'warmup-runs', 'samples-floor', 'color'].map((n) => `--${n}`));
    expect(command.helpInformation()).toMatch(/--warmup-runs <n>\s+untimed runs of each worker before its warm-up\s+\(default: 2\)/);
    expect(own((await settingsOf(TABLE, [...SMALL, '--warmup-runs', '3'])).config).warmupRuns).toBe(3);
    expect(own((await settingsOf(TABLE, SMALL)).config).warmupRuns).toBe(2);
    const bad = await settingsOf(TABLE, [...SMALL, '--warmup-runs', '0']).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(CommanderError);
    expect((bad as Error).message).toBe("error: option '--warmup-runs <n>' argument '0' is invalid. must be a positive integer, got 0");
    // Not in the real program, which is made from RUN_FLAGS alone.
    const real = buildProgram().commands.find((c) => c.name() === 'run')!;
    expect(real.options.map((o) => o.long)).not.toContain('--warmup-runs');
  });

  it('is a key of the config file, in its JSON Schema and judged by its rule', async () => {
    const schema = z.toJSONSchema(configFileSchema(TABLE), { io: 'input' }) as { properties: Record<string, { description?: string; type?: string }> };
    expect(schema.properties['warmup-runs']).toMatchObject({ type: 'integer', description: 'untimed runs of each worker before its warm-up' });
    expect(schema.properties.color).toMatchObject({ type: 'boolean' });
    const path = join(dir, 'warmup.yaml');
    writeFileSync(path, 'warmup-runs: 5\nworkloads: [rnn]\n');
    expect(own((await settingsOf(TABLE, [...SMALL, '--config', path])).config).warmupRuns).toBe(5);
    // The command line overrides the file, as for every flag.
    expect(own((await settingsOf(TABLE, [...SMALL, '--config', path, '--warmup-runs', '4'])).config).warmupRuns).toBe(4);
    writeFileSync(path, 'warmup-runs: 0\n');
    expect(() => readConfigFile(path, TABLE)).toThrow(new InputError(`${path}: warmup-runs: must be a positive integer, got 0`));
    // The real config file has no such key.
    writeFileSync(path, 'warmup-runs: 5\n');
    expect(() => readConfigFile(path)).toThrow(/unknown key 'warmup-runs'/);
  });

  it("is a field of run.json's config, in its schema and in the order after the others", async () => {
    const { config } = await settingsOf(TABLE, [...SMALL, '--warmup-runs', '3']);
    const schema = runConfigSchema(TABLE);
    expect(schema.parse(config)).toMatchObject({ warmupRuns: 3 });
    expect(Object.keys(schema.shape).at(-1)).toBe('warmupRuns');
    expect((z.toJSONSchema(schema, { io: 'input' }) as { required: string[] }).required).toContain('warmupRuns');
    expect(Object.keys(config)).toEqual(Object.keys(schema.shape).filter((k) => k in config));
    // A flag with no field of its own adds none; the real schema, made from RUN_FLAGS, drops the new one.
    expect(Object.keys(schema.shape).filter((k) => !(k in RunConfigSchema.shape))).toEqual(['warmupRuns']);
    expect(RunConfigSchema.parse(config)).not.toHaveProperty('warmupRuns');
  });

  it('is checked on resume by the fields its entry names, and only a flag that changes no result may differ', async () => {
    const stored = (await settingsOf(TABLE, [...SMALL, '--warmup-runs', '3'])).config;
    const given = await settingsOf(TABLE, [...SMALL, '--warmup-runs', '4', '--color']);
    expect(given.given).toEqual(['engines', 'workloads', 'threads', 'quick', 'warmupRuns', 'color']);
    expect(configDifferences(stored, given.config, given.given, TABLE)).toEqual(['--warmup-runs (warmupRuns): the run has 3, this command gives 4']);
    const floor = { ...given.config, measure: { ...given.config.measure, minSamples: 99 } };
    expect(configDifferences(stored, floor, ['samplesFloor', 'color'], TABLE)).toEqual([
      `--samples-floor (measure.minSamples): the run has ${stored.measure.minSamples}, this command gives 99`,
    ]);
    // A flag the table does not have is no flag to skip: it is refused.
    expect(() => configDifferences(stored, given.config, ['warmupRuns'])).toThrow("'warmupRuns' is not a run flag");
  });

  it('is a row of the CLI reference', () => {
    expect(runFlagsReference(TABLE).split('\n')).toContain(
      '| `--warmup-runs <n>` | `warmup-runs` | 2 | `warmupRuns` | untimed runs of each worker before its warm-up |',
    );
    expect(runFlagsReference(TABLE).split('\n')).toContain('| `--color` | `color` |  | free: how the run is printed | colour the summary table |');
  });
});

describe('the flags table', () => {
  it('refuses two flags with one run.json field', () => {
    const twice = {
      ...RUN_FLAGS,
      'seed-again': defineRunFlag({ arg: '<n>', help: 'h', results: { field: 'seed', stored: z.number(), from: (v: unknown) => v } }),
    };
    expect(() => runConfigShape(twice)).toThrow("run flag --seed-again: run.json config field 'seed' is already another's");
  });

  it('says of every flag whether it changes results, by type: one that does names the fields a resume compares', () => {
    // Each of these is a compile error (npm run typecheck checks that it stays one).
    // @ts-expect-error a flag must say what it does to the results
    const nothing: FlagResults = {};
    // @ts-expect-error a flag that changes results names at least one field
    const noFields: FlagResults = { sets: [] };
    // @ts-expect-error only run.json's shared fields can be set
    const unknownField: FlagResults = { sets: ['measure.samples'] };
    // @ts-expect-error a field of its own comes with the rule that fills it
    const noRule: FlagResults = { field: 'x', stored: z.number() };
    expect([nothing, noFields, unknownField, noRule]).toHaveLength(4);
    for (const [name, f] of Object.entries(RUN_FLAGS)) {
      const r: FlagResults = f.results;
      const fields = 'field' in r ? [r.field] : 'sets' in r ? [...r.sets] : [];
      expect(fields.length > 0 || ('none' in r && r.none.length > 0), name).toBe(true);
    }
  });

  it('docs/cli.md carries the current run flags reference (npm run docs writes it)', () => {
    const page = readFileSync('docs/cli.md', 'utf8');
    expect(page).toBe(withRunFlagsReference(page));
  });
});

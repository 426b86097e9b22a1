import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { buildProgram } from '../harness/cli/main.js';
import { readConfigFile, runSettings, type RunSettings } from '../harness/run/config.js';
import { FLAG_MAX, RUN_FLAG_NAMES, runFlag, type RunFlag } from '../harness/run/flags.js';
import { ENGINES } from '../harness/engines/registry.js';
import { DEVICES, ENGINE_IDS } from '../harness/engines/types.js';
import { FAMILIES, FAMILY_NAMES, familyTasks, SIZES } from '../workloads/index.js';
import { InputError } from '../harness/errors.js';
import { tempDir } from './helpers.js';

/**
 * Property tests of the config file: any valid config, written as YAML or JSON, gives the same
 * run configuration as the same values given as flags; flags override the file key by key; any
 * invalid value of any key is refused with a message naming the file and the key, and the same
 * value as a flag is refused naming the flag. The command line is parsed in-process by the real
 * commander program, with only the run action replaced so that nothing runs.
 */

type Config = Partial<Record<RunFlag, unknown>>;

const dir = tempDir('fwbench-config-prop-');
/** The published schema (results/schema/config.schema.json), compiled. */
const publishedSchema = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync('results/schema/config.schema.json', 'utf8')) as object);
let fileCount = 0;

/** Parses `fwbench run ARGS` and returns what the run action would run. */
async function settingsFrom(args: string[]): Promise<RunSettings> {
  const program = buildProgram();
  program.exitOverride();
  for (const c of program.commands) c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  let got: RunSettings | undefined;
  program.commands
    .find((c) => c.name() === 'run')!
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      got = await runSettings(o, (key) => cmd.getOptionValueSource(key) === 'cli');
    });
  await program.parseAsync(['run', ...args], { from: 'user' });
  return got!;
}

/** The flags that say what a config says. */
function toFlags(cfg: Config): string[] {
  const args: string[] = [];
  for (const [key, v] of Object.entries(cfg)) {
    if (v === undefined || v === false) continue;
    if (v === true) args.push(`--${key}`);
    else if ((key === 'set' || key === 'preset') && typeof v === 'object')
      args.push(
        `--${key}`,
        Object.entries(v as Record<string, unknown>)
          .map(([k, x]) => `${k}=${Array.isArray(x) ? x.join(',') : String(x)}`)
          .join(','),
      );
    else args.push(`--${key}`, Array.isArray(v) ? v.join(',') : String(v));
  }
  return args;
}

/** Writes a config as YAML or JSON and returns its path. */
function writeConfig(cfg: Config, format: 'yaml' | 'json'): string {
  const path = join(dir, `c${fileCount++}.${format}`);
  writeFileSync(path, format === 'json' ? JSON.stringify(cfg) : stringify(cfg));
  return path;
}

const posInt = fc.integer({ min: 1, max: 1_000_000 });
const nonNegative = fc.double({ min: 0, max: 1e6, noNaN: true }).map((v) => v + 0);
const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);

/** Valid configs: any subset of keys, each with a valid value (presets, modes and parameters consistent with the chosen engines and workloads). */
const validConfig = (opts: { switches: fc.Arbitrary<boolean> }): fc.Arbitrary<Config> =>
  fc
    .record(
      {
        engines: fc.uniqueArray(fc.constantFrom(...ENGINE_IDS), { minLength: 1 }),
        workloads: fc.uniqueArray(fc.constantFrom(...FAMILY_NAMES), { minLength: 1 }),
        'batch-sizes': fc.array(fc.integer({ min: 1, max: 512 }), { minLength: 1, maxLength: 5 }),
        out: word.map((w) => join(dir, w)),
        device: fc.constantFrom(...DEVICES),
        threads: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.tuple(fc.integer({ min: 1, max: 64 }))),
        seed: fc.integer({ min: 0, max: 2 ** 31 }),
        preset: fc.constantFrom('one', 'per-workload', 'size'),
        size: fc.constantFrom(...SIZES),
        modes: fc.boolean(),
        set: fc.oneof(
          fc.record({ classes: fc.integer({ min: 2, max: 50 }) }),
          fc.integer({ min: 2, max: 50 }).map((n) => `classes=${n}`),
        ),
        measurePreset: fc.constantFrom('quick', 'rigorous', 'none'),
        'target-interval': nonNegative,
        replicates: fc.integer({ min: 1, max: 9 }),
        'rerun-contended': fc.integer({ min: 0, max: 5 }),
        'min-samples': posInt,
        'min-time': nonNegative,
        'max-time': nonNegative,
        'warmup-max-time': nonNegative,
        timeout: fc.integer({ min: 1, max: FLAG_MAX.timeoutS }),
        'max-memory-mb': posInt,
        json: opts.switches,
        switch: opts.switches,
      },
      { requiredKeys: [] },
    )
    .chain((r) => {
      const engines = (r.engines ?? ['onnxruntime', 'tfjs-wasm', 'tfjs-cpu']) as Array<keyof typeof ENGINES>;
      // Without --workloads a run does every family of its tasks (here the default, inference).
      const workloads = r.workloads ?? FAMILY_NAMES.filter((f) => familyTasks(FAMILIES[f]).includes('inference'));
      const presets = Object.keys(FAMILIES[workloads[0]!].presets).filter((p) => workloads.every((w) => p in FAMILIES[w].presets));
      const modes = [...new Set(engines.flatMap((e) => ENGINES[e].modes))];
      // Some workloads named with a preset of their own; the rest take the size's.
      const perWorkload = fc.record(Object.fromEntries(workloads.map((w) => [w, fc.constantFrom(...Object.keys(FAMILIES[w].presets))])), { requiredKeys: [] });
      return fc
        .record({
          preset: fc.constantFrom(...presets),
          perWorkload,
          modes: fc.oneof(fc.constant('all'), fc.uniqueArray(fc.constantFrom(...modes), { minLength: 1 })),
        })
        .map((dep) => {
          const { measurePreset, switch: on, preset, size, modes: withModes, ...rest } = r;
          const cfg: Config = { ...rest };
          // Both timed-loop bounds given must not cross (a crossing pair is refused: see the bad-input corpus).
          if (typeof cfg['min-time'] === 'number' && typeof cfg['max-time'] === 'number' && cfg['min-time'] > cfg['max-time'])
            [cfg['min-time'], cfg['max-time']] = [cfg['max-time'], cfg['min-time']];
          // One preset for every workload leaves no workload to a size: the two are refused together.
          if (preset === 'one') cfg.preset = dep.preset;
          else if (size !== undefined) cfg.size = size;
          if (preset === 'per-workload' && Object.keys(dep.perWorkload).length > 0) cfg.preset = dep.perWorkload;
          if (withModes) cfg.modes = dep.modes;
          // The decoder has no classes: a set only the chosen workloads do not know is refused (see the bad-input corpus).
          if (!workloads.some((w) => FAMILIES[w].params.some((d) => d.name === 'classes'))) delete cfg.set;
          if (measurePreset === 'quick' || measurePreset === 'rigorous') cfg[measurePreset] = on ?? true;
          return cfg;
        });
    });

/** What a run compares: the configuration, the output form, and the folder when one was given. */
const comparable = (s: RunSettings, cfg: Config): unknown => ({ config: s.config, json: s.json, ...(cfg.out !== undefined ? { out: s.out } : {}) });

describe('config file properties (fast-check)', () => {
  it('a valid config as YAML or JSON gives the same run configuration as the same values as flags', async () => {
    await fc.assert(
      fc.asyncProperty(validConfig({ switches: fc.boolean() }), fc.constantFrom('yaml' as const, 'json' as const), async (cfg, format) => {
        expect(publishedSchema(cfg), JSON.stringify(publishedSchema.errors)).toBe(true);
        const fromFile = await settingsFrom(['--config', writeConfig(cfg, format)]);
        const fromFlags = await settingsFrom(toFlags(cfg));
        expect(comparable(fromFile, cfg)).toEqual(comparable(fromFlags, cfg));
      }),
      { numRuns: 150 },
    );
  });

  it("flags override the file key by key (--quick / --rigorous replace the file's measurement preset)", async () => {
    await fc.assert(
      fc.asyncProperty(validConfig({ switches: fc.boolean() }), validConfig({ switches: fc.constant(true) }), async (file, cli) => {
        // Engines and workloads decide which presets, modes and parameters are valid; keep the file's
        // dependent values only where the command line does not change what they depend on.
        const merged: Config = { ...file, ...cli };
        if (cli.quick || cli.rigorous) {
          delete merged.quick;
          delete merged.rigorous;
          Object.assign(merged, cli.quick ? { quick: true } : { rigorous: true });
        }
        const consistent = await settingsFrom(toFlags(merged)).then(
          () => true,
          () => false,
        );
        fc.pre(consistent);
        const both = await settingsFrom(['--config', writeConfig(file, 'yaml'), ...toFlags(cli)]);
        expect(comparable(both, merged)).toEqual(comparable(await settingsFrom(toFlags(merged)), merged));
      }),
      { numRuns: 100 },
    );
  });

  /** Invalid values of each kind of key: wrong type, out of range, empty, unknown name. */
  const junk = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.string({ maxLength: 6 }),
    fc.array(fc.integer(), { maxLength: 2 }).map((a) => [...a, 'x']),
    fc.dictionary(word, fc.integer(), { maxKeys: 2 }),
  );
  const invalid: Record<RunFlag, fc.Arbitrary<unknown>> = {
    engines: fc.oneof(
      fc.constant([]),
      word.filter((w) => !(ENGINE_IDS as readonly string[]).includes(w)).map((w) => ['onnxruntime', w]),
      fc.constantFrom('onnxruntime', 1, null),
    ),
    workloads: fc.oneof(
      fc.constant([]),
      word.filter((w) => !(FAMILY_NAMES as readonly string[]).includes(w)).map((w) => [w]),
      fc.constantFrom('cnn', true),
    ),
    tasks: fc.oneof(fc.constant([]), fc.constant(['infer']), fc.constantFrom('training', 2, null)),
    shapes: fc.oneof(fc.constant([]), fc.constant(['dynamic']), fc.constantFrom('stream', 2, null)),
    paddings: fc.oneof(fc.constant([]), fc.constant(['pad']), fc.constantFrom('exact', 2, null)),
    precision: fc.oneof(fc.constant([]), fc.constant(['fp64']), fc.constantFrom('bf16', 2, null)),
    'prompt-len': fc.oneof(
      fc.constant([]),
      fc.integer({ max: 0 }).map((v) => [8, v]),
      fc.constantFrom('8', 1.5, [2.5], null),
    ),
    'new-tokens': fc.oneof(fc.integer({ max: 0 }), fc.constantFrom('8', 1.5, [8], null)),
    cache: fc.oneof(fc.constant([]), fc.constant(['static']), fc.constantFrom('kv', 2, null)),
    modes: fc.oneof(fc.constant([]), fc.constant(['']), fc.constantFrom(5, true, 'eager', null)),
    preset: fc.oneof(
      word.filter((w) => !Object.values(FAMILIES).some((f) => w in f.presets)),
      fc.constantFrom(1, [], null, { cnn: 'bert-mini-x' }, { gan: 'tiny' }),
    ),
    size: fc.oneof(
      word.filter((w) => !(SIZES as readonly string[]).includes(w)),
      fc.constantFrom(1, ['small'], null),
    ),
    'batch-sizes': fc.oneof(
      fc.constant([]),
      fc.integer({ max: 0 }).map((v) => [1, v]),
      fc.constantFrom('1,8', 8, [1.5], ['8']),
    ),
    out: fc.constantFrom('', 5, [], null, true),
    set: fc.constantFrom(5, true, [1], { classes: true }, { seq: null }, null),
    device: fc.oneof(
      word.filter((w) => !(DEVICES as readonly string[]).includes(w)),
      fc.constantFrom(0, ['cpu']),
    ),
    threads: fc.oneof(
      fc.integer({ max: 0 }),
      fc.constant([]),
      fc.integer({ max: 0 }).map((v) => [2, v]),
      fc.constantFrom(2.5, '4', [1.5], 'all'),
    ),
    seed: fc.oneof(
      fc.integer({ max: -1 }),
      fc.double({ min: 0.01, max: 1e6, noNaN: true }).filter((v) => !Number.isInteger(v)),
      junk,
    ),
    quick: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    rigorous: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    'target-interval': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }), junk),
    replicates: fc.oneof(
      fc.integer({ max: 0 }),
      fc.double({ min: 0.01, max: 99, noNaN: true }).filter((v) => !Number.isInteger(v)),
      junk,
    ),
    'rerun-contended': fc.oneof(
      fc.integer({ max: -1 }),
      fc.integer({ min: 101, max: 10_000 }),
      fc.double({ min: 0.01, max: 99, noNaN: true }).filter((v) => !Number.isInteger(v)),
      junk,
    ),
    'wait-idle': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }), junk),
    'min-samples': fc.oneof(fc.integer({ max: 0 }), junk),
    'min-time': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }), junk),
    'max-time': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }), junk),
    'warmup-max-time': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }), junk),
    timeout: fc.oneof(fc.integer({ max: 0 }), junk),
    'max-memory-mb': fc.oneof(fc.integer({ max: 0 }), junk),
    json: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
  };

  it('every key: an invalid value in a file is refused naming the file and the key', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...RUN_FLAG_NAMES).chain((key) => fc.tuple(fc.constant(key), invalid[key])),
        fc.constantFrom('yaml' as const, 'json' as const),
        ([key, value], format) => {
          const path = writeConfig({ [key]: value }, format);
          let error: unknown;
          try {
            readConfigFile(path);
          } catch (e) {
            error = e;
          }
          expect(error, `${key}: ${JSON.stringify(value)}`).toBeInstanceOf(InputError);
          expect((error as Error).message.startsWith(`${path}: ${key}`), (error as Error).message).toBe(true);
          expect((error as Error).message).toMatch(/must be|unknown|empty/);
          // The published schema refuses it too (editors and linters agree with the tool).
          expect(publishedSchema({ [key]: value })).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
  });

  /** Flag texts no flag of that key accepts. */
  const badText: Partial<Record<RunFlag, fc.Arbitrary<string>>> = {
    engines: word.filter((w) => !(ENGINE_IDS as readonly string[]).includes(w)),
    workloads: word.filter((w) => !(FAMILY_NAMES as readonly string[]).includes(w)),
    preset: fc.oneof(
      word.filter((w) => !Object.values(FAMILIES).some((f) => w in f.presets)),
      word.map((w) => `cnn=resnet18,${w}=tiny`).filter((t) => !FAMILY_NAMES.some((f) => t.endsWith(`,${f}=tiny`))),
    ),
    size: word.filter((w) => !(SIZES as readonly string[]).includes(w)),
    'batch-sizes': fc.oneof(fc.integer({ max: 0 }).map(String), word, fc.constant(',')),
    device: word.filter((w) => !(DEVICES as readonly string[]).includes(w)),
    threads: fc.oneof(fc.integer({ max: 0 }).map(String), word, fc.constant('1.5')),
    seed: fc.oneof(fc.integer({ max: -1 }).map(String), word, fc.constant('0.5')),
    'target-interval': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }).map(String), word),
    replicates: fc.oneof(fc.integer({ max: 0 }).map(String), word),
    'rerun-contended': fc.oneof(fc.integer({ max: -1 }).map(String), word, fc.constant('1.5')),
    'wait-idle': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }).map(String), word),
    'min-samples': fc.oneof(fc.integer({ max: 0 }).map(String), word),
    'min-time': fc.oneof(fc.double({ max: -1e-9, noNaN: true, noDefaultInfinity: true }).map(String), word),
    'max-time': word,
    'warmup-max-time': word,
    timeout: fc.oneof(fc.integer({ max: 0 }).map(String), fc.constant('2.5'), word),
  };

  it('every flag: the same kind of invalid value on the command line is refused naming the flag and the value', async () => {
    const keys = Object.keys(badText) as RunFlag[];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...keys).chain((key) => fc.tuple(fc.constant(key), badText[key]!)),
        async ([key, text]) => {
          expect(() => runFlag(key)(text)).toThrow(InvalidArgumentError);
          let error: unknown;
          await settingsFrom([`--${key}=${text}`]).catch((e: unknown) => (error = e));
          expect(error).toBeInstanceOf(CommanderError);
          expect((error as Error).message).toContain(`option '--${key} `);
          expect((error as Error).message).toContain(`argument '${text}' is invalid`);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('docs/config.example.yaml is valid for the tool and for the published schema', async () => {
    const example = 'docs/config.example.yaml';
    expect(publishedSchema(parse(readFileSync(example, 'utf8')))).toBe(true);
    const s = await settingsFrom(['--config', example]);
    expect(s.config).toMatchObject({
      engines: ['onnxruntime', 'tfjs-wasm'],
      workloads: ['cnn', 'transformer'],
      batchSizes: [1, 8],
      sets: [['classes', '10']],
      threads: [2],
      replicates: 3,
      preset: { cnn: 'resnet50', transformer: 'bert-mini' },
      size: 'small',
    });
    expect(s.out).toBe('results/nightly');
  });

  it("the config file has a key for every run flag but --config itself and --resume (which continues a run with that run's own configuration)", () => {
    const notInFiles = ['config', 'resume'];
    const program = buildProgram();
    const runFlags = program.commands
      .find((c) => c.name() === 'run')!
      .options.map((o) => o.long!.slice(2))
      .filter((f) => !notInFiles.includes(f));
    expect(runFlags.sort()).toEqual([...RUN_FLAG_NAMES].sort());
  });
});

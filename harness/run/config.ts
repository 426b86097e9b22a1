import { existsSync, readFileSync, statSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { checkTensorSizes, FAMILIES, FAMILY_NAMES, getFamily, resolveParams, setsForFamily, SIZES, type FamilyName, type Size } from '../../workloads/index.js';
import { InputError } from '../errors.js';
import { checkModes, getEngine } from '../engines/registry.js';
import { MEASURE_PRESETS } from '../worker/measure.js';
import { DEFAULT_WAIT_IDLE_S } from './contention.js';
import { checkOutputDir } from '../io/output.js';
import type { RunConfig } from '../results/schema.js';
import {
  asNumber,
  camel,
  configFileSchema,
  fileFlagNames,
  NonNegativeInt,
  oneOf,
  parserOf,
  Percent,
  PositiveInt,
  PRESET_PER_FAMILY_EXAMPLE,
  PresetName,
  RUN_FLAGS,
  runConfigShape,
  runFlag,
  show,
  type FlagContext,
  type OwnField,
  type RunFlagTable,
} from './flags.js';

/**
 * A run's settings from the command line and a config file (`fwbench run --config FILE`, whose
 * keys are the run flags without their dashes): the file read and judged by the flags' own rules
 * (harness/run/flags.ts), then the run configuration that run.json records, checked before any
 * engine starts.
 */

/** The config file's content: any subset of the run flags (results/schema/config.schema.json is generated from it). */
export const RunConfigFileSchema = configFileSchema(RUN_FLAGS);
/** A parsed config file. */
export type RunConfigFile = z.infer<typeof RunConfigFileSchema>;

/** The first problem of a failed parse as `key[index]: message`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
  return `${path ? `${path}: ` : ''}${issue.message}`;
}

/** Parsers of the flags other commands share with run (one rule per kind of value). */
export const FLAG = {
  positiveInt: parserOf(PositiveInt, asNumber),
  nonNegativeInt: parserOf(NonNegativeInt, asNumber),
  percent: parserOf(Percent, asNumber),
  engines: runFlag('engines'),
  workload: parserOf(oneOf('workload', FAMILY_NAMES)),
  preset: parserOf(PresetName),
} as const;

/** Largest config file read (bytes), and most YAML alias uses in it: a config is a screenful of flags. */
const CONFIG_MAX_BYTES = 1 << 20;
const CONFIG_MAX_ALIASES = 100;

/** Reads and validates a config file (YAML, or JSON by its .json extension or a leading '{'); every problem is a one-line InputError naming the file and the key. */
export function readConfigFile(path: string, table: RunFlagTable = RUN_FLAGS): RunConfigFile {
  const names: string[] = fileFlagNames(table);
  if (!existsSync(path)) throw new InputError(`--config ${path}: no such file`);
  if (statSync(path).isDirectory()) throw new InputError(`--config ${path}: is a folder; give a YAML or JSON file`);
  const size = statSync(path).size;
  if (size > CONFIG_MAX_BYTES)
    throw new InputError(`--config ${path}: ${size} bytes; a config file holds run flags and may be at most ${CONFIG_MAX_BYTES} bytes`);
  const text = readFileSync(path, 'utf8');
  const json = /\.json$/i.test(path) || (!/\.ya?ml$/i.test(path) && text.trimStart().startsWith('{'));
  let data: unknown;
  if (json) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new InputError(`${path}: not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else {
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    const error = doc.errors[0];
    // The first line of yaml's message says what and where ("... at line 2, column 1:"); a code frame follows.
    if (error) throw new InputError(`${path}: not valid YAML: ${error.message.split('\n')[0]!.replace(/:$/, '')}`);
    try {
      // Aliases expand on reading: a few nested ones (a "billion laughs" file) would fill memory.
      data = doc.toJS({ maxAliasCount: CONFIG_MAX_ALIASES });
    } catch (e) {
      throw new InputError(`${path}: YAML aliases expand too much (at most ${CONFIG_MAX_ALIASES} alias uses; ${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (data === null || data === undefined) throw new InputError(`${path}: empty config file; give a mapping of run flags, e.g. engines: [onnxruntime]`);
  if (typeof data !== 'object' || Array.isArray(data))
    throw new InputError(`${path}: must be a mapping of run flags (${names.join(', ')}), got ${Array.isArray(data) ? 'a list' : show(data)}`);
  for (const key of Object.keys(data)) {
    if (names.includes(key)) continue;
    const near = names.find((k) => camel(k) === key || k === key.replace(/^--/, '') || k === key.toLowerCase().replace(/_/g, '-'));
    throw new InputError(`${path}: unknown key ${show(key)}${near ? ` (did you mean '${near}'?)` : ''}; valid keys: ${names.join(', ')}`);
  }
  const parsed = (table === RUN_FLAGS ? RunConfigFileSchema : configFileSchema(table)).safeParse(data);
  if (!parsed.success) throw new InputError(`${path}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** `--preset` as validated: one name, or names by workload. */
type PresetValue = string | Partial<Record<FamilyName, string>>;

/**
 * Each workload's preset: `--preset` where it names one (a single name names every workload),
 * else the workload's preset of the `--size` class (default `small`, `tiny` with --quick). The
 * size is returned when some workload took its preset from it.
 */
function presetsOf(
  workloads: FamilyName[],
  preset: PresetValue | undefined,
  size: Size | undefined,
  quick: boolean,
  where: (key: string) => string,
): { preset: Record<string, string>; size?: Size } {
  if (typeof preset === 'string' && size !== undefined)
    throw new InputError(
      `${where('preset')} ${preset} names the preset of every workload, so ${where('size')} would pick none: give one of them, or one preset per workload (${PRESET_PER_FAMILY_EXAMPLE}) to override the size for those`,
    );
  const named = typeof preset === 'string' ? Object.fromEntries(workloads.map((w) => [w, preset])) : (preset ?? {});
  const unrun = Object.keys(named).filter((w) => !workloads.includes(w as FamilyName));
  if (unrun.length)
    throw new InputError(
      `${where('preset')} names ${unrun.join(', ')}, which ${where('workloads')} does not run (${workloads.join(', ')}); drop it there or add it to workloads`,
    );
  const sizeClass = size ?? (quick ? 'tiny' : 'small');
  const fromSize = workloads.filter((w) => named[w] === undefined);
  for (const w of workloads) {
    const p = named[w];
    if (p !== undefined && !(p in FAMILIES[w].presets)) {
      const hint = typeof preset === 'string' ? `; give one preset per workload (${PRESET_PER_FAMILY_EXAMPLE}) or a --size (${SIZES.join(', ')})` : '';
      // Named as a later check of a flag's value is: the file and key prefix it, the flag does not.
      throw new InputError(
        `${where('preset').startsWith('--') ? '' : `${where('preset')}: `}unknown preset '${p}' for workload '${w}'; valid presets: ${Object.keys(FAMILIES[w].presets).join(', ')}${hint}`,
      );
    }
  }
  return { preset: Object.fromEntries(workloads.map((w) => [w, named[w] ?? FAMILIES[w].sizes[sizeClass]])), ...(fromSize.length ? { size: sizeClass } : {}) };
}

/** What `fwbench run` does: the validated configuration, the output folder and the output form. */
export interface RunSettings {
  config: RunConfig;
  /** Output folder (as given, checked to be a folder or creatable; the caller resolves it). */
  out: string;
  /** Print run.json instead of the summary table. */
  json: boolean;
  /** `--wait-idle`: wait at most this many seconds for a quiet machine before the first cell (absent: start at once). */
  waitIdleS?: number;
  /** The flags set on the command line or in the config file (commander's camelCase names), which a resume checks against the run's. */
  given: string[];
}

/**
 * Builds the run configuration from a config file and the command line, validating everything
 * before any engine starts. `flags` are commander's parsed values (defaults included, camelCase
 * keys, `config` the file's path); `fromCommandLine(camelKey)` says whether the user typed that
 * flag, which then overrides the file. The measurement preset is one choice: `--quick` or
 * `--rigorous` on the command line replaces the file's. Each flag with a run.json field of its own
 * fills it by its table entry's rule; the shared fields are computed here. `table` is RUN_FLAGS
 * but in tests.
 */
export async function runSettings(
  flags: Record<string, unknown>,
  fromCommandLine: (camelKey: string) => boolean,
  table: RunFlagTable = RUN_FLAGS,
): Promise<RunSettings> {
  const file: Record<string, unknown> = typeof flags.config === 'string' ? readConfigFile(flags.config, table) : {};
  const presetOnCli = fromCommandLine('quick') || fromCommandLine('rigorous');
  const fromFile = (key: string): boolean =>
    file[key] !== undefined && !fromCommandLine(camel(key)) && !(presetOnCli && (key === 'quick' || key === 'rigorous'));
  const value = (key: string): unknown => (fromFile(key) ? file[key] : flags[camel(key)]);
  /** Where a value came from, as messages name it. */
  const where = (key: string): string => (fromFile(key) ? `${String(flags.config)}: ${key}` : `--${key}`);
  /** Re-throws a later check's InputError prefixed with the file and key when the value came from the file. */
  const checked = <T>(key: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof InputError && fromFile(key)) throw new InputError(`${where(key)}: ${e.message}`);
      throw e;
    }
  };

  const quick = value('quick') === true;
  const rigorous = value('rigorous') === true;
  if (quick && rigorous)
    throw new InputError(
      `${where('quick')} and ${fromFile('quick') === fromFile('rigorous') ? where('rigorous').replace(/^.*: /, '') : where('rigorous')} exclude each other`,
    );
  const measurePreset = quick ? 'quick' : rigorous ? 'rigorous' : 'default';
  const p = MEASURE_PRESETS[measurePreset];
  const opt = (key: string): number | undefined => value(key) as number | undefined;
  const given = (key: string): boolean => fromCommandLine(camel(key)) || file[key] !== undefined;
  const context: FlagContext = {
    measurePreset,
    given,
    // The tasks as given (a bad name is judged by the tasks flag's own rule); absent, its default.
    runs: (task) =>
      (
        (given('tasks') ? value('tasks') : table.tasks?.default && 'value' in table.tasks.default ? table.tasks.default.value : ['inference']) as unknown[]
      ).includes(task),
  };

  const minGiven = opt('min-time');
  const maxGiven = opt('max-time');
  if (minGiven !== undefined && maxGiven !== undefined && minGiven > maxGiven) {
    throw new InputError(
      `${where('min-time')} ${minGiven} exceeds ${where('max-time')} ${maxGiven}: the timed loop must be allowed at least its minimum; give min-time <= max-time`,
    );
  }
  // A bound given alone moves the preset's other bound with it when they would cross.
  const minTimeMs = minGiven ?? Math.min(p.minTimeMs, maxGiven ?? Infinity);
  const maxTimeMs = maxGiven ?? Math.max(p.maxTimeMs, minGiven ?? 0);
  const targetPct = opt('target-interval');

  /** The run.json fields the flags own, each by its entry's rule from the flag's value. */
  const own: Record<string, unknown> = {};
  const ownField = async (name: string): Promise<unknown> => {
    const r = table[name]!.results as OwnField;
    if (!(r.field in own)) own[r.field] = await r.from(value(name), context);
    return own[r.field];
  };
  // The presets depend on the workloads; they are judged before the other flags' fields are made.
  const workloads = (await ownField('workloads')) as FamilyName[];
  const { preset, size } = presetsOf(workloads, value('preset') as PresetValue | undefined, value('size') as Size | undefined, quick, where);
  for (const [name, f] of Object.entries(table)) if ('field' in f.results) await ownField(name);
  const shared: Record<string, unknown> = {
    onlyAvailable: context.given('engines') ? undefined : true,
    preset,
    size,
    measure: {
      ...p,
      minSamples: opt('min-samples') ?? p.minSamples,
      minTimeMs,
      maxTimeMs,
      warmupMaxMs: opt('warmup-max-time') ?? p.warmupMaxMs,
      // A shorter --warmup-max-time also shortens the preset's minimum warm-up.
      warmupMinMs: Math.min(p.warmupMinMs ?? 0, opt('warmup-max-time') ?? p.warmupMaxMs),
      targetInterval: targetPct !== undefined ? targetPct / 100 : p.targetInterval,
    },
    measurePreset,
  };
  const fields = { ...own, ...shared };
  // In run.json's order; a field left undefined is absent.
  const config = Object.fromEntries(
    Object.keys(runConfigShape(table))
      .filter((k) => fields[k] !== undefined)
      .map((k) => [k, fields[k]]),
  ) as RunConfig;
  // Modes and every workload's parameters are checked here, before anything starts.
  checked('modes', () =>
    checkModes(
      config.engines.map((e) => getEngine(e)),
      config.modes,
    ),
  );
  const families = config.workloads.map((w) => getFamily(w));
  for (const f of families) {
    checked('preset', () => resolveParams(f, config.preset[f.name]!));
    const sets = checked('set', () => setsForFamily(f, config.sets, families));
    const params = checked('set', () => resolveParams(f, config.preset[f.name]!, sets));
    checkTensorSizes(f, params, Math.max(...config.batchSizes));
  }
  const givenFlags = fileFlagNames(table)
    .filter((k) => context.given(k))
    .map(camel);
  const wait = value('wait-idle');
  const waitIdle = wait === undefined || wait === false ? {} : { waitIdleS: wait === true ? DEFAULT_WAIT_IDLE_S : (wait as number) };
  return { config, out: checkOutputDir(value('out') as string, where('out')), json: value('json') === true, ...waitIdle, given: givenFlags };
}

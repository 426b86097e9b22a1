import { InvalidArgumentError } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import si from 'systeminformation';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import {
  checkTensorSizes,
  FAMILIES,
  FAMILY_NAMES,
  getFamily,
  parseSetText,
  resolveParams,
  setsForFamily,
  SIZES,
  type FamilyName,
  type Size,
} from '../../workloads/index.js';
import { InputError } from '../errors.js';
import { checkModes, getEngine } from '../engines/registry.js';
import { DEVICES, ENGINE_IDS, type EngineId } from '../engines/types.js';
import { DEFAULT_MEASURE, PRESET_REPLICATES, QUICK_MEASURE, RIGOROUS_MEASURE } from '../worker/measure.js';
import { checkOutputDir } from '../io/output.js';
import type { RunConfig } from '../results/schema.js';

/**
 * One definition of every flag's allowed values, serving the command line and the config file
 * (`fwbench run --config FILE`, whose keys are the run flags without their dashes). Each flag is a
 * zod schema over the value as a config file holds it (numbers, lists, booleans) and, for the
 * command line, a conversion of the flag's text into that value; the same schema then judges both,
 * so a value is allowed on the command line exactly when it is allowed in a file, with the same
 * message. The config file's JSON Schema (results/schema/config.schema.json) is generated from it.
 */

/** A value as messages show it: text in single quotes, anything else as JSON. */
const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v)));

const must = (allowed: string) => ({ error: (iss: { input?: unknown }) => `must be ${allowed}, got ${show(iss.input)}` });
const int = (min: number, allowed: string) => z.number(must(allowed)).int(must(allowed)).min(min, must(allowed));
const number = (allowed: string) => z.number(must(allowed)).min(0, must(allowed));

/** A positive integer. */
const PositiveInt = int(1, 'a positive integer');
/** An integer in [1, max]: bounds are checked before anything is allocated for them. */
const PositiveIntUpTo = (max: number) => int(1, `a positive integer up to ${max}`).max(max, must(`a positive integer up to ${max}`));
/** Milliseconds in [0, max]. */
const MsUpTo = (max: number) => number(`a non-negative number of ms up to ${max}`).max(max, must(`a non-negative number of ms up to ${max}`));
/** Upper bounds of the run flags (documented in each flag's description and in the config schema). */
export const FLAG_MAX = {
  batchSize: 65_536,
  threads: 1024,
  replicates: 100,
  minSamples: 1_000_000,
  timeMs: 3_600_000,
  timeoutS: 604_800,
  memoryMb: 4_194_304,
} as const;
/** A non-negative integer. */
const NonNegativeInt = int(0, 'a non-negative integer');
/** A finite non-negative number. */
const NonNegative = number('a non-negative number');
/** A percentage in [0, 100). */
const Percent = z.number(must('a percentage in [0, 100)')).min(0, must('a percentage in [0, 100)')).lt(100, must('a percentage in [0, 100)'));

/** One of a fixed set of names; the message lists them. */
const oneOf = <T extends string>(what: string, valid: readonly T[]) =>
  z.enum(valid as [T, ...T[]], { error: (iss) => `unknown ${what} ${show(iss.input)}; valid ${what}s: ${valid.join(', ')}` });
/** A non-empty list of names from a fixed set. */
const nameList = <T extends string>(what: string, valid: readonly T[]) =>
  z
    .array(oneOf(what, valid), must(`a list of ${what}s (${valid.join(', ')})`))
    .min(1, { error: () => `empty ${what} list; valid ${what}s: ${valid.join(', ')}` });

/** Every preset name of any workload family (each family's own list is checked once the workloads are known). */
export const PRESET_NAMES = [...new Set(Object.values(FAMILIES).flatMap((f) => Object.keys(f.presets)))];

/** An example of one preset per workload, for messages and help. */
export const PRESET_PER_FAMILY_EXAMPLE = FAMILY_NAMES.map((f) => `${f}=${FAMILIES[f].sizes.small}`).join(',');

const PresetName = oneOf('preset', PRESET_NAMES);
/** Why a `--preset` value is refused, naming the workload or preset at fault. */
const presetError = (iss: { code?: string; input?: unknown; keys?: string[] }): string => {
  const v = iss.input;
  if (iss.code === 'unrecognized_keys') return `unknown workload ${show(iss.keys?.[0])} in workload=preset; valid workloads: ${FAMILY_NAMES.join(', ')}`;
  if (typeof v === 'string') return `unknown preset ${show(v)}; valid presets: ${PRESET_NAMES.join(', ')}; or one per workload: ${PRESET_PER_FAMILY_EXAMPLE}`;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (!(FAMILY_NAMES as string[]).includes(k)) return `unknown workload ${show(k)} in workload=preset; valid workloads: ${FAMILY_NAMES.join(', ')}`;
      if (typeof x !== 'string' || !PRESET_NAMES.includes(x))
        return `unknown preset ${show(x)} for ${k}; valid presets: ${Object.keys(FAMILIES[k as FamilyName].presets).join(', ')}`;
    }
  }
  return `must be a preset name or workload=preset pairs (${PRESET_PER_FAMILY_EXAMPLE}), got ${show(v)}`;
};
/**
 * `--preset`: one preset name for every workload (it must exist in each), or one per workload
 * (`cnn=resnet18,rnn=small`; a config file may also hold a mapping). Workloads it does not name
 * take the preset of `--size`.
 */
const PresetChoice = z.union([PresetName, z.partialRecord(z.enum(FAMILY_NAMES as [FamilyName, ...FamilyName[]]), PresetName, { error: presetError })], {
  error: presetError,
});

const ParamValue = z.union([z.number(), z.string(), z.array(z.number())], must('a number, a string or a list of numbers'));

/** How a flag's text becomes the value a config file would hold: numbers where the text is one, lists split at commas. */
const asNumber = (text: string): unknown => (/^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(text) ? Number(text) : text);
const items = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
const asList = (text: string): unknown => items(text);
const asNumberList = (text: string): unknown => items(text).map(asNumber);
const asNumberOrList = (text: string): unknown => (items(text).length === 1 ? asNumber(text) : asNumberList(text));
const asText = (text: string): unknown => text;
/** `--preset` text: a name, or `workload=preset` pairs. */
const asPreset = (text: string): unknown =>
  text.includes('=')
    ? Object.fromEntries(items(text).map((i) => [i.split('=')[0]!.trim(), i.includes('=') ? i.slice(i.indexOf('=') + 1).trim() : undefined]))
    : text.trim();

/** A flag: the schema of its value and how its command-line text becomes such a value (absent for switches). */
interface Flag<S extends z.ZodType = z.ZodType> {
  schema: S;
  fromText?: (text: string) => unknown;
  /** One line for the JSON Schema's description. */
  doc: string;
}
const flag = <S extends z.ZodType>(schema: S, fromText: ((text: string) => unknown) | undefined, doc: string): Flag<S> => ({
  schema,
  ...(fromText ? { fromText } : {}),
  doc,
});

/** Every `fwbench run` flag a config file may set, by its name on the command line. */
const RUN_FLAGS = {
  engines: flag(nameList('engine', ENGINE_IDS), asList, 'engines to run'),
  workloads: flag(nameList('workload', FAMILY_NAMES), asList, 'workload families to run'),
  modes: flag(
    z.union(
      [
        z.literal('all'),
        z
          .array(z.string(must('a mode name')).min(1, must('a mode name')), must("a list of mode names or 'all'"))
          .min(1, { error: () => "empty mode list; give mode names (see fwbench list) or 'all'" }),
      ],
      must("a list of mode names or 'all'"),
    ),
    (t) => (t.trim() === 'all' ? 'all' : asList(t)),
    "execution modes (e.g. [eager, compile]) or 'all'",
  ),
  preset: flag(PresetChoice, asPreset, `preset of every workload (must exist for each), or one per workload (${PRESET_PER_FAMILY_EXAMPLE}); overrides size`),
  size: flag(
    oneOf('size', SIZES),
    asText,
    'size class of every workload: tiny, small (resnet18, rnn small, bert-mini) or base (resnet50, rnn large, bert-base); default small, tiny with quick',
  ),
  'batch-sizes': flag(
    z.array(PositiveIntUpTo(FLAG_MAX.batchSize), must('a list of positive integers')).min(1, { error: () => 'empty batch size list; give positive integers' }),
    asNumberList,
    `batch sizes, each up to ${FLAG_MAX.batchSize} (default [1, 8]; [1] with quick)`,
  ),
  out: flag(z.string(must('a folder path')).min(1, must('a folder path')), asText, 'output folder for cells.jsonl and run.json'),
  set: flag(
    z.union([z.string(), z.record(z.string(), ParamValue)], must("a mapping of workload parameters (seq: 37) or 'key=value,...' text")),
    asText,
    "workload parameter overrides: a mapping (seq: 37, depths: [1, 1, 2, 1]) or the flag's 'key=value,...' text",
  ),
  device: flag(oneOf('device', DEVICES), asText, 'device of every cell'),
  threads: flag(
    z.union(
      [
        PositiveIntUpTo(FLAG_MAX.threads),
        z
          .array(PositiveIntUpTo(FLAG_MAX.threads), must('a positive integer or a list of them'))
          .min(1, { error: () => 'empty threads list; give positive integers' }),
      ],
      must('a positive integer or a list of them'),
    ),
    asNumberOrList,
    'intra-op threads of every engine, or a list to sweep (each count a matrix dimension); default: physical cores, capped at the CPUs allowed',
  ),
  seed: flag(NonNegativeInt, asNumber, 'seed of weights and inputs'),
  quick: flag(z.boolean(must('true or false')), undefined, 'smoke run: size tiny and batch 1 unless given, measured to ±5 % in short loops'),
  rigorous: flag(z.boolean(must('true or false')), undefined, 'measurement preset rigorous (±0.5 %, >= 662 samples, 5 processes per cell)'),
  'target-interval': flag(NonNegative, asNumber, 'stop once the 95 % interval of the median is within ±this % of it (0 = run to max-time)'),
  replicates: flag(PositiveIntUpTo(FLAG_MAX.replicates), asNumber, `fresh worker processes per cell (up to ${FLAG_MAX.replicates})`),
  'min-samples': flag(PositiveIntUpTo(FLAG_MAX.minSamples), asNumber, `timed loop: at least this many samples (up to ${FLAG_MAX.minSamples})`),
  'min-time': flag(MsUpTo(FLAG_MAX.timeMs), asNumber, `timed loop: at least this long (ms, up to ${FLAG_MAX.timeMs}; not above max-time)`),
  'max-time': flag(MsUpTo(FLAG_MAX.timeMs), asNumber, `timed loop: at most this long (ms, up to ${FLAG_MAX.timeMs})`),
  'warmup-max-time': flag(MsUpTo(FLAG_MAX.timeMs), asNumber, `warm-up: at most this long (ms, up to ${FLAG_MAX.timeMs})`),
  timeout: flag(PositiveIntUpTo(FLAG_MAX.timeoutS), asNumber, `kill a cell's worker after this many seconds (up to ${FLAG_MAX.timeoutS})`),
  json: flag(z.boolean(must('true or false')), undefined, 'print run.json on stdout instead of the summary table'),
  'max-memory-mb': flag(
    PositiveIntUpTo(FLAG_MAX.memoryMb),
    asNumber,
    `cap each cell worker's private memory (MiB, up to ${FLAG_MAX.memoryMb}; RLIMIT_DATA, and V8's heap limit for Node workers)`,
  ),
} as const;
/** A run flag's name. */
export type RunFlag = keyof typeof RUN_FLAGS;
/** The flags' names. */
export const RUN_FLAG_NAMES = Object.keys(RUN_FLAGS) as RunFlag[];

/** The config file's content: any subset of the run flags. */
export const RunConfigFileSchema = z
  .object(
    Object.fromEntries(RUN_FLAG_NAMES.map((k) => [k, RUN_FLAGS[k].schema.optional().describe(RUN_FLAGS[k].doc)])) as {
      [K in RunFlag]: z.ZodOptional<(typeof RUN_FLAGS)[K]['schema']>;
    },
  )
  .strict();
/** A parsed config file. */
export type RunConfigFile = z.infer<typeof RunConfigFileSchema>;

/** The first problem of a failed parse as `key[index]: message`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
  return `${path ? `${path}: ` : ''}${issue.message}`;
}

/** A commander argument parser for a value judged by `schema` (text converted by `fromText`): one-line InvalidArgumentError on a bad value. */
function parserOf<S extends z.ZodType>(schema: S, fromText: (text: string) => unknown = asText): (text: string) => z.infer<S> {
  return (text: string) => {
    const r = schema.safeParse(fromText(text));
    // The flag and its whole text head commander's message, so only the problem follows.
    if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'invalid');
    return r.data;
  };
}

/** The commander parser of a run flag. */
export const runFlag = <K extends RunFlag>(key: K): ((text: string) => z.infer<(typeof RUN_FLAGS)[K]['schema']>) => {
  const f: Flag = RUN_FLAGS[key];
  return parserOf(f.schema, f.fromText) as (text: string) => z.infer<(typeof RUN_FLAGS)[K]['schema']>;
};

/** Parsers of the flags other commands share with run (one rule per kind of value). */
export const FLAG = {
  positiveInt: parserOf(PositiveInt, asNumber),
  nonNegativeInt: parserOf(NonNegativeInt, asNumber),
  percent: parserOf(Percent, asNumber),
  engines: runFlag('engines'),
  workload: parserOf(oneOf('workload', FAMILY_NAMES)),
  preset: parserOf(PresetName),
} as const;

const camel = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Largest config file read (bytes), and most YAML alias uses in it: a config is a screenful of flags. */
const CONFIG_MAX_BYTES = 1 << 20;
const CONFIG_MAX_ALIASES = 100;

/** Reads and validates a config file (YAML, or JSON by its .json extension or a leading '{'); every problem is a one-line InputError naming the file and the key. */
export function readConfigFile(path: string): RunConfigFile {
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
    throw new InputError(`${path}: must be a mapping of run flags (${RUN_FLAG_NAMES.join(', ')}), got ${Array.isArray(data) ? 'a list' : show(data)}`);
  for (const key of Object.keys(data)) {
    if (key in RUN_FLAGS) continue;
    const near = RUN_FLAG_NAMES.find((k) => camel(k) === key || k === key.replace(/^--/, '') || k === key.toLowerCase().replace(/_/g, '-'));
    throw new InputError(`${path}: unknown key ${show(key)}${near ? ` (did you mean '${near}'?)` : ''}; valid keys: ${RUN_FLAG_NAMES.join(', ')}`);
  }
  const parsed = RunConfigFileSchema.safeParse(data);
  if (!parsed.success) throw new InputError(`${path}: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/**
 * Intra-op threads when none are given: the physical cores, but no more than the CPUs this process
 * may run on (a Slurm task, a container or `taskset` can allow fewer than the host has, and more
 * threads than CPUs makes OpenMP pools collapse).
 */
export async function defaultThreads(): Promise<number> {
  const cpu = await si.cpu();
  return Math.max(1, Math.min(cpu.physicalCores || cpu.cores || 1, availableParallelism()));
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
  where: (key: RunFlag) => string,
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

/** `--set` as key/value pairs, from the flag's text(s) or a config file's mapping; a key given twice keeps its last value. */
function setPairs(v: unknown): Array<[string, string]> {
  const pairs: Array<[string, string]> =
    typeof v === 'string'
      ? parseSetText(v)
      : Array.isArray(v)
        ? (v as Array<[string, string]>)
        : Object.entries((v ?? {}) as Record<string, z.infer<typeof ParamValue>>).map(([k, x]) => [k, Array.isArray(x) ? x.join(',') : String(x)]);
  return [...new Map(pairs)];
}

/** What `fwbench run` does: the validated configuration, the output folder and the output form. */
export interface RunSettings {
  config: RunConfig;
  /** Output folder (as given, checked to be a folder or creatable; the caller resolves it). */
  out: string;
  /** Print run.json instead of the summary table. */
  json: boolean;
  /** The flags set on the command line or in the config file (commander's camelCase names), which a resume checks against the run's. */
  given: string[];
}

/**
 * Builds the run configuration from a config file and the command line, validating everything
 * before any engine starts. `flags` are commander's parsed values (defaults included, camelCase
 * keys, `config` the file's path); `fromCommandLine(camelKey)` says whether the user typed that
 * flag, which then overrides the file. The measurement preset is one choice: `--quick` or
 * `--rigorous` on the command line replaces the file's.
 */
export async function runSettings(flags: Record<string, unknown>, fromCommandLine: (camelKey: string) => boolean): Promise<RunSettings> {
  const file = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
  const presetOnCli = fromCommandLine('quick') || fromCommandLine('rigorous');
  const fromFile = (key: RunFlag): boolean =>
    file[key] !== undefined && !fromCommandLine(camel(key)) && !(presetOnCli && (key === 'quick' || key === 'rigorous'));
  const value = <K extends RunFlag>(key: K): unknown => (fromFile(key) ? file[key] : flags[camel(key)]);
  /** Where a value came from, as messages name it. */
  const where = (key: RunFlag): string => (fromFile(key) ? `${String(flags.config)}: ${key}` : `--${key}`);
  /** Re-throws a later check's InputError prefixed with the file and key when the value came from the file. */
  const checked = <T>(key: RunFlag, f: () => T): T => {
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
  const p = { quick: QUICK_MEASURE, default: DEFAULT_MEASURE, rigorous: RIGOROUS_MEASURE }[measurePreset];
  const opt = (key: RunFlag): number | undefined => value(key) as number | undefined;

  const threadsValue = value('threads') as number | number[] | undefined;
  const threadsList = threadsValue === undefined ? [await defaultThreads()] : [threadsValue].flat();

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
  const listedModes = value('modes') as RunConfig['modes'] | undefined;
  // [all] in a file is the flag's `--modes all`.
  const modes = Array.isArray(listedModes) ? (listedModes.length === 1 && listedModes[0] === 'all' ? 'all' : [...new Set(listedModes)]) : listedModes;
  const unique = <T>(key: RunFlag): T[] => [...new Set(value(key) as T[])];
  const workloads = unique<string>('workloads').map((w) => getFamily(w).name);
  const { preset, size } = presetsOf(workloads, value('preset') as PresetValue | undefined, value('size') as Size | undefined, quick, where);
  const enginesNamed = fromCommandLine('engines') || file.engines !== undefined;
  const config: RunConfig = {
    engines: unique<string>('engines').map((e) => getEngine(e).id as EngineId),
    ...(enginesNamed ? {} : { onlyAvailable: true }),
    workloads,
    preset,
    ...(size ? { size } : {}),
    // --quick is a smoke run: batch 1 unless batch sizes are given.
    batchSizes: quick && !fromCommandLine('batchSizes') && file['batch-sizes'] === undefined ? [1] : unique<number>('batch-sizes'),
    ...(modes ? { modes } : {}),
    sets: setPairs(value('set')),
    device: value('device') as RunConfig['device'],
    threads: [...new Set(threadsList)],
    seed: value('seed') as number,
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
    replicates: opt('replicates') ?? PRESET_REPLICATES[measurePreset],
    measurePreset,
    cellTimeoutMs: (value('timeout') as number) * 1000,
    ...(opt('max-memory-mb') !== undefined ? { maxMemoryMb: opt('max-memory-mb')! } : {}),
  };
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
  const given = RUN_FLAG_NAMES.filter((k) => fromCommandLine(camel(k)) || file[k] !== undefined).map(camel);
  return { config, out: checkOutputDir(value('out') as string, where('out')), json: value('json') === true, given };
}

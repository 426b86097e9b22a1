import { InvalidArgumentError, Option } from 'commander';
import { availableParallelism } from 'node:os';
import si from 'systeminformation';
import { z } from 'zod';
import {
  CACHES,
  FAMILIES,
  FAMILY_NAMES,
  familyTasks,
  GENERATE,
  getFamily,
  PADDINGS,
  parseSetText,
  PRECISION,
  PRECISIONS,
  SHAPES,
  SIZES,
  STREAM,
  TASKS,
  type FamilyName,
  type Task,
} from '../../workloads/index.js';
import { DEFAULT_ENGINES, ENGINES, getEngine } from '../engines/registry.js';
import { DEVICES, ENGINE_IDS } from '../engines/types.js';
import { DEFAULT_MEASURE, MEASURE_PRESET_NAMES, PRESET_REPLICATES, QUICK_MEASURE, RIGOROUS_MEASURE, type MeasurePreset } from '../worker/measure.js';
import { MeasureSettingsSchema, type MeasureSettings } from '../worker/protocol.js';
import { DEFAULT_CONTENDED_RERUNS, DEFAULT_WAIT_IDLE_S } from './contention.js';

/**
 * The flags of `fwbench run`, each declared once in RUN_FLAGS: its value on the command line and
 * in a config file (`fwbench run --config FILE`, whose keys are the flags without their dashes),
 * its help and default, and what it does to the results. From that one table come the commander
 * options (runOptions), the config file's schema (configFileSchema, published as
 * results/schema/config.schema.json), run.json's `config` (runConfigSchema; harness/run/config.ts
 * fills it), the resume check (resumeCheck) and the flag reference in docs/cli.md
 * (harness/run/flags-doc.ts, `npm run docs`). Adding a run flag is one entry here (one that
 * changes the fields several flags decide together also needs its part in runSettings).
 *
 * A flag's value is a zod schema over the value as a config file holds it (numbers, lists,
 * booleans) with, for the command line, a conversion of the flag's text into that value; the same
 * schema then judges both, so a value is allowed on the command line exactly when it is allowed in
 * a file, with the same message.
 */

/** A value as messages show it: text in single quotes, anything else as JSON. */
export const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : v === undefined ? 'nothing' : (JSON.stringify(v) ?? String(v)));

const must = (allowed: string) => ({ error: (iss: { input?: unknown }) => `must be ${allowed}, got ${show(iss.input)}` });
const int = (min: number, allowed: string) => z.number(must(allowed)).int(must(allowed)).min(min, must(allowed));
const number = (allowed: string) => z.number(must(allowed)).min(0, must(allowed));

/** A positive integer. */
export const PositiveInt = int(1, 'a positive integer');
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
  tokens: 1_000_000,
} as const;
/** A non-negative integer. */
export const NonNegativeInt = int(0, 'a non-negative integer');
/** A finite non-negative number. */
const NonNegative = number('a non-negative number');
/** A percentage in [0, 100). */
export const Percent = z.number(must('a percentage in [0, 100)')).min(0, must('a percentage in [0, 100)')).lt(100, must('a percentage in [0, 100)'));
const Switch = z.boolean(must('true or false'));

/** One of a fixed set of names; the message lists them. */
export const oneOf = <T extends string>(what: string, valid: readonly T[]) =>
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

export const PresetName = oneOf('preset', PRESET_NAMES);
/** Why a `--preset` value is refused, naming the workload or preset at fault. */
const presetError = (iss: { code?: string; input?: unknown; keys?: string[] }): string => {
  const v = iss.input;
  if (iss.code === 'unrecognized_keys') return `unknown workload ${show(iss.keys?.[0])} in workload=preset; valid workloads: ${FAMILY_NAMES.join(', ')}`;
  if (typeof v === 'string') return `unknown preset ${show(v)}; valid presets: ${PRESET_NAMES.join(', ')}; or one per workload: ${PRESET_PER_FAMILY_EXAMPLE}`;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (!(FAMILY_NAMES as readonly string[]).includes(k))
        return `unknown workload ${show(k)} in workload=preset; valid workloads: ${FAMILY_NAMES.join(', ')}`;
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
const PresetChoice = z.union([PresetName, z.partialRecord(z.enum(FAMILY_NAMES), PresetName, { error: presetError })], {
  error: presetError,
});

const ParamValue = z.union([z.number(), z.string(), z.array(z.number())], must('a number, a string or a list of numbers'));

/** How a flag's text becomes the value a config file would hold: numbers where the text is one, lists split at commas. */
export const asNumber = (text: string): unknown => (/^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(text) ? Number(text) : text);
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

/** A commander argument parser for a value judged by `schema` (text converted by `fromText`): one-line InvalidArgumentError on a bad value. */
export function parserOf<S extends z.ZodType>(schema: S, fromText: (text: string) => unknown = asText): (text: string) => z.infer<S> {
  return (text: string) => {
    const r = schema.safeParse(fromText(text));
    // The flag and its whole text head commander's message, so only the problem follows.
    if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? 'invalid');
    return r.data;
  };
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

const unique = <T>(v: readonly T[] | undefined): T[] => [...new Set(v ?? [])];

// ---------------------------------------------------------------------------------------------
// What an entry of the table says.

/** The measurement preset of a run. */
export type { MeasurePreset };

/** What a flag's `from` may know besides its own value. */
export interface FlagContext {
  /** The measurement preset in effect (`--quick`, `--rigorous` or neither). */
  measurePreset: MeasurePreset;
  /** Whether the flag of this name was given, on the command line or in the config file. */
  given(name: string): boolean;
  /** Whether the run does this task (`--tasks`, or its default). */
  runs(task: Task): boolean;
}

/**
 * The fields of run.json's `config` that no one flag owns: harness/run/config.ts computes them
 * from several flags together (the measurement preset and the flags that override its settings;
 * each workload's preset from --preset and --size) or from whether --engines was given.
 */
export const SHARED_CONFIG_FIELDS = {
  /**
   * The engines were the default list, not named: a run leaves out those not available here (or
   * not on its device) instead of giving them skipped cells, and stores the engines it ran.
   */
  onlyAvailable: z.boolean().optional(),
  /** Each workload's preset (runs before per-workload presets held one name for all; they are read as this). */
  preset: z.record(z.string(), z.string()),
  /** `--size`: the size class the workloads without a `--preset` of their own took their preset from. */
  size: z.enum(SIZES).optional(),
  measure: MeasureSettingsSchema,
  /** Measurement preset: quick, default or rigorous (explicit flags override it). */
  measurePreset: z.enum(MEASURE_PRESET_NAMES).optional(),
};
/** A path of a shared field, as the resume check names it. */
export type SharedConfigPath = Exclude<keyof typeof SHARED_CONFIG_FIELDS, 'measure'> | `measure.${keyof MeasureSettings}`;

/** A flag with a run.json `config` field of its own: its name, its schema there, and its value from the flag's (undefined when not given). */
export interface OwnField<V = unknown> {
  field: string;
  stored: z.ZodType;
  from(value: V | undefined, context: FlagContext): unknown;
}
/**
 * What a flag does to the results, and so whether a resume must match it; one of three, so that a
 * flag that changes results without a field a resume compares cannot be written:
 * - its own run.json `config` field (OwnField), which a resume compares;
 * - `sets`: shared fields (SHARED_CONFIG_FIELDS) it changes together with other flags, which a resume compares;
 * - `none`: why it changes no result (where the output goes, how it is printed); a resume lets it differ.
 * A flag with a field of its own is the one entry; one that sets shared fields also needs its part
 * in computing them (harness/run/config.ts runSettings), as those flags together decide them.
 */
export type FlagResults<V = unknown> = OwnField<V> | { sets: readonly [SharedConfigPath, ...SharedConfigPath[]] } | { none: string };

/** A config file key: the schema of its value as a file holds it, how a flag's text becomes such a value (absent for switches), and one line for the JSON Schema. */
export interface FileKey<S extends z.ZodType = z.ZodType> {
  schema: S;
  fromText?: (text: string) => unknown;
  doc: string;
}

/** A commander default: a value with, optionally, how --help shows it; or one computed when the program is built, with how the reference shows it. */
export type FlagDefault = { value: unknown; help?: string } | { compute: () => unknown; doc: string };

/** One flag of `fwbench run`. */
export interface RunFlagSpec<S extends z.ZodType = z.ZodType, R extends FlagResults<z.output<S>> = FlagResults> {
  /** The value's name in --help (`<list>`); absent for a switch. */
  arg?: string;
  /** The --help text. */
  help: string;
  default?: FlagDefault;
  /** A commander parser of its own (given again, a flag adds to `previous`); default: the file key's rule. */
  parse?(text: string, previous: unknown): unknown;
  /** Its config file key; absent for a flag of the command line only. */
  file?: FileKey<S>;
  results: R;
}
/** A flag that a config file may set. */
export type FileRunFlagSpec<S extends z.ZodType = z.ZodType, R extends FlagResults<z.output<S>> = FlagResults> = RunFlagSpec<S, R> & { file: FileKey<S> };

/** Declares a flag of `fwbench run` (an entry of RUN_FLAGS). */
export function defineRunFlag<S extends z.ZodType, const R extends FlagResults<z.output<S>>>(spec: FileRunFlagSpec<S, R>): FileRunFlagSpec<S, R>;
export function defineRunFlag<const R extends FlagResults>(spec: RunFlagSpec<z.ZodNever, R> & { file?: undefined }): RunFlagSpec<z.ZodNever, R>;
export function defineRunFlag(spec: RunFlagSpec): RunFlagSpec {
  return spec;
}

/** A table of run flags, by name on the command line (without the dashes). */
export type RunFlagTable = Record<string, RunFlagSpec>;

// ---------------------------------------------------------------------------------------------
// The table.

/** Every flag of `fwbench run`, in --help's order. */
export const RUN_FLAGS = {
  config: defineRunFlag({
    arg: '<file>',
    help: 'YAML or JSON file whose keys are these flags without dashes (engines: [onnxruntime], batch-sizes: [1, 8], target-interval: 1); flags given here override it',
    results: { none: 'sets the other flags' },
  }),
  engines: defineRunFlag({
    arg: '<list>',
    help: `comma-separated engines (${ENGINE_IDS.join(', ')})`,
    default: { value: DEFAULT_ENGINES, help: `every engine available here but ${ENGINE_IDS.filter((id) => !DEFAULT_ENGINES.includes(id)).join(', ')}` },
    file: { schema: nameList('engine', ENGINE_IDS), fromText: asList, doc: 'engines to run' },
    results: { field: 'engines', stored: z.array(z.string()), from: (v) => unique(v).map((e) => getEngine(e).id) },
  }),
  workloads: defineRunFlag({
    arg: '<list>',
    help: `comma-separated workloads (${FAMILY_NAMES.join(', ')})`,
    default: { value: [...FAMILY_NAMES], help: "every family that does one of the run's tasks" },
    file: {
      schema: nameList('workload', FAMILY_NAMES),
      fromText: asList,
      doc: "workload families to run (default: every family that does one of the run's tasks)",
    },
    results: {
      field: 'workloads',
      stored: z.array(z.enum(FAMILY_NAMES)),
      from: (v, c) =>
        c.given('workloads') ? unique(v).map((w) => getFamily(w).name) : FAMILY_NAMES.filter((f) => familyTasks(FAMILIES[f]).some((t) => c.runs(t))),
    },
  }),
  tasks: defineRunFlag({
    arg: '<list>',
    help: `comma-separated tasks (${TASKS.join(', ')}): inference times a forward pass; training times one optimizer step (forward, cross-entropy, backward, SGD with momentum and weight decay; docs/training.md), after its losses, gradients and updates match a float64 PyTorch reference; generate times greedy text generation by the decoder family (time to first token, time per output token; docs/generation.md), after its token ids and every step's logits match the reference`,
    default: { value: ['inference'] },
    file: { schema: nameList('task', TASKS), fromText: asList, doc: `tasks to run (${TASKS.join(', ')})` },
    results: { field: 'tasks', stored: z.array(z.enum(TASKS)).optional(), from: (v) => (v ? unique(v) : undefined) },
  }),
  shapes: defineRunFlag({
    arg: '<list>',
    help: `comma-separated input shapes (${SHAPES.join(', ')}): fixed runs every call at the preset's shape; stream runs a seeded stream of ${STREAM.batches} batches whose rows have different lengths (rnn and transformer), padded by each of --paddings, masked, checked on every batch against the unpadded rows and timed as a whole, compilations counted (docs/shapes.md)`,
    default: { value: ['fixed'] },
    file: { schema: nameList('shape', SHAPES), fromText: asList, doc: 'input shapes to run (fixed, stream)' },
    results: { field: 'shapes', stored: z.array(z.enum(SHAPES)).optional(), from: (v) => (v ? unique(v) : undefined) },
  }),
  paddings: defineRunFlag({
    arg: '<list>',
    help: `comma-separated padding strategies of stream cells (${PADDINGS.join(', ')}): exact pads a batch to its longest row, bucket to the next power-of-two length (and the preset's), max to the preset's length`,
    default: { value: [...PADDINGS] },
    file: { schema: nameList('padding', PADDINGS), fromText: asList, doc: 'padding strategies of stream cells (exact, bucket, max)' },
    results: { field: 'paddings', stored: z.array(z.enum(PADDINGS)).optional(), from: (v) => (v ? unique(v) : undefined) },
  }),
  'prompt-len': defineRunFlag({
    arg: '<list>',
    help: `prompt tokens per row of a generation cell (--tasks generate), or a comma-separated list to sweep (default ${GENERATE.promptLength})`,
    default: { value: [GENERATE.promptLength] },
    file: {
      schema: z
        .array(PositiveIntUpTo(FLAG_MAX.tokens), must('a list of positive integers'))
        .min(1, { error: () => 'empty prompt length list; give positive integers' }),
      fromText: asNumberList,
      doc: `prompt lengths of generation cells, each up to ${FLAG_MAX.tokens} (default [${GENERATE.promptLength}])`,
    },
    results: {
      field: 'promptLengths',
      stored: z.array(z.number().int()).optional(),
      from: (v, c) => (c.runs('generate') ? unique(v) : undefined),
    },
  }),
  'new-tokens': defineRunFlag({
    arg: '<n>',
    help: `tokens each row of a generation cell generates, the prefill's first one included (default ${GENERATE.newTokens})`,
    default: { value: GENERATE.newTokens },
    file: {
      schema: PositiveIntUpTo(FLAG_MAX.tokens),
      fromText: asNumber,
      doc: `tokens generated per row, up to ${FLAG_MAX.tokens} (default ${GENERATE.newTokens})`,
    },
    results: { field: 'newTokens', stored: z.number().int().optional(), from: (v, c) => (c.runs('generate') ? v : undefined) },
  }),
  cache: defineRunFlag({
    arg: '<list>',
    help: `comma-separated caches of generation cells (${CACHES.join(', ')}): kv keeps each layer's keys and values (each framework's idiom: a growing cache, or a preallocated one for compiled graphs); none recomputes the whole sequence every step, the baseline that measures what the cache buys (docs/generation.md)`,
    default: { value: [...CACHES] },
    file: { schema: nameList('cache', CACHES), fromText: asList, doc: 'caches of generation cells (kv, none)' },
    results: { field: 'caches', stored: z.array(z.enum(CACHES)).optional(), from: (v, c) => (c.runs('generate') ? unique(v) : undefined) },
  }),
  precision: defineRunFlag({
    arg: '<list>',
    help: `comma-separated number formats (${PRECISIONS.join(', ')}): ${PRECISIONS.map((p) => `${p} ${PRECISION[p].doc}`).join('; ')}. Each engine uses its own mechanism (fwbench list), proves the precision it computed in, and is judged against the fp32 reference by the precision's relative-L2 and top-1 gates; a combination an engine cannot do is skipped with the reason (docs/precision.md)`,
    default: { value: ['fp32'] },
    file: { schema: nameList('precision', PRECISIONS), fromText: asList, doc: 'number formats to run (fp32, bf16, fp16, tf32, int8)' },
    results: { field: 'precisions', stored: z.array(z.enum(PRECISIONS)).optional(), from: (v) => (v ? unique(v) : undefined) },
  }),
  modes: defineRunFlag({
    arg: '<list>',
    help: `comma-separated execution modes (e.g. eager,compile), or 'all' for every mode of every engine; default: ${ENGINE_IDS.filter(
      (id) => ENGINES[id].defaultModes,
    )
      .map((id) => `${ENGINES[id].defaultModes!.join(' and ')} of ${id}`)
      .join(', ')}, the first mode of the others; an engine with none of the listed modes runs its first`,
    file: {
      schema: z.union(
        [
          z.literal('all'),
          z
            .array(z.string(must('a mode name')).min(1, must('a mode name')), must("a list of mode names or 'all'"))
            .min(1, { error: () => "empty mode list; give mode names (see fwbench list) or 'all'" }),
        ],
        must("a list of mode names or 'all'"),
      ),
      fromText: (t) => (t.trim() === 'all' ? 'all' : asList(t)),
      doc: "execution modes (e.g. [eager, compile]) or 'all'",
    },
    results: {
      field: 'modes',
      /** `--modes`: mode names or 'all'; absent = each engine's default modes. */
      stored: z.union([z.literal('all'), z.array(z.string())]).optional(),
      // [all] in a file is the flag's `--modes all`.
      from: (v) => (Array.isArray(v) ? (v.length === 1 && v[0] === 'all' ? 'all' : unique(v)) : v),
    },
  }),
  preset: defineRunFlag({
    arg: '<presets>',
    help: `preset of every workload (${PRESET_NAMES.join(', ')}), or one per workload (${PRESET_PER_FAMILY_EXAMPLE}); workloads it does not name take their --size preset`,
    file: {
      schema: PresetChoice,
      fromText: asPreset,
      doc: `preset of every workload (must exist for each), or one per workload (${PRESET_PER_FAMILY_EXAMPLE}); overrides size`,
    },
    results: { sets: ['preset'] },
  }),
  size: defineRunFlag({
    arg: '<class>',
    help: `size class of every workload's preset (${SIZES.join(', ')}); default small (${PRESET_PER_FAMILY_EXAMPLE}), tiny with --quick`,
    file: {
      schema: oneOf('size', SIZES),
      fromText: asText,
      doc: 'size class of every workload: tiny, small (resnet18, rnn small, bert-mini) or base (resnet50, rnn large, bert-base); default small, tiny with quick',
    },
    results: { sets: ['preset'] },
  }),
  'batch-sizes': defineRunFlag({
    arg: '<list>',
    help: 'comma-separated batch sizes',
    default: { value: [1, 8], help: '1,8; 1 with --quick' },
    file: {
      schema: z
        .array(PositiveIntUpTo(FLAG_MAX.batchSize), must('a list of positive integers'))
        .min(1, { error: () => 'empty batch size list; give positive integers' }),
      fromText: asNumberList,
      doc: `batch sizes, each up to ${FLAG_MAX.batchSize} (default [1, 8]; [1] with quick)`,
    },
    results: {
      field: 'batchSizes',
      stored: z.array(z.number().int()),
      // --quick is a smoke run: batch 1 unless batch sizes are given.
      from: (v, c) => (c.measurePreset === 'quick' && !c.given('batch-sizes') ? [1] : unique(v)),
    },
  }),
  out: defineRunFlag({
    arg: '<dir>',
    help: 'output folder for cells.jsonl and run.json',
    default: { compute: () => `results/run-${new Date().toISOString().replace(/[:.]/g, '-')}`, doc: 'results/run-DATE' },
    file: { schema: z.string(must('a folder path')).min(1, must('a folder path')), fromText: asText, doc: 'output folder for cells.jsonl and run.json' },
    results: { none: 'where the run is written' },
  }),
  set: defineRunFlag({
    arg: '<key=value,...>',
    help: 'override workload parameters, e.g. seq=37,hidden=96,heads=3 (list values continue after commas: depths=1,1,2,1)',
    default: { value: [] },
    parse: (text, previous) => [...(previous as Array<[string, string]>), ...parseSetText(text)],
    file: {
      schema: z.union([z.string(), z.record(z.string(), ParamValue)], must("a mapping of workload parameters (seq: 37) or 'key=value,...' text")),
      fromText: asText,
      doc: "workload parameter overrides: a mapping (seq: 37, depths: [1, 1, 2, 1]) or the flag's 'key=value,...' text",
    },
    results: { field: 'sets', stored: z.array(z.tuple([z.string(), z.string()])), from: (v: unknown) => setPairs(v) },
  }),
  device: defineRunFlag({
    arg: '<device>',
    help: `device for every cell (${DEVICES.join(', ')})`,
    default: { value: 'cpu' },
    file: { schema: oneOf('device', DEVICES), fromText: asText, doc: 'device of every cell' },
    results: { field: 'device', stored: z.enum(DEVICES), from: (v) => v },
  }),
  threads: defineRunFlag({
    arg: '<list>',
    help: 'intra-op threads, or a comma-separated list to sweep (each count is a matrix dimension: every cell runs at each); default: physical cores, capped at the CPUs allowed',
    file: {
      schema: z.union(
        [
          PositiveIntUpTo(FLAG_MAX.threads),
          z
            .array(PositiveIntUpTo(FLAG_MAX.threads), must('a positive integer or a list of them'))
            .min(1, { error: () => 'empty threads list; give positive integers' }),
        ],
        must('a positive integer or a list of them'),
      ),
      fromText: asNumberOrList,
      doc: 'intra-op threads of every engine, or a list to sweep (each count a matrix dimension); default: physical cores, capped at the CPUs allowed',
    },
    results: {
      field: 'threads',
      /** `--threads`: the intra-op thread counts, one matrix dimension (each cell runs with one); a single number (older runs) reads as a list of one. */
      stored: z.union([
        z.array(z.number().int().min(1)).min(1),
        z
          .number()
          .int()
          .min(1)
          .transform((n) => [n]),
      ]),
      from: async (v) => unique(v === undefined ? [await defaultThreads()] : [v].flat()),
    },
  }),
  seed: defineRunFlag({
    arg: '<n>',
    help: 'seed of weights and inputs',
    default: { value: 0 },
    file: { schema: NonNegativeInt, fromText: asNumber, doc: 'seed of weights and inputs' },
    results: { field: 'seed', stored: z.number().int(), from: (v) => v },
  }),
  quick: defineRunFlag({
    help: `smoke run: --size tiny and batch 1 unless given, measured with ±${QUICK_MEASURE.targetInterval * 100} % target, >= ${QUICK_MEASURE.minSamples} samples, ${QUICK_MEASURE.minTimeMs}-${QUICK_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.quick} process per cell`,
    file: { schema: Switch, doc: 'smoke run: size tiny and batch 1 unless given, measured to ±5 % in short loops' },
    results: { sets: ['measurePreset'] },
  }),
  rigorous: defineRunFlag({
    help: `measurement preset: ±${RIGOROUS_MEASURE.targetInterval * 100} % target, >= ${RIGOROUS_MEASURE.minSamples} samples (p99), ${RIGOROUS_MEASURE.minTimeMs}-${RIGOROUS_MEASURE.maxTimeMs} ms, ${PRESET_REPLICATES.rigorous} processes per cell`,
    file: { schema: Switch, doc: 'measurement preset rigorous (±0.5 %, >= 662 samples, 5 processes per cell)' },
    results: { sets: ['measurePreset'] },
  }),
  'target-interval': defineRunFlag({
    arg: '<pct>',
    help: `stop once the 95 % interval of the median is within ±PCT % of it (default ${DEFAULT_MEASURE.targetInterval * 100}; 0 = run to --max-time)`,
    file: { schema: NonNegative, fromText: asNumber, doc: 'stop once the 95 % interval of the median is within ±this % of it (0 = run to max-time)' },
    results: { sets: ['measure.targetInterval'] },
  }),
  replicates: defineRunFlag({
    arg: '<n>',
    help: `fresh worker processes per cell, interleaved across cells (default ${PRESET_REPLICATES.default})`,
    file: { schema: PositiveIntUpTo(FLAG_MAX.replicates), fromText: asNumber, doc: `fresh worker processes per cell (up to ${FLAG_MAX.replicates})` },
    results: {
      field: 'replicates',
      /** Worker processes per cell, run round-robin across the cells of a (workload, batch) group (absent = 1). */
      stored: z.number().int().min(1).optional(),
      from: (v, c) => v ?? PRESET_REPLICATES[c.measurePreset],
    },
  }),
  'rerun-contended': defineRunFlag({
    arg: '<n>',
    help: `re-run a replicate whose timed loop other processes contended (a busy machine; docs/methodology.md), up to N more processes per cell (default ${DEFAULT_CONTENDED_RERUNS}); a cell with no clean replicate is unstable`,
    file: {
      schema: NonNegativeInt.max(FLAG_MAX.replicates, must(`a non-negative integer up to ${FLAG_MAX.replicates}`)),
      fromText: asNumber,
      doc: `more processes per cell to replace contended replicates (up to ${FLAG_MAX.replicates})`,
    },
    results: {
      field: 'contendedReruns',
      /** `--rerun-contended`: how many more processes a cell may get to replace contended replicates (absent: runs before contention was judged). */
      stored: z.number().int().min(0).optional(),
      from: (v) => v ?? DEFAULT_CONTENDED_RERUNS,
    },
  }),
  'wait-idle': defineRunFlag({
    arg: '[seconds]',
    help: `before the first cell, wait until other processes leave the machine quiet, at most SECONDS (default ${DEFAULT_WAIT_IDLE_S}); then start anyway, with a warning`,
    file: {
      schema: NonNegative.max(FLAG_MAX.timeoutS, must(`a non-negative number of seconds up to ${FLAG_MAX.timeoutS}`)),
      fromText: asNumber,
      doc: `before the first cell, wait at most this many seconds for a quiet machine (up to ${FLAG_MAX.timeoutS})`,
    },
    results: { none: 'when the run starts, not how it measures' },
  }),
  'min-samples': defineRunFlag({
    arg: '<n>',
    help: `timed loop: at least this many samples (default ${DEFAULT_MEASURE.minSamples}: p90 needs 64, p99 662)`,
    file: {
      schema: PositiveIntUpTo(FLAG_MAX.minSamples),
      fromText: asNumber,
      doc: `timed loop: at least this many samples (up to ${FLAG_MAX.minSamples})`,
    },
    results: { sets: ['measure.minSamples'] },
  }),
  'min-time': defineRunFlag({
    arg: '<ms>',
    help: `timed loop: at least this long (ms, default ${DEFAULT_MEASURE.minTimeMs})`,
    file: { schema: MsUpTo(FLAG_MAX.timeMs), fromText: asNumber, doc: `timed loop: at least this long (ms, up to ${FLAG_MAX.timeMs}; not above max-time)` },
    results: { sets: ['measure.minTimeMs'] },
  }),
  'max-time': defineRunFlag({
    arg: '<ms>',
    help: `timed loop: at most this long (ms, default ${DEFAULT_MEASURE.maxTimeMs})`,
    file: { schema: MsUpTo(FLAG_MAX.timeMs), fromText: asNumber, doc: `timed loop: at most this long (ms, up to ${FLAG_MAX.timeMs})` },
    results: { sets: ['measure.maxTimeMs'] },
  }),
  'warmup-max-time': defineRunFlag({
    arg: '<ms>',
    help: `warm-up: at most this long (ms, default ${DEFAULT_MEASURE.warmupMaxMs})`,
    file: { schema: MsUpTo(FLAG_MAX.timeMs), fromText: asNumber, doc: `warm-up: at most this long (ms, up to ${FLAG_MAX.timeMs})` },
    results: { sets: ['measure.warmupMaxMs'] },
  }),
  timeout: defineRunFlag({
    arg: '<s>',
    help: "kill a cell's worker after this many seconds",
    default: { value: 600 },
    file: {
      schema: PositiveIntUpTo(FLAG_MAX.timeoutS),
      fromText: asNumber,
      doc: `kill a cell's worker after this many seconds (up to ${FLAG_MAX.timeoutS})`,
    },
    results: { field: 'cellTimeoutMs', stored: z.number(), from: (v) => v! * 1000 },
  }),
  json: defineRunFlag({
    help: 'print run.json on stdout instead of the summary table',
    file: { schema: Switch, doc: 'print run.json on stdout instead of the summary table' },
    results: { none: 'how the run is printed' },
  }),
  resume: defineRunFlag({
    arg: '<dir>',
    help: 'continue the interrupted or killed run in DIR: run only its missing cells, with its configuration (flags given again must match it)',
    results: { none: 'names the run to continue, whose configuration the flags given must match' },
  }),
  'max-memory-mb': defineRunFlag({
    arg: '<n>',
    help: "cap each cell worker's private memory (RLIMIT_DATA via prlimit; Node workers also get V8's heap limit); running past it is an out-of-memory cell, and a batch-size sweep stops there",
    file: {
      schema: PositiveIntUpTo(FLAG_MAX.memoryMb),
      fromText: asNumber,
      doc: `cap each cell worker's private memory (MiB, up to ${FLAG_MAX.memoryMb}; RLIMIT_DATA, and V8's heap limit for Node workers)`,
    },
    results: {
      field: 'maxMemoryMb',
      /** `--max-memory-mb`: cap on each cell worker's private memory (absent = no cap). */
      stored: z.number().int().min(1).optional(),
      from: (v) => v,
    },
  }),
};

// ---------------------------------------------------------------------------------------------
// What comes from a table.

/** The flags of a table that a config file may set. */
export type FileFlagOf<T> = { [K in keyof T]: T[K] extends { file: FileKey } ? K : never }[keyof T] & string;
/** A flag a config file may set (a key of the config file). */
export type RunFlag = FileFlagOf<typeof RUN_FLAGS>;

/** The flags of a table a config file may set, in the table's order. */
export const fileFlagNames = <T extends RunFlagTable>(table: T): Array<FileFlagOf<T>> =>
  Object.keys(table).filter((k) => table[k]!.file !== undefined) as Array<FileFlagOf<T>>;
/** The config file's keys. */
export const RUN_FLAG_NAMES: RunFlag[] = fileFlagNames(RUN_FLAGS);

/** Commander's name of a flag's value (`batch-sizes` -> `batchSizes`). */
export const camel = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The commander options of `fwbench run`, in the table's order. */
export function runOptions(table: RunFlagTable = RUN_FLAGS): Option[] {
  return Object.entries(table).map(([name, f]) => {
    const option = new Option(`--${name}${f.arg ? ` ${f.arg}` : ''}`, f.help);
    const parse = f.parse ?? (f.arg && f.file ? parserOf(f.file.schema, f.file.fromText) : undefined);
    if (parse) option.argParser(parse);
    if (f.default && 'compute' in f.default) option.default(f.default.compute());
    else if (f.default) option.default(f.default.value, f.default.help);
    return option;
  });
}

/** The commander parser of a run flag. */
export const runFlag = <K extends RunFlag>(key: K): ((text: string) => z.infer<(typeof RUN_FLAGS)[K]['file']['schema']>) => {
  const f: FileKey = RUN_FLAGS[key].file;
  return parserOf(f.schema, f.fromText) as (text: string) => z.infer<(typeof RUN_FLAGS)[K]['file']['schema']>;
};

/** The config file's schema: any subset of a table's file keys, nothing else. */
export function configFileSchema<T extends RunFlagTable>(table: T) {
  return z
    .object(
      Object.fromEntries(fileFlagNames(table).map((k) => [k, table[k]!.file!.schema.optional().describe(table[k]!.file!.doc)])) as {
        [K in FileFlagOf<T>]: T[K] extends { file: FileKey<infer S extends z.ZodType> } ? z.ZodOptional<S> : never;
      },
    )
    .strict();
}

/** The run.json `config` fields of a table's flags that have their own. */
type OwnFieldsOf<T> = {
  [K in keyof T as T[K] extends { results: { field: infer F extends string } } ? F : never]: T[K] extends { results: { stored: infer S extends z.ZodType } }
    ? S
    : never;
};

/**
 * The order of run.json's `config` fields as runs wrote them before this table: kept, so that
 * run.json and its schema stay as they were. A field not listed here (a new flag's) follows these
 * in the table's order; nothing else depends on this list.
 */
const CONFIG_FIELD_ORDER = [
  'engines',
  'onlyAvailable',
  'workloads',
  'preset',
  'size',
  'batchSizes',
  'modes',
  'sets',
  'device',
  'threads',
  'seed',
  'measure',
  'replicates',
  'measurePreset',
  'cellTimeoutMs',
  'maxMemoryMb',
];

/** The fields of run.json's `config` for a table: the shared ones and each flag's own, in run.json's order; two flags with one field are refused. */
export function runConfigShape<T extends RunFlagTable>(table: T): typeof SHARED_CONFIG_FIELDS & OwnFieldsOf<T> {
  const fields: Record<string, z.ZodType> = { ...SHARED_CONFIG_FIELDS };
  for (const [name, f] of Object.entries(table)) {
    if (!('field' in f.results)) continue;
    if (f.results.field in fields) throw new Error(`run flag --${name}: run.json config field '${f.results.field}' is already another's`);
    fields[f.results.field] = f.results.stored;
  }
  const order = [...CONFIG_FIELD_ORDER.filter((k) => k in fields), ...Object.keys(fields).filter((k) => !CONFIG_FIELD_ORDER.includes(k))];
  return Object.fromEntries(order.map((k) => [k, fields[k]])) as typeof SHARED_CONFIG_FIELDS & OwnFieldsOf<T>;
}

/** The schema of run.json's `config` for a table. */
export const runConfigSchema = <T extends RunFlagTable>(table: T) => z.object(runConfigShape(table));

/**
 * What a resume compares for a flag given (by commander's name, `batchSizes`): the flag as
 * messages name it (`--batch-sizes`) and the run.json `config` paths it changes, its own field or
 * the shared ones it sets; none for a flag that changes no result. A name that is no flag of the
 * table is the caller's bug, and throws.
 */
export function resumeCheck(table: RunFlagTable, option: string): { flag: string; fields: readonly string[] } {
  const name = Object.keys(table).find((k) => camel(k) === option);
  if (name === undefined) throw new Error(`'${option}' is not a run flag`);
  const r = table[name]!.results;
  return { flag: `--${name}`, fields: 'field' in r ? [r.field] : 'sets' in r ? r.sets : [] };
}

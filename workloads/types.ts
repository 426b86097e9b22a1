/** Framework-neutral description of a workload family: parameters, canonical weights, inputs, FLOPs. */

/** Element types used in tensor files (safetensors dtype names); F64 only in training references. */
export type DType = 'F32' | 'I32' | 'F64';

/** How a canonical weight tensor is filled from the seed. */
export type Init = { kind: 'normal'; mean?: number; std: number } | { kind: 'uniform'; low: number; high: number };

/** One canonical weight tensor: its name, shape (canonical layout) and initialisation. */
export interface WeightSpec {
  /** Canonical name, e.g. `layer1.0.conv1.weight`. */
  name: string;
  /** Shape in the canonical layout (documented per family). */
  shape: number[];
  /** Deterministic initialisation rule. */
  init: Init;
}

/** How an input tensor is filled, per sample, from the seed. */
export type InputInit = { kind: 'normal'; std: number } | { kind: 'tokens'; vocab: number };

/** One model input. The leading dimension is always the batch. */
export interface InputSpec {
  /** Input name shared by every engine (`images` or `tokens`). */
  name: string;
  /** Full shape including the batch dimension. */
  shape: number[];
  /** Element type. */
  dtype: DType;
  /** Fill rule. */
  init: InputInit;
}

/** A parameter value: integers, enumerations, or integer lists (e.g. stage depths). */
export type ParamValue = number | string | number[];
/** Resolved parameters of one workload instance. */
export type Params = Record<string, ParamValue>;

/** Declares one parameter: its kind, its documentation and its allowed range. */
export interface ParamDef {
  /** Key used with `--set key=value`. */
  name: string;
  /** `int` (>= min), `float` (> 0), `enum` (one of choices) or `int-list` (each >= min). */
  kind: 'int' | 'float' | 'enum' | 'int-list';
  /** One-line meaning. */
  doc: string;
  /** Smallest allowed value for ints and list items. */
  min?: number;
  /** Allowed values for enums. */
  choices?: string[];
}

/** A family of models (cnn, rnn, transformer) with named presets. */
export interface WorkloadFamily {
  /** Family id used on the command line. */
  name: FamilyName;
  /** One line for `fwbench list`. */
  description: string;
  /** The overridable parameters. */
  params: ParamDef[];
  /** Named parameter sets; `tiny` exists for every family. */
  presets: Record<string, Params>;
  /** The preset of each size class, so one `--size` picks comparable models across families. */
  sizes: Record<Size, string>;
  /** Cross-field checks (e.g. heads divides hidden); returns an error message or undefined. */
  check(p: Params): string | undefined;
  /** Canonical weights in a fixed order. */
  weights(p: Params): WeightSpec[];
  /** Inputs for a batch. */
  inputs(p: Params, batch: number): InputSpec[];
  /** Output (logits) shape for a batch. */
  outputShape(p: Params, batch: number): number[];
  /** Analytic FLOPs of one forward pass of ONE sample (2 per multiply-add; conv/matmul only). */
  flopsPerSample(p: Params): number;
  /**
   * The parameter that is the model's sequence length (`seq`), for families whose inputs are token
   * sequences: a shape stream (workloads/shapes.ts) varies it up to the preset's value, and the model
   * then takes each row's real length with the tokens (`lengths`). Absent: the family has no stream.
   */
  lengthParam?: string;
  /** The tasks the family's models do (absent: inference and training); a cell of another task is skipped with the reason. */
  tasks?: readonly Task[];
  /** Why the model cannot train at this batch size and what would let it (the cell is skipped with both), or undefined; optional. */
  trainingProblem?(p: Params, batch: number): { reason: string; fix: string } | undefined;
}

/** The workload families' names, in display order: the one list (workloads/index.ts FAMILIES must define each; the manifest publishes it to Python). */
export const FAMILY_NAMES = ['cnn', 'rnn', 'transformer', 'decoder'] as const;
/** A workload family's name. */
export type FamilyName = (typeof FAMILY_NAMES)[number];

/**
 * What a cell does with its model: `inference` (a forward pass with readback: every run so far),
 * `training` (one optimizer step: forward, loss, backward, update; workloads/training.ts) or
 * `generate` (greedy generation of new tokens after a prompt, with or without a key/value cache;
 * workloads/generate.ts). The one list: the run flag, run.json, the protocol, the reports and the
 * Python side read it.
 */
export const TASKS = ['inference', 'training', 'generate'] as const;
/** A task. */
export type Task = (typeof TASKS)[number];

/** The tasks of a family's models (WorkloadFamily.tasks; absent: inference and training). */
export const familyTasks = (f: Pick<WorkloadFamily, 'tasks'>): readonly Task[] => f.tasks ?? ['inference', 'training'];

/**
 * Size classes that span families: `tiny` (smoke tests, sub-millisecond), `small` (models the size
 * of ResNet-18, a 2x256 LSTM, BERT-mini: the default run), `base` (ResNet-50, a 2x1024 LSTM,
 * BERT-base).
 */
export const SIZES = ['tiny', 'small', 'base'] as const;
/** A size class. */
export type Size = (typeof SIZES)[number];

/** Typed accessors: parameters are validated before use, so these only narrow types. */
export const int = (p: Params, k: string): number => p[k] as number;
export const str = (p: Params, k: string): string => p[k] as string;
export const ints = (p: Params, k: string): number[] => p[k] as number[];

import { InputError } from '../harness/errors.js';
import { cnn } from './cnn.js';
import { decoder } from './decoder.js';
import { rnn } from './rnn.js';
import { transformer } from './transformer.js';
import { FAMILY_NAMES, type FamilyName, type ParamDef, type Params, type ParamValue, type WorkloadFamily } from './types.js';

export * from './types.js';
export { PRECISION, PRECISIONS, type Precision, type PrecisionSpec, type ReducedPrecision } from './precision.js';
export { PADDINGS, SHAPES, STREAM, type Padding, type Shapes } from './shapes.js';
export { CACHES, GENERATE, type Cache, type Generation } from './generate.js';

/** All workload families, by name. */
export const FAMILIES: Record<FamilyName, WorkloadFamily> = { cnn, rnn, transformer, decoder };
export { FAMILY_NAMES };

/** Looks a family up by name, or throws an InputError listing the valid names. */
export function getFamily(name: string): WorkloadFamily {
  const f = (FAMILIES as Record<string, WorkloadFamily>)[name];
  if (!f) throw new InputError(`unknown workload '${name}'; valid workloads: ${FAMILY_NAMES.join(', ')}`);
  return f;
}

/**
 * Splits `--set` text into key/value pairs. Items are comma-separated; an item without `=`
 * continues the previous value, so list parameters read naturally: `depths=3,4,6,3,image=96`.
 */
export function parseSetText(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const raw of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const eq = raw.indexOf('=');
    if (eq > 0) pairs.push([raw.slice(0, eq).trim(), raw.slice(eq + 1).trim()]);
    else if (eq === -1 && pairs.length > 0) pairs[pairs.length - 1]![1] += `,${raw}`;
    else throw new InputError(`--set item '${raw}' is not key=value`);
  }
  return pairs;
}

function parseValue(def: ParamDef, family: string, text: string): ParamValue {
  const where = `--set ${def.name}=${text} (${family})`;
  const parseInt_ = (s: string): number => {
    if (!/^-?\d+$/.test(s)) throw new InputError(`${where}: '${s}' is not an integer; ${def.name} is ${def.doc}`);
    const v = Number(s);
    if (def.min !== undefined && v < def.min) throw new InputError(`${where}: must be >= ${def.min}; ${def.name} is ${def.doc}`);
    return v;
  };
  switch (def.kind) {
    case 'int':
      return parseInt_(text);
    case 'float': {
      const v = Number(text);
      if (!Number.isFinite(v) || v <= 0) throw new InputError(`${where}: must be a positive number`);
      return v;
    }
    case 'enum':
      if (!def.choices?.includes(text)) throw new InputError(`${where}: allowed values are ${def.choices?.join(', ')}`);
      return text;
    case 'int-list':
      return text.split(/[,:x]/).map(parseInt_);
  }
}

/** Most elements one weight or input tensor may have (2^28: 1 GiB of float32), so a typo in a size fails before anything is allocated. */
export const MAX_TENSOR_ELEMENTS = 2 ** 28;

/** Refuses parameters and a batch size whose weights or inputs would exceed MAX_TENSOR_ELEMENTS in one tensor. */
export function checkTensorSizes(family: WorkloadFamily, params: Params, batch: number): void {
  const tensors = [
    ...family.weights(params).map((s) => ({ ...s, what: 'weight' })),
    ...family.inputs(params, batch).map((s) => ({ ...s, what: `input at batch ${batch}` })),
  ];
  for (const t of tensors) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements > MAX_TENSOR_ELEMENTS) {
      const shown = Object.entries(params)
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`)
        .join(' ');
      throw new InputError(
        `${family.name} (${shown}): ${t.what} '${t.name}' [${t.shape.join('x')}] would hold ${elements.toExponential(2)} values; fwbench allows at most 2^28 (1 GiB of float32) per tensor: lower the batch size or the --set sizes`,
      );
    }
  }
}

/** Parameters of a family at a preset, with `--set` overrides applied and validated. */
export function resolveParams(family: WorkloadFamily, preset: string, sets: Array<[string, string]> = []): Params {
  const base = family.presets[preset];
  if (!base) {
    throw new InputError(`unknown preset '${preset}' for workload '${family.name}'; valid presets: ${Object.keys(family.presets).join(', ')}`);
  }
  const params: Params = { ...base };
  for (const [key, value] of sets) {
    const def = family.params.find((d) => d.name === key);
    if (!def) {
      throw new InputError(`unknown parameter '${key}' for workload '${family.name}'; valid parameters: ${family.params.map((d) => d.name).join(', ')}`);
    }
    params[key] = parseValue(def, family.name, value);
  }
  const problem = family.check(params);
  if (problem) throw new InputError(`invalid parameters for workload '${family.name}': ${problem}`);
  return params;
}

/**
 * Which presets a list of families can share: a preset name given for several families must exist
 * in each of them. Keys from `--set` that a family does not know are only an error if no family knows them.
 */
export function setsForFamily(family: WorkloadFamily, sets: Array<[string, string]>, allFamilies: WorkloadFamily[]): Array<[string, string]> {
  const known = new Set(family.params.map((d) => d.name));
  for (const [key] of sets) {
    if (!allFamilies.some((f) => f.params.some((d) => d.name === key))) {
      const valid = [...new Set(allFamilies.flatMap((f) => f.params.map((d) => d.name)))];
      throw new InputError(`unknown parameter '${key}' for workloads ${allFamilies.map((f) => f.name).join(', ')}; valid parameters: ${valid.join(', ')}`);
    }
  }
  return sets.filter(([key]) => known.has(key));
}

import type { Tensor, TensorMap } from '../../workloads/safetensors.js';
import { TRAIN_PARITY_TENSORS } from '../worker/protocol.js';

/**
 * Training parity: a training cell's parity steps against the float64 reference (PyTorch on the
 * CPU in float64, from the same weights, batch and labels). Three figures, each the relative L2
 * error of the engine's tensors against the reference's:
 * - `loss`: the vector of the losses of the K parity steps;
 * - `gradients`: the gradient of every trainable tensor at the first step (the largest error of any tensor);
 * - `updates`: every state tensor's update, after - before, after the first and after the last step
 *   (the largest error of any tensor). An update, not the weights themselves: a missing weight
 *   decay changes a weight by lr * wd * w, far below fp32 noise on the weight but 2-30 % of its update.
 */

/**
 * Tolerances on relative L2 by figure, for fp32 engines against the float64 reference, set from
 * measurement (docs/training.md): above the worst error of any correct engine x mode x family on
 * tiny and on the benchmark presets, below the error of the planted wrong optimizers.
 */
export const TRAINING_TOLERANCES = { loss: 1e-4, gradients: 1e-3, updates: 1e-2 } as const;
/** A figure of the comparison. */
export type TrainingFigureName = keyof typeof TRAINING_TOLERANCES;

/** What the reference expects, in the engine's layout (names and shapes as the engine writes them). */
export interface TrainingExpectation {
  losses: number[];
  /** Gradients at the first step, of the trainable tensors only. */
  grads: TensorMap;
  /** Updates (after - before) after the first step and after the last step, of every state tensor. */
  updateFirst: TensorMap;
  updateLast: TensorMap;
  /** The state before the first step (what the engine was built from), to turn its states into updates. */
  initial: TensorMap;
}

/** One figure: the largest relative L2 error and where it was. */
export interface TrainingFigure {
  relL2: number;
  tensor?: string;
  tolerance: number;
  pass: boolean;
}

/** The three figures, or why they could not be computed. */
export interface TrainingParity {
  steps: number;
  loss: TrainingFigure;
  gradients: TrainingFigure;
  updates: TrainingFigure;
  pass: boolean;
  problem?: string;
}

/** ||out - ref|| / ||ref|| over numbers read through `out(i)` and `ref(i)`; a zero reference counts as exact only when out is zero too. */
function relL2(n: number, ref: (i: number) => number, out: (i: number) => number): number {
  let d2 = 0;
  let r2 = 0;
  for (let i = 0; i < n; i++) {
    const r = ref(i);
    const d = out(i) - r;
    d2 += d * d;
    r2 += r * r;
  }
  if (!Number.isFinite(d2)) return NaN;
  if (r2 === 0) return d2 === 0 ? 0 : Infinity;
  return Math.sqrt(d2 / r2);
}

/** The largest error over the tensors of `expected`, each compared with `actual(name)`. */
function worst(expected: TensorMap, actual: (name: string, t: Tensor) => ((i: number) => number) | string, tolerance: number): TrainingFigure | string {
  let figure: TrainingFigure = { relL2: 0, tolerance, pass: true };
  for (const [name, t] of expected) {
    const out = actual(name, t);
    if (typeof out === 'string') return out;
    const e = relL2(t.data.length, (i) => t.data[i]!, out);
    if (!(e <= figure.relL2)) figure = { relL2: e, tensor: name, tolerance, pass: e < tolerance };
    if (Number.isNaN(figure.relL2)) break;
  }
  return figure;
}

/**
 * Compares an engine's parity steps (its losses, and its parity file's tensors: grad/NAME,
 * step1/NAME, stepK/NAME) with the reference's expectation.
 */
export function compareTraining(expect: TrainingExpectation, losses: number[], file: TensorMap): TrainingParity {
  const steps = expect.losses.length;
  const failed = (problem: string): TrainingParity => {
    const none = (tolerance: number): TrainingFigure => ({ relL2: NaN, tolerance, pass: false });
    return {
      steps,
      loss: none(TRAINING_TOLERANCES.loss),
      gradients: none(TRAINING_TOLERANCES.gradients),
      updates: none(TRAINING_TOLERANCES.updates),
      pass: false,
      problem,
    };
  };
  if (losses.length !== steps) return failed(`the engine reported ${losses.length} losses for ${steps} parity steps`);
  const lossErr = relL2(
    steps,
    (i) => expect.losses[i]!,
    (i) => losses[i]!,
  );
  const loss: TrainingFigure = { relL2: lossErr, tolerance: TRAINING_TOLERANCES.loss, pass: lossErr < TRAINING_TOLERANCES.loss };
  const tensor = (prefix: string, name: string, shape: number[]): Tensor | string => {
    const t = file.get(`${prefix}${name}`);
    if (!t) return `the engine's parity file has no ${prefix}${name}`;
    if (t.shape.join('x') !== shape.join('x')) return `${prefix}${name} has shape [${t.shape}], the reference [${shape}]`;
    return t;
  };
  const extra = [...file.keys()].find((k) => k.startsWith(TRAIN_PARITY_TENSORS.grad) && !expect.grads.has(k.slice(TRAIN_PARITY_TENSORS.grad.length)));
  if (extra) return failed(`the engine's parity file has ${extra}, which the reference does not train`);
  const gradients = worst(
    expect.grads,
    (name, ref) => {
      const t = tensor(TRAIN_PARITY_TENSORS.grad, name, ref.shape);
      return typeof t === 'string' ? t : (i) => t.data[i]!;
    },
    TRAINING_TOLERANCES.gradients,
  );
  if (typeof gradients === 'string') return failed(gradients);
  const update = (prefix: string, expected: TensorMap): TrainingFigure | string =>
    worst(
      expected,
      (name, ref) => {
        const t = tensor(prefix, name, ref.shape);
        const before = expect.initial.get(name);
        if (typeof t === 'string') return t;
        if (!before) return `no initial value of ${name}`;
        // In float64: the engine's fp32 weight minus the fp32 weight it started from.
        return (i) => t.data[i]! - before.data[i]!;
      },
      TRAINING_TOLERANCES.updates,
    );
  const first = update(TRAIN_PARITY_TENSORS.afterFirst, expect.updateFirst);
  if (typeof first === 'string') return failed(first);
  const last = update(TRAIN_PARITY_TENSORS.afterLast, expect.updateLast);
  if (typeof last === 'string') return failed(last);
  const [which, prefix] =
    last.relL2 > first.relL2 || Number.isNaN(last.relL2) ? [last, TRAIN_PARITY_TENSORS.afterLast] : [first, TRAIN_PARITY_TENSORS.afterFirst];
  const updates = which.tensor === undefined ? which : { ...which, tensor: `${prefix}${which.tensor}` };
  return { steps, loss, gradients, updates, pass: loss.pass && gradients.pass && updates.pass };
}

import type { Tensor, TensorMap } from '../../workloads/safetensors.js';
import { TRAIN_PARITY_TENSORS } from '../worker/protocol.js';

/**
 * Training parity: a training cell's parity steps against the float64 reference (PyTorch on the
 * CPU in float64, from the same weights, batch and labels). Three figures, each a relative L2
 * error over all the tensors of its kind together (a tensor whose true gradient is exactly zero,
 * such as attention's key bias, would make a per-tensor ratio meaningless), with the tensor that
 * contributes most of the error named:
 * - `loss`: the vector of the losses of the K parity steps;
 * - `gradients`: the gradient of every trainable tensor at the first step;
 * - `optimizer`: every update of every trainable tensor in the K steps against the recipe replayed
 *   on the engine's own gradients and weights (v <- g + wd w at the first step, mu v + g + wd w
 *   after; w <- w - lr v): the optimizer's arithmetic alone, free of the gradients' fp32 noise, so
 *   a missing or decoupled weight decay, a wrong rate or momentum shows at any model size;
 * - `updates`: every state tensor's update, after - before, after the first step and after the
 *   last (the worse of the two), against the reference's: a wrong momentum shows from the second step. An update, not the weights themselves: a missing weight decay
 *   moves a weight by lr * wd * w, far below fp32 noise on the weight but a large part of its update.
 *   Each element is forgiven the rounding an fp32 engine cannot avoid when it stores the weight,
 *   one unit in the last place of the weight per step: the update of an unused embedding row (lr *
 *   wd * w) is otherwise below fp32's resolution of the row.
 */

/**
 * Tolerances on relative L2 by figure, for fp32 engines against the float64 reference, set from
 * measurement (docs/training.md): above the worst error of any correct engine x mode x family,
 * below the errors of the planted wrong optimizers.
 */
export const TRAINING_TOLERANCES = { loss: 1e-5, gradients: 1e-2, optimizer: 1e-5, updates: 1e-3 } as const;

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
  /** The recipe's learning rate, momentum and weight decay (what the optimizer figure replays). */
  recipe: { learningRate: number; momentum: number; weightDecay: number };
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
  optimizer: TrainingFigure;
  updates: TrainingFigure;
  pass: boolean;
  problem?: string;
}

/** The spacing of float32 numbers at |x| (one unit in the last place). */
export function ulp32(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** ||out - ref|| / ||ref|| as sums kept per tensor, so the worst contributor can be named. */
class ErrorSum {
  private d2 = 0;
  private r2 = 0;
  private worstD2 = -1;
  private worstName: string | undefined;
  /** Adds a tensor: n elements, the reference's values, the engine's, and an allowance per element (subtracted from each difference). */
  add(name: string, n: number, ref: (i: number) => number, out: (i: number) => number, allowance: (i: number) => number = () => 0): void {
    let d2 = 0;
    for (let i = 0; i < n; i++) {
      const r = ref(i);
      const d = Math.max(0, Math.abs(out(i) - r) - allowance(i));
      d2 += Number.isNaN(d) ? NaN : d * d;
      this.r2 += r * r;
    }
    this.d2 += d2;
    if (!(d2 <= this.worstD2)) [this.worstD2, this.worstName] = [d2, name];
  }
  figure(tolerance: number): TrainingFigure {
    const relL2 = !Number.isFinite(this.d2) ? NaN : this.r2 === 0 ? (this.d2 === 0 ? 0 : Infinity) : Math.sqrt(this.d2 / this.r2);
    return { relL2, ...(this.worstName !== undefined && this.d2 > 0 ? { tensor: this.worstName } : {}), tolerance, pass: relL2 < tolerance };
  }
}

/**
 * Compares an engine's parity steps (its losses, and its parity file's tensors: grad<k>/NAME and
 * step<k>/NAME for k = 1..K) with the reference's expectation.
 */
export function compareTraining(expect: TrainingExpectation, losses: number[], file: TensorMap): TrainingParity {
  const steps = expect.losses.length;
  const failed = (problem: string): TrainingParity => {
    const none = (tolerance: number): TrainingFigure => ({ relL2: NaN, tolerance, pass: false });
    return {
      steps,
      loss: none(TRAINING_TOLERANCES.loss),
      gradients: none(TRAINING_TOLERANCES.gradients),
      optimizer: none(TRAINING_TOLERANCES.optimizer),
      updates: none(TRAINING_TOLERANCES.updates),
      pass: false,
      problem,
    };
  };
  if (losses.length !== steps) return failed(`the engine reported ${losses.length} losses for ${steps} parity steps`);
  const lossSum = new ErrorSum();
  lossSum.add(
    'loss',
    steps,
    (i) => expect.losses[i]!,
    (i) => losses[i]!,
  );
  const loss = lossSum.figure(TRAINING_TOLERANCES.loss);
  const tensor = (prefix: string, name: string, shape: number[]): Tensor => {
    const t = file.get(`${prefix}${name}`);
    if (!t) throw new Mismatch(`the engine's parity file has no ${prefix}${name}`);
    if (t.shape.join('x') !== shape.join('x')) throw new Mismatch(`${prefix}${name} has shape [${t.shape}], the reference [${shape}]`);
    return t;
  };
  try {
    const grad1 = TRAIN_PARITY_TENSORS.grad(1);
    const extra = [...file.keys()].find((k) => k.startsWith(grad1) && !expect.grads.has(k.slice(grad1.length)));
    if (extra) throw new Mismatch(`the engine's parity file has ${extra}, which the reference does not train`);
    const gradSum = new ErrorSum();
    for (const [name, ref] of expect.grads) {
      const t = tensor(grad1, name, ref.shape);
      gradSum.add(
        name,
        ref.data.length,
        (i) => ref.data[i]!,
        (i) => t.data[i]!,
      );
    }
    const gradients = gradSum.figure(TRAINING_TOLERANCES.gradients);
    // The optimizer replayed on the engine's own gradients and weights, step by step.
    const { learningRate: lr, momentum: mu, weightDecay: wd } = expect.recipe;
    const optSum = new ErrorSum();
    for (const [name, ref] of expect.grads) {
      const initial = expect.initial.get(name);
      if (!initial) throw new Mismatch(`no initial value of ${name}`);
      let before: Tensor = initial;
      const v = new Float64Array(ref.data.length);
      for (let k = 1; k <= steps; k++) {
        const g = tensor(TRAIN_PARITY_TENSORS.grad(k), name, ref.shape);
        const after = tensor(TRAIN_PARITY_TENSORS.state(k), name, ref.shape);
        const w = before;
        for (let i = 0; i < v.length; i++) v[i] = (k === 1 ? 0 : mu * v[i]!) + g.data[i]! + wd * w.data[i]!;
        optSum.add(
          `${TRAIN_PARITY_TENSORS.state(k)}${name}`,
          v.length,
          (i) => -lr * v[i]!,
          (i) => after.data[i]! - w.data[i]!,
          (i) => ulp32(after.data[i]!),
        );
        before = after;
      }
    }
    const optimizer = optSum.figure(TRAINING_TOLERANCES.optimizer);
    const update = (k: number, expected: TensorMap): TrainingFigure => {
      const sum = new ErrorSum();
      for (const [name, ref] of expected) {
        const t = tensor(TRAIN_PARITY_TENSORS.state(k), name, ref.shape);
        const before = expect.initial.get(name);
        if (!before) throw new Mismatch(`no initial value of ${name}`);
        // In float64: the engine's fp32 weight minus the fp32 weight it started from.
        sum.add(
          `${TRAIN_PARITY_TENSORS.state(k)}${name}`,
          ref.data.length,
          (i) => ref.data[i]!,
          (i) => t.data[i]! - before.data[i]!,
          (i) => k * ulp32(t.data[i]!),
        );
      }
      return sum.figure(TRAINING_TOLERANCES.updates);
    };
    const first = update(1, expect.updateFirst);
    const last = update(steps, expect.updateLast);
    const updates = last.relL2 > first.relL2 || Number.isNaN(last.relL2) ? last : first;
    return { steps, loss, gradients, optimizer, updates, pass: loss.pass && gradients.pass && optimizer.pass && updates.pass };
  } catch (e) {
    if (e instanceof Mismatch) return failed(e.message);
    throw e;
  }
}

/** The engine's file does not hold what the reference does. */
class Mismatch extends Error {}

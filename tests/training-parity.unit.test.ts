import { describe, expect, it } from 'vitest';
import { compareTraining, TRAINING_TOLERANCES, ulp32, type TrainingExpectation } from '../harness/stats/training-parity.js';
import { TRAIN_PARITY_TENSORS } from '../harness/worker/protocol.js';
import type { Tensor, TensorMap } from '../workloads/safetensors.js';

/**
 * The training parity figures on a made-up model of two tensors (a weight and a bias whose true
 * gradient is zero, like attention's key bias), trained by a simulated engine in fp32 with a
 * recipe that may be planted wrong: the figures must pass the right one and name what is wrong in
 * the others.
 */

const recipe = { learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4 };
const f64 = (v: number[]): Tensor => ({ dtype: 'F64', shape: [v.length], data: Float64Array.from(v) });
const f32 = (v: ArrayLike<number>): Tensor => ({ dtype: 'F32', shape: [v.length], data: Float32Array.from(v) });

/** Gradients per step: a fixed pattern that changes with the weights, as a real loss's would. */
const gradient = (name: string, w: ArrayLike<number>, k: number): number[] =>
  Array.from(w, (x, i) => (name === 'bias' ? 0 : Math.sin(1 + i + k) * 0.1 + 0.01 * x));

/** Trains K steps in float64 (the reference) or float32 (an engine), with the recipe given. */
function train(r: typeof recipe, fp32: boolean, steps = 3): { losses: number[]; file: TensorMap; initial: TensorMap; grads1: TensorMap; states: TensorMap[] } {
  const round = (v: number): number => (fp32 ? Math.fround(v) : v);
  const initial: TensorMap = new Map([
    ['weight', f32([0.5, -0.25, 0.125, 1.5])],
    ['bias', f32([0.1, -0.1])],
  ]);
  const w = new Map([...initial].map(([n, t]) => [n, Array.from(t.data)]));
  const v = new Map([...initial].map(([n, t]) => [n, new Array<number>(t.data.length).fill(0)]));
  const file: TensorMap = new Map();
  const losses: number[] = [];
  const states: TensorMap[] = [];
  let grads1: TensorMap = new Map();
  for (let k = 1; k <= steps; k++) {
    losses.push(round(1 / k + 0.001 * w.get('weight')![0]!));
    const grads = new Map([...w].map(([n, x]) => [n, gradient(n, x, k).map(round)]));
    if (k === 1) grads1 = new Map([...grads].map(([n, g]) => [n, f64(g)]));
    for (const [n, x] of w) {
      const g = grads.get(n)!;
      const buf = v.get(n)!;
      for (let i = 0; i < x.length; i++) {
        buf[i] = round((k === 1 ? 0 : r.momentum * buf[i]!) + g[i]! + r.weightDecay * x[i]!);
        x[i] = round(x[i]! - r.learningRate * buf[i]!);
      }
      file.set(`${TRAIN_PARITY_TENSORS.grad(k)}${n}`, f32(g));
      file.set(`${TRAIN_PARITY_TENSORS.state(k)}${n}`, fp32 ? f32(x) : f64(x));
    }
    states.push(new Map([...w].map(([n, x]) => [n, f64(x)])));
  }
  return { losses, file, initial, grads1, states };
}

function expectation(): TrainingExpectation {
  const ref = train(recipe, false);
  const update = (s: TensorMap): TensorMap => new Map([...s].map(([n, t]) => [n, f64(Array.from(t.data, (x, i) => x - ref.initial.get(n)!.data[i]!))]));
  return {
    losses: ref.losses,
    grads: ref.grads1,
    updateFirst: update(ref.states[0]!),
    updateLast: update(ref.states[2]!),
    initial: ref.initial,
    recipe,
  };
}

describe('training parity figures', () => {
  it('an fp32 engine with the recipe passes every figure; its optimizer replays to fp32 rounding', () => {
    const e = train(recipe, true);
    const p = compareTraining(expectation(), e.losses, e.file);
    expect(p.problem).toBeUndefined();
    expect(p.pass).toBe(true);
    expect(p.optimizer.relL2).toBeLessThan(1e-6);
    for (const k of ['loss', 'gradients', 'optimizer', 'updates'] as const) expect(p[k].relL2).toBeLessThan(TRAINING_TOLERANCES[k]);
  });

  it('a missing weight decay and a wrong momentum fail the optimizer figure, naming a tensor', () => {
    for (const wrong of [
      { ...recipe, weightDecay: 0 },
      { ...recipe, momentum: 0.99 },
    ]) {
      const e = train(wrong, true);
      const p = compareTraining(expectation(), e.losses, e.file);
      expect(p.pass, JSON.stringify(wrong)).toBe(false);
      expect(p.optimizer.pass).toBe(false);
      expect(p.optimizer.tensor).toMatch(/^step\d\/(weight|bias)$/);
      // Gradients of the first step come before any update.
      expect(p.gradients.pass).toBe(true);
    }
  });

  it('a tensor whose true gradient is zero does not make the gradient figure meaningless', () => {
    const e = train(recipe, true);
    e.file.set(`${TRAIN_PARITY_TENSORS.grad(1)}bias`, f32([1e-12, -1e-12]));
    const p = compareTraining(expectation(), e.losses, e.file);
    expect(Number.isFinite(p.gradients.relL2)).toBe(true);
    expect(p.gradients.pass).toBe(true);
  });

  it('a missing tensor, a wrong shape or a wrong number of losses is a problem, not a figure', () => {
    const e = train(recipe, true);
    e.file.delete(`${TRAIN_PARITY_TENSORS.state(2)}weight`);
    expect(compareTraining(expectation(), e.losses, e.file)).toMatchObject({ pass: false, problem: "the engine's parity file has no step2/weight" });
    const s = train(recipe, true);
    s.file.set(`${TRAIN_PARITY_TENSORS.grad(1)}weight`, { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) });
    expect(compareTraining(expectation(), s.losses, s.file).problem).toBe('grad1/weight has shape [2,2], the reference [4]');
    expect(compareTraining(expectation(), [1, 2], s.file).problem).toBe('the engine reported 2 losses for 3 parity steps');
    const x = train(recipe, true);
    x.file.set(`${TRAIN_PARITY_TENSORS.grad(1)}extra`, f32([1]));
    expect(compareTraining(expectation(), x.losses, x.file).problem).toMatch(/has grad1\/extra, which the reference does not train/);
  });

  it('ulp32 is the spacing of float32 numbers', () => {
    expect(ulp32(1)).toBe(2 ** -23);
    expect(ulp32(1.5)).toBe(2 ** -23);
    expect(ulp32(-3)).toBe(2 ** -22);
    expect(Math.fround(1 + ulp32(1))).toBe(1 + 2 ** -23);
    expect(ulp32(0)).toBe(2 ** -149);
  });
});

import { execa } from 'execa';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import type { Duplex } from 'node:stream';
import { nodeWorkerScript } from '../harness/run/workers.js';
import { FromWorkerSchema, type FromWorker, type ToWorker } from '../harness/worker/protocol.js';
import { expect } from 'vitest';
import { FP32_REL_L2_TOLERANCE } from '../harness/stats/parity.js';
import type { Cell } from '../harness/results/schema.js';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAMILIES, FAMILY_NAMES, familyTasks, getFamily, int, resolveParams, type FamilyName, type Params, type Task } from '../workloads/index.js';
import { generateInput, generateWeight } from '../workloads/materialize.js';
import type { Tensor, TensorMap } from '../workloads/safetensors.js';

/** Runs the real CLI (compiled, as `npx fwbench` does) and returns its exit code and output. */
export async function fwbench(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(process.execPath, ['bin/fwbench.js', ...args], {
    reject: false,
    timeout: opts.timeoutMs ?? 300_000,
    env: { FORCE_COLOR: '0', ...opts.env },
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Whether an npm package (an optional dependency) is installed here. */
export const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

/** A fresh temporary folder. */
export const tempDir = (prefix = 'fwbench-'): string => mkdtempSync(join(tmpdir(), prefix));

/** Short measurement flags so end-to-end tests stay quick (the defaults are for real runs): one process per cell; a later `--replicates N` overrides it. */
export const QUICK = ['--quick', '--replicates', '1', '--min-samples', '5', '--min-time', '50', '--max-time', '1000', '--warmup-max-time', '200'];

/** What to show when a run exits non-zero: its progress lines of cells that did not end ok or skipped, then the end of its stderr. */
export const runProblems = (stderr: string): string =>
  [...stderr.split('\n').filter((l) => /^\[\d+\/\d+\] \S+ (failed|parity-failed|unstable)/.test(l)), '...', stderr.slice(-1500)].join('\n');

/** Canonical weights and inputs of a workload at preset `tiny` with overrides, in memory (for in-process engine tests). */
export interface WorkloadInstance {
  family: FamilyName;
  params: Params;
  weights: TensorMap;
  inputs: TensorMap;
  classes: number;
}

/** Builds a WorkloadInstance from the deterministic generators (what a run would materialize); preset `tiny` unless given. */
export function workloadInstance(family: FamilyName, sets: Array<[string, string]>, opts: { seed: number; batch: number; preset?: string }): WorkloadInstance {
  const f = getFamily(family);
  const params = resolveParams(f, opts.preset ?? 'tiny', sets);
  const weights: TensorMap = new Map(f.weights(params).map((s) => [s.name, { dtype: 'F32', shape: s.shape, data: generateWeight(s, opts.seed) }]));
  const inputs: TensorMap = new Map(f.inputs(params, opts.batch).map((s) => [s.name, { dtype: s.dtype, shape: s.shape, data: generateInput(s, opts.seed) }]));
  return { family, params, weights, inputs, classes: int(params, 'classes') };
}

/**
 * Asserts a run's cells: the expected count, every one ok and parity-passing (relL2 below the fp32
 * tolerance). A cell every replicate of which a busy VM contended (hypervisor steal, neighbours) is
 * `unstable`: it ran and passed parity, and only its timing is flagged. The tests using this are
 * about something else (scheduling, resume, faults), so that counts as ok here; contention itself
 * is tests/contention.test.ts's subject.
 */
export function expectOkCells(cells: Cell[], count: number): void {
  expect(cells).toHaveLength(count);
  for (const c of cells) {
    if (c.status === 'unstable') expect(c.reason, c.id).toMatch(/^every replicate's timed loop was contended/);
    else expect(c.status, `${c.id}: ${c.reason}`).toBe('ok');
    expect(c.parity!.pass).toBe(true);
    expect(c.parity!.relL2!).toBeLessThan(FP32_REL_L2_TOLERANCE);
  }
}

/**
 * Asserts that a cell's cold start is named end to end: import, weight loading and build measured
 * (> 0), a compile segment exactly where the mode has one, and spawn + those + first run within
 * 100 ms + 5 % of totalMs (what is left is the protocol messages between the segments; an
 * unmeasured import or build would leave far more).
 */
export function expectColdStartAddsUp(c: Cell, compiles: boolean): void {
  const s = c.coldStart!;
  for (const [name, ms] of Object.entries({ spawnMs: s.spawnMs, importMs: s.importMs, weightsMs: s.weightsMs, buildMs: s.buildMs, firstRunMs: s.firstRunMs }))
    expect(ms, `${c.id} ${name}`).toBeGreaterThan(0);
  if (compiles) expect(s.compileMs, `${c.id} compileMs`).toBeGreaterThan(0);
  else expect(s.compileMs, `${c.id} compileMs`).toBeUndefined();
  const rest = s.totalMs - (s.spawnMs + s.importMs! + s.weightsMs! + s.buildMs + (s.compileMs ?? 0) + s.firstRunMs);
  // spawnMs ends when the orchestrator reads the hello, while the worker already imports: on a busy machine a little below zero.
  expect(rest, `${c.id}: ${JSON.stringify(s)}`).toBeGreaterThan(-50);
  expect(rest, `${c.id}: ${JSON.stringify(s)}`).toBeLessThan(100 + 0.05 * s.totalMs);
}

/** Swaps two gate blocks along the last axis of a Keras LSTM weight. */
export function swapBlocks(t: Tensor, H: number, a: number, b: number): Tensor {
  const data = Float32Array.from(t.data);
  const cols = t.shape[t.shape.length - 1]!;
  for (let r = 0; r < data.length / cols; r++) {
    for (let j = 0; j < H; j++) {
      data[r * cols + a * H + j] = t.data[r * cols + b * H + j]!;
      data[r * cols + b * H + j] = t.data[r * cols + a * H + j]!;
    }
  }
  return { ...t, data };
}

/** The families whose models do `task` (the decoder only generates; cnn, rnn and transformer do inference and training). */
export const familiesOf = (task: Task): FamilyName[] => FAMILY_NAMES.filter((f) => familyTasks(FAMILIES[f]).includes(task));

/** Relative L2 error of `a` against `ref`. */
export function relL2(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/**
 * One conversation with a real Node worker (compiled, as runs spawn it): every message it sends,
 * answering its first output (any parity message) with `verdict`. A worker error throws with its
 * stderr, unless `expectError` (then the messages so far are returned).
 */
export async function converseWithWorker(job: ToWorker, verdict: 'continue' | 'stop', expectError = false): Promise<FromWorker[]> {
  const child = spawn(process.execPath, [nodeWorkerScript()], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  child.stdout!.resume();
  const channel = child.stdio[3] as Duplex;
  channel.write(`${JSON.stringify(job)}\n`);
  const got: FromWorker[] = [];
  for await (const line of readline.createInterface({ input: channel })) {
    const msg = FromWorkerSchema.parse(JSON.parse(line));
    got.push(msg);
    if (msg.type === 'parity' || msg.type === 'stream-parity' || msg.type === 'generate-parity' || msg.type === 'train-parity')
      channel.write(`${JSON.stringify({ type: verdict })}\n`);
    if (msg.type === 'error') {
      if (expectError) break;
      throw new Error(`worker error in phase ${msg.phase}: ${msg.message}\n${stderr.join('')}`);
    }
    if (msg.type === 'done') break;
  }
  await new Promise((done) => (child.exitCode !== null ? done(undefined) : child.on('exit', done)));
  return got;
}

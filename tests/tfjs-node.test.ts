import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTensorflowWheel, SetupError, wheelCApi } from '../harness/setup/tfjs-node.js';
import { fwbench, tempDir } from './helpers.js';

/**
 * tfjs-node built offline against the TensorFlow wheel (`npx fwbench setup tfjs-node`, part of the
 * README set-up and of CI). These tests need that set-up: without it they fail and say so.
 */
describe('tfjs-node on the TensorFlow wheel (needs `npm run setup`)', () => {
  it('detect reports tfjs-node available, with the wheel as its libtensorflow', async () => {
    const r = await fwbench(['detect', '--json']);
    const e = (JSON.parse(r.stdout) as { engines: Record<string, { available: boolean; reason?: string; details?: Record<string, string> }> }).engines[
      'tfjs-node'
    ]!;
    expect(e.available, `tfjs-node unavailable (${e.reason}); run: npm run setup`).toBe(true);
    expect(e.details!.libtensorflowOrigin).toMatch(/tensorflow(-cpu)? [\d.]+ Python wheel .* built by fwbench setup/);
    expect(e.details!.libtensorflow).toMatch(/^2\.\d+/);
  });
  // Its runs of every family, parity-verified, are in conformance.test.ts.
});

describe('offline set-up: clear failures', () => {
  it('a Python without TensorFlow is named, with the fix', async () => {
    const dir = tempDir();
    const fake = join(dir, 'python');
    writeFileSync(fake, '#!/bin/sh\nexit 3\n');
    chmodSync(fake, 0o755);
    const err = await findTensorflowWheel([join(dir, 'missing-python'), fake]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SetupError);
    expect((err as SetupError).message).toMatch(/missing-python \(not found\), .*python \(no tensorflow package\)/);
    expect((err as SetupError).fix).toMatch(/python-runners\/setup.sh/);
  });
  it('a wheel without the C API files is refused, naming the missing files', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'include', 'tensorflow', 'c'), { recursive: true });
    writeFileSync(join(dir, 'include', 'tensorflow', 'c', 'c_api.h'), '');
    expect(() => wheelCApi(dir)).toThrow(/lacks the C API files .*eager\/c_api.h, .*libtensorflow_cc.so.2, .*libtensorflow_framework.so.2/);
  });
  it('an unknown set-up target is a one-line error', async () => {
    const r = await fwbench(['setup', 'tfjs-web']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/unknown set-up target 'tfjs-web'; valid targets: tfjs-node/);
  });
});

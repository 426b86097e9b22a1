import { describe, expect, it } from 'vitest';
import { fwbench, tempDir } from './helpers.js';

/** Bad input: exit code 2 and one line naming what was wrong and what is allowed. */
const cases: Array<[string, string[], RegExp]> = [
  ['unknown engine', ['run', '--engines', 'onnxruntime,pytorch'], /unknown engine 'pytorch'; valid engines: onnxruntime, tfjs-node, tfjs-node-gpu, tfjs-wasm, tfjs-cpu/],
  ['unknown workload', ['run', '--workloads', 'mlp'], /unknown workload 'mlp'; valid workloads: cnn, rnn, transformer/],
  ['unknown preset', ['run', '--workloads', 'cnn', '--preset', 'resnet101'], /unknown preset 'resnet101' for workload 'cnn'; valid presets: tiny, resnet18, resnet50/],
  ['preset missing in one family', ['run', '--workloads', 'cnn,rnn', '--preset', 'resnet18'], /unknown preset 'resnet18' for workload 'rnn'; valid presets: tiny, small, large/],
  ['unknown parameter', ['run', '--workloads', 'rnn', '--set', 'depth=3'], /unknown parameter 'depth'.*valid parameters: .*seq/],
  ['bad parameter value', ['run', '--workloads', 'transformer', '--set', 'heads=5'], /heads=5 must divide hidden=32/],
  ['bad batch size', ['run', '--batch-sizes', '1,0'], /batch size must be a positive integer, got '0'/],
  ['bad device', ['run', '--device', 'tpu'], /argument 'tpu' is invalid. Allowed choices are cpu, cuda/],
  ['bad threads', ['run', '--threads', 'many'], /--threads must be a positive integer, got 'many'/],
  ['unknown option', ['run', '--engine', 'onnxruntime'], /unknown option '--engine'/],
  ['unknown command', ['benchmark'], /unknown command 'benchmark'/],
  ['export without format', ['export', '--workload', 'cnn', '--out', '/tmp/x.onnx'], /required option '--format <format>' not specified/],
  ['export bad format', ['export', '--workload', 'cnn', '--format', 'pt', '--out', '/tmp/x'], /Allowed choices are onnx, weights, inputs/],
];

describe('CLI errors', () => {
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await fwbench(args[0] === 'run' ? [...args, '--out', tempDir()] : args);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('fwbench')).length).toBeGreaterThanOrEqual(1);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }
});

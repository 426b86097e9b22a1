import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detectNvidiaGpus, parseCudaVersion, parseNvidiaSmiQuery } from '../harness/diagnostics/detect/nvidia.js';
import { tempDir } from './helpers.js';

// No GPU on CI: nvidia-smi output is replayed from recorded-style fixtures, and detectNvidiaGpus
// runs a fake nvidia-smi script that prints them.
const FIXTURES = fileURLToPath(new URL('./fixtures/nvidia-smi/', import.meta.url));
const fixture = (name: string): string => join(FIXTURES, name);
const read = (name: string): string => readFileSync(fixture(name), 'utf8');
const GiB = 2 ** 30;
const MiB = 2 ** 20;

const QUERY = '--query-gpu=index,name,memory.total,driver_version,uuid,compute_cap';
const LEGACY_QUERY = '--query-gpu=index,name,memory.total,driver_version,uuid';
const FORMAT = '--format=csv,noheader,nounits';

/**
 * Writes an executable fake nvidia-smi that answers only the exact argument vectors fwbench
 * should send (so the test also checks the command line), replaying fixture files.
 */
function fakeNvidiaSmi(opts: { query?: string; plain?: string; legacyQuery?: string; failAll?: { exitCode: number; stdout: string } }): string {
  const path = join(tempDir('fwbench-fake-nvidia-smi-'), 'nvidia-smi');
  const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
  const failAll = opts.failAll ? `printf '%s\\n' ${q(opts.failAll.stdout)}; exit ${opts.failAll.exitCode}\n` : '';
  const full = opts.query
    ? `cat ${q(opts.query)}; exit 0`
    : // Drivers before ~510 reject the whole query because of the compute_cap field.
      `echo 'Field "compute_cap" is not a valid field to query.'; exit 2`;
  writeFileSync(
    path,
    `#!/bin/bash
# fake nvidia-smi for tests: no GPU here
${failAll}if [ "$#" -eq 0 ]; then ${opts.plain ? `cat ${q(opts.plain)}; exit 0` : 'exit 0'}; fi
if [ "$#" -eq 2 ] && [ "$1" = ${q(QUERY)} ] && [ "$2" = ${q(FORMAT)} ]; then ${full}; fi
${opts.legacyQuery ? `if [ "$#" -eq 2 ] && [ "$1" = ${q(LEGACY_QUERY)} ] && [ "$2" = ${q(FORMAT)} ]; then cat ${q(opts.legacyQuery)}; exit 0; fi\n` : ''}echo "fake nvidia-smi: unexpected arguments: $*" >&2
exit 64
`,
    { mode: 0o755 },
  );
  return path;
}

describe('parseNvidiaSmiQuery', () => {
  it('parses one H100 80GB HBM3', () => {
    expect(parseNvidiaSmiQuery(read('h100-query.csv'))).toEqual([
      {
        index: 0,
        name: 'NVIDIA H100 80GB HBM3',
        memoryBytes: 81559 * MiB,
        driver: '550.54.15',
        uuid: 'GPU-3b1f6c2e-8d47-5a90-c1e3-7f2a9d4b6e05',
        computeCapability: '9.0',
      },
    ]);
  });

  it('parses a two-GPU A100 + GeForce RTX 4090 machine', () => {
    const gpus = parseNvidiaSmiQuery(read('a100-rtx4090-query.csv'));
    expect(gpus.map((g) => [g.index, g.name, g.memoryBytes / GiB, g.driver, g.computeCapability])).toEqual([
      [0, 'NVIDIA A100 80GB PCIe', 80, '535.183.01', '8.0'],
      [1, 'NVIDIA GeForce RTX 4090', 24564 / 1024, '535.183.01', '8.9'],
    ]);
    expect(gpus[1]?.uuid).toBe('GPU-7e92d0a4-c3f1-8b25-4d6e-1a0f5c9b3e72');
  });

  it('leaves computeCapability out when an old driver prints [N/A]', () => {
    const [gpu] = parseNvidiaSmiQuery(read('v100-old-driver-query.csv'));
    expect(gpu).toMatchObject({ index: 0, name: 'Tesla V100-PCIE-16GB', memoryBytes: 16 * GiB, driver: '510.39.01' });
    expect(gpu?.computeCapability).toBeUndefined();
  });

  it('parses the legacy query without the compute_cap column', () => {
    const gpus = parseNvidiaSmiQuery(read('k80-legacy-query.csv'));
    expect(gpus.map((g) => [g.index, g.name, g.computeCapability])).toEqual([
      [0, 'Tesla K80', undefined],
      [1, 'Tesla K80', undefined],
    ]);
  });

  it('skips blank lines, CRLF endings and rows that are not GPUs', () => {
    expect(parseNvidiaSmiQuery('')).toEqual([]);
    expect(parseNvidiaSmiQuery('No devices were found\n')).toEqual([]);
    const gpus = parseNvidiaSmiQuery('\r\n0, NVIDIA L4, 23034, 550.54.15, [N/A], 8.9\r\n\r\n');
    expect(gpus).toEqual([{ index: 0, name: 'NVIDIA L4', memoryBytes: 23034 * MiB, driver: '550.54.15', uuid: undefined, computeCapability: '8.9' }]);
  });
});

describe('parseCudaVersion', () => {
  it('reads the CUDA version from recorded nvidia-smi headers', () => {
    expect(parseCudaVersion(read('h100-plain.txt'))).toBe('12.4');
    expect(parseCudaVersion(read('a100-rtx4090-plain.txt'))).toBe('12.2');
    expect(parseCudaVersion(read('v100-old-driver-plain.txt'))).toBe('11.6');
  });
  it('reads the R610+ header ("CUDA UMD Version") and gives undefined without one', () => {
    expect(parseCudaVersion('| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |')).toBe('13.3');
    expect(parseCudaVersion('| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: N/A |')).toBeUndefined();
    expect(parseCudaVersion('')).toBeUndefined();
  });
});

describe('detectNvidiaGpus', () => {
  it('fake nvidia-smi: one H100 with driver and CUDA version', async () => {
    const r = await detectNvidiaGpus({ nvidiaSmi: fakeNvidiaSmi({ query: fixture('h100-query.csv'), plain: fixture('h100-plain.txt') }) });
    expect(r).toMatchObject({ driver: '550.54.15', cuda: '12.4' });
    expect(r.reason).toBeUndefined();
    expect(r.gpus.map((g) => g.name)).toEqual(['NVIDIA H100 80GB HBM3']);
  });

  it('fake nvidia-smi: two GPUs of different models', async () => {
    const r = await detectNvidiaGpus({ nvidiaSmi: fakeNvidiaSmi({ query: fixture('a100-rtx4090-query.csv'), plain: fixture('a100-rtx4090-plain.txt') }) });
    expect(r).toMatchObject({ driver: '535.183.01', cuda: '12.2' });
    expect(r.gpus.map((g) => [g.name, g.computeCapability])).toEqual([
      ['NVIDIA A100 80GB PCIe', '8.0'],
      ['NVIDIA GeForce RTX 4090', '8.9'],
    ]);
  });

  it('fake nvidia-smi: an old driver that rejects compute_cap is asked again without it', async () => {
    const r = await detectNvidiaGpus({
      nvidiaSmi: fakeNvidiaSmi({ legacyQuery: fixture('k80-legacy-query.csv'), plain: fixture('v100-old-driver-plain.txt') }),
    });
    expect(r.reason).toBeUndefined();
    expect(r.driver).toBe('470.256.02');
    expect(r.gpus).toHaveLength(2);
    expect(r.gpus.every((g) => g.computeCapability === undefined)).toBe(true);
  });

  it('fake nvidia-smi: a driver that cannot be reached gives its message as the reason', async () => {
    const message =
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";
    const smi = fakeNvidiaSmi({ failAll: { exitCode: 9, stdout: message } });
    const r = await detectNvidiaGpus({ nvidiaSmi: smi });
    expect(r.gpus).toEqual([]);
    expect(r.reason).toBe(`${smi} failed (exit code 9): ${message}`);
  });

  it('fake nvidia-smi: no devices', async () => {
    const r = await detectNvidiaGpus({ nvidiaSmi: fakeNvidiaSmi({ failAll: { exitCode: 6, stdout: 'No devices were found' } }) });
    expect(r.gpus).toEqual([]);
    expect(r.reason).toMatch(/failed \(exit code 6\): No devices were found$/);
  });

  it('a nvidia-smi path that does not exist: no GPUs and a reason', async () => {
    const missing = join(tempDir(), 'no-such-dir', 'nvidia-smi');
    const r = await detectNvidiaGpus({ nvidiaSmi: missing });
    expect(r).toEqual({ gpus: [], reason: `${missing} not found` });
  });

  it('a command name that is not on PATH: no GPUs and a reason', async () => {
    const r = await detectNvidiaGpus({ nvidiaSmi: 'fwbench-no-such-nvidia-smi' });
    expect(r).toEqual({ gpus: [], reason: 'fwbench-no-such-nvidia-smi not found on PATH' });
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { detectHost, hostFingerprint, HostInfoSchema, type HostInfo } from '../harness/diagnostics/detect/host.js';

const nvidiaSmiOnPath = (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, 'nvidia-smi')));

describe('detectHost on this machine', () => {
  let host: HostInfo;
  let elapsedMs: number;
  beforeAll(async () => {
    const t0 = performance.now();
    host = await detectHost();
    elapsedMs = performance.now() - t0;
  });

  it('describes CPU, memory and OS', () => {
    expect(host.cpu.logicalCores).toBeGreaterThanOrEqual(1);
    expect(host.cpu.physicalCores).toBeGreaterThanOrEqual(1);
    expect(host.cpu.brand).not.toBe('');
    expect(host.memory.totalBytes).toBeGreaterThan(0);
    expect(host.os).toMatchObject({ platform: 'linux', arch: process.arch });
    expect(host.node).toBe(process.version);
    expect(host.hostname).not.toBe('');
  });

  it('keeps exactly the DL-relevant SIMD flags that /proc/cpuinfo lists', () => {
    const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []);
    const relevant = [...flags].filter((f) => ['sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx_vnni'].includes(f) || /^(avx512|amx)/.test(f));
    expect(host.cpu.simd).toEqual(relevant.sort());
    expect(host.cpu.simd).not.toContain('sse2');
  });

  it.skipIf(nvidiaSmiOnPath)('without nvidia-smi: no GPUs, with the reason', () => {
    expect(host.gpus.gpus).toEqual([]);
    expect(host.gpus.reason).toBe('nvidia-smi not found on PATH');
  });

  it.runIf(nvidiaSmiOnPath)('with nvidia-smi: GPUs or a reason', () => {
    expect(host.gpus.gpus.length > 0 || host.gpus.reason !== undefined).toBe(true);
  });

  it('passes its own schema, also after a JSON round trip (as in run.json)', () => {
    expect(HostInfoSchema.parse(host)).toEqual(host);
    expect(HostInfoSchema.parse(JSON.parse(JSON.stringify(host)))).toEqual(JSON.parse(JSON.stringify(host)));
  });

  it('is fast: under 2 s', () => {
    expect(elapsedMs).toBeLessThan(2000);
  });

  it('has a fingerprint naming CPU, threads, memory and GPUs', () => {
    const gib = Math.round(host.memory.totalBytes / 2 ** 30);
    const fingerprint = hostFingerprint(host);
    expect(fingerprint.startsWith(`${host.cpu.brand} x${host.cpu.logicalCores} / ${gib} GiB / `)).toBe(true);
    if (!nvidiaSmiOnPath) expect(fingerprint).toMatch(/ \/ no GPU( \/ TPU .*)?$/);
    expect(hostFingerprint(host)).toBe(fingerprint);
  });
});

describe('hostFingerprint', () => {
  const base: HostInfo = {
    cpu: { manufacturer: 'Intel', brand: 'Xeon® Platinum 8480+', physicalCores: 112, logicalCores: 224, speedGHz: 2, simd: ['avx2', 'avx512f', 'amx_tile'] },
    memory: { totalBytes: 2048 * 2 ** 30 },
    os: { platform: 'linux', distro: 'Ubuntu', release: '22.04', kernel: '5.15.0', arch: 'x64' },
    node: 'v20.20.2',
    hostname: 'gpu-node',
    gpus: { gpus: [], reason: 'nvidia-smi not found on PATH' },
    tpu: { present: false, signs: [], chips: 0 },
  };
  const h100 = (index: number) => ({ index, name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 2 ** 20, driver: '550.54.15', computeCapability: '9.0' });

  it('counts identical GPUs instead of repeating them', () => {
    const h = { ...base, gpus: { gpus: Array.from({ length: 8 }, (_, i) => h100(i)), driver: '550.54.15', cuda: '12.4' } };
    expect(hostFingerprint(h)).toBe('Xeon® Platinum 8480+ x224 / 2048 GiB / 8x NVIDIA H100 80GB HBM3');
  });

  it('says "no GPU" without GPUs and names a TPU when there is one', () => {
    expect(hostFingerprint(base)).toBe('Xeon® Platinum 8480+ x224 / 2048 GiB / no GPU');
    const tpu = { ...base, tpu: { present: true, signs: ['environment variables TPU_ACCELERATOR_TYPE'], chips: 8, acceleratorType: 'v5litepod-8' } };
    expect(hostFingerprint(tpu)).toBe('Xeon® Platinum 8480+ x224 / 2048 GiB / no GPU / TPU v5litepod-8');
  });
});

import { execa } from 'execa';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  classifyTorchBlas,
  deviceFindings,
  governorFindings,
  gpuThrottleFindings,
  parseThrottleReasons,
  THROTTLE_QUERY,
  threadsFinding,
  tfjsCpuFinding,
  torchBlasFindings,
} from '../harness/diagnostics/doctor.js';
import { FindingSchema } from '../harness/diagnostics/schema.js';
import { fractionOfPeak, machinePeakOf, measurePeak } from '../harness/diagnostics/peak.js';
import { busyCores, parseProcStat } from '../harness/worker/load.js';
import { RunSchema } from '../harness/results/schema.js';
import { packageRoot } from '../harness/run/workers.js';
import { abovePeakFinding } from '../harness/diagnostics/run-checks.js';
import type { Cell } from '../harness/results/schema.js';
import { fwbench, QUICK, tempDir } from './helpers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fixture = (p: string): string => readFileSync(join(FIXTURES, p), 'utf8');

describe('fwbench peak (real ONNX Runtime and TensorFlow.js wasm workers)', () => {
  it('measures positive GFLOP/s and GB/s through onnxruntime and tfjs-wasm; the peak is the best of them', async () => {
    const r = await measurePeak({ engines: [{ id: 'onnxruntime' }, { id: 'tfjs-wasm' }], device: 'cpu', threads: 2, hostFingerprint: 'test', cache: false });
    expect(r.engines.map((e) => [e.engine, e.ok, e.reason])).toEqual([
      ['onnxruntime', true, undefined],
      ['tfjs-wasm', true, undefined],
    ]);
    for (const e of r.engines) {
      expect(e.gemmGflops!).toBeGreaterThan(0);
      expect(e.copyGBps!).toBeGreaterThan(0);
      expect(e.gemmGflops).toBeCloseTo((2 * e.gemmN! ** 3) / (e.gemmMedianMs! / 1000) / 1e9, 6);
    }
    expect(r.peak!.gflops).toBe(Math.max(...r.engines.map((e) => e.gemmGflops!)));
    expect(r.peak!.gbps).toBe(Math.max(...r.engines.map((e) => e.copyGBps!)));
    expect(r.engines.map((e) => e.engine)).toContain(r.peak!.gflopsEngine);
    // A later run on the same host that measures no engine itself still gets the machine's peak
    // from what was measured before, so runs with different engines share one denominator.
    const later = await measurePeak({ engines: [], device: 'cpu', threads: 2, hostFingerprint: 'test' });
    expect(later.engines).toEqual([]);
    expect(later.peak!.gflops).toBe(r.peak!.gflops);
    expect(later.peak!.gflopsEngine).toBe(r.peak!.gflopsEngine);
    const otherThreads = await measurePeak({ engines: [], device: 'cpu', threads: 1, hostFingerprint: 'test' });
    expect(otherThreads.peak).toBeUndefined();
    // Measuring again (--no-cache) replaced the cached figures: a run of the same engine reads
    // the new ones, not those of an earlier, perhaps busier, moment.
    const reused = await measurePeak({ engines: [{ id: 'onnxruntime' }], device: 'cpu', threads: 2, hostFingerprint: 'test' });
    expect(reused.engines[0]).toMatchObject({ engine: 'onnxruntime', cached: true, gemmGflops: r.engines[0]!.gemmGflops, copyGBps: r.engines[0]!.copyGBps });
  }, 120_000);

  it('takes the best GEMM and the best bandwidth separately, ignores engines without figures, and divides by the GEMM peak', () => {
    const p = machinePeakOf(
      [
        { engine: 'a', ok: true, gemmGflops: 100, copyGBps: 5 },
        { engine: 'b', ok: true, gemmGflops: 50, copyGBps: 20 },
        { engine: 'c', ok: false, reason: 'not installed' },
      ],
      'cpu',
      2,
    )!;
    expect([p.gflops, p.gflopsEngine, p.gbps, p.gbpsEngine]).toEqual([100, 'a', 20, 'b']);
    expect(fractionOfPeak(25, p)).toBe(0.25);
    expect(fractionOfPeak(undefined, p)).toBeUndefined();
    expect(machinePeakOf([{ engine: 'c', ok: false }], 'cpu', 1)).toBeUndefined();
  });
});

describe('fwbench run: peak, fractionOfPeak and the doctor at start (real run, --threads 1 on this multi-core machine)', () => {
  it('stores the peak, gives every ok cell a fractionOfPeak in (0, 1.5], and flags --threads 1 and tfjs-cpu', async () => {
    const out = tempDir();
    const r = await fwbench(['run', '--engines', 'onnxruntime,tfjs-cpu', '--workloads', 'cnn', '--batch-sizes', '1', '--threads', '1', '--out', out, ...QUICK]);
    expect(r.exitCode, r.stderr).toBe(0);
    const run = RunSchema.parse(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')));
    expect(run.peak!.gflops).toBeGreaterThan(0);
    expect(run.peak!.threads).toBe(1);
    const ok = run.cells.filter((c) => c.status === 'ok');
    expect(ok.length).toBe(2);
    for (const c of ok) {
      expect(c.fractionOfPeak!).toBeGreaterThan(0);
      expect(c.fractionOfPeak!).toBeLessThanOrEqual(1.5);
      expect(c.fractionOfPeak).toBeCloseTo(c.gflops! / run.peak!.gflops, 9);
    }
    const ids = run.doctor!.map((f) => f.id);
    expect(ids).toContain('tfjs-pure-js-backend');
    if (Math.min(run.host.cpu.physicalCores, availableParallelism()) > 1) {
      expect(ids).toContain('threads-below-cores');
      expect(r.stderr).toMatch(/doctor WARN threads-below-cores/);
    }
    expect(r.stdout).toMatch(/% peak/);
  }, 300_000);

  it('fwbench doctor --threads 1 --json flags the thread count on this machine (real condition)', async () => {
    const r = await fwbench(['doctor', '--threads', '1', '--engines', 'onnxruntime', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const findings = (JSON.parse(r.stdout) as { findings: unknown[] }).findings.map((f) => FindingSchema.parse(f));
    const cores = (await import('systeminformation')).default;
    if (Math.min((await cores.cpu()).physicalCores, availableParallelism()) > 1)
      expect(findings.find((f) => f.id === 'threads-below-cores')?.severity).toBe('warn');
    expect(findings.every((f) => f.fix.length > 0)).toBe(true);
  }, 60_000);
});

describe('doctor checks', () => {
  it('threads: warns below the physical cores only on multi-core machines', () => {
    expect(threadsFinding(1, 2)?.severity).toBe('warn');
    expect(threadsFinding(2, 2)).toBeUndefined();
    expect(threadsFinding(1, 1)).toBeUndefined();
    // A Slurm task or taskset allowing 1 CPU of a 4-core machine: 1 thread uses all it may.
    expect(threadsFinding(1, 4, 1)).toBeUndefined();
    expect(threadsFinding(2, 4, 3)?.fix).toMatch(/^omit --threads \(default: 3, the physical cores this process may run on\)/);
  });

  it('flags tfjs-cpu (pure-JS backend) only when selected', () => {
    expect(tfjsCpuFinding(['onnxruntime', 'tfjs-cpu'])?.id).toBe('tfjs-pure-js-backend');
    expect(tfjsCpuFinding(['tfjs-wasm'])).toBeUndefined();
  });

  it('governor from a fake sysfs tree: powersave warns, performance is fine, no cpufreq is info', async () => {
    const root = tempDir('fwbench-fake-sysfs-');
    const gov = (cpu: number, g: string): void => {
      mkdirSync(join(root, 'devices/system/cpu', `cpu${cpu}`, 'cpufreq'), { recursive: true });
      writeFileSync(join(root, 'devices/system/cpu', `cpu${cpu}`, 'cpufreq/scaling_governor'), `${g}\n`);
    };
    gov(0, 'performance');
    gov(1, 'powersave');
    const f = await governorFindings(root);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ id: 'cpu-governor', severity: 'warn' });
    expect(f[0]!.message).toMatch(/powersave on 1 of 2 CPUs/);
    gov(1, 'performance');
    expect(await governorFindings(root)).toEqual([]);
    const empty = tempDir('fwbench-fake-sysfs-');
    mkdirSync(join(empty, 'devices/system/cpu/cpu0'), { recursive: true });
    expect((await governorFindings(empty))[0]).toMatchObject({ id: 'cpu-governor-unknown', severity: 'info' });
  });

  it('busy machine: /proc/stat arithmetic', () => {
    const a = parseProcStat('cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n')!;
    const b = parseProcStat('cpu  250 0 150 900 100 0 0 0 0 0\n')!;
    expect(a).toEqual({ busy: 200, total: 1000, steal: 0, cores: 1 });
    // steal (8th field) counts as busy and is read on its own; cpuN lines give the core count.
    expect(parseProcStat('cpu  10 0 10 70 0 0 0 10 0 0\ncpu0 5 0 5 35 0 0 0 5 0 0\ncpu1 5 0 5 35 0 0 0 5 0 0\n')).toEqual({
      busy: 30,
      total: 100,
      steal: 10,
      cores: 2,
    });
    // 200 busy of 400 elapsed jiffies on 2 cores: one core busy.
    expect(busyCores(a, b, 2)).toBe(1);
  });

  it('GPU throttling: parses recorded-style nvidia-smi output (fake, no GPU here)', async () => {
    expect(parseThrottleReasons(fixture('nvidia-smi/throttle-h100-thermal.csv'))).toEqual([
      { index: 0, mask: 0x1, reasons: [] },
      { index: 1, mask: 0x44, reasons: ['software power cap', 'hardware thermal slowdown'] },
    ]);
    expect(parseThrottleReasons('[N/A]\n')).toEqual([]);
    // A fake nvidia-smi that answers only the exact throttle query.
    const smi = join(tempDir('fwbench-fake-nvidia-smi-'), 'nvidia-smi');
    writeFileSync(
      smi,
      `#!/bin/bash\n# fake nvidia-smi for tests: no GPU here\nif [ "$1" = '${THROTTLE_QUERY[0]}' ] && [ "$2" = '${THROTTLE_QUERY[1]}' ]; then cat '${join(FIXTURES, 'nvidia-smi/throttle-h100-thermal.csv')}'; exit 0; fi\nexit 64\n`,
      { mode: 0o755 },
    );
    const f = await gpuThrottleFindings(smi);
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toMatch(/GPU 1 is throttled \(software power cap, hardware thermal slowdown/);
    expect(await gpuThrottleFindings(join(tempDir(), 'no-such-nvidia-smi'))).toEqual([]);
  });

  it('GPU asked for but not used: no GPU on the host, or cuda cells whose engine reports the CPU', () => {
    expect(deviceFindings('cuda', { gpus: { gpus: [], reason: 'nvidia-smi not found on PATH' } })[0]?.id).toBe('gpu-missing');
    expect(deviceFindings('cpu', { gpus: { gpus: [], reason: 'x' } })).toEqual([]);
    const cells: Array<{ id: string; device: string; settings: Record<string, string> }> = [
      { id: 'onnxruntime/all/cuda/cnn/tiny/b1', device: 'cuda', settings: { executionProviders: 'cpu' } },
      { id: 'torch/eager/cuda/cnn/tiny/b1', device: 'cuda', settings: { device: 'cuda:0' } },
    ];
    const f = deviceFindings('cuda', undefined, cells);
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toMatch(/onnxruntime\/all\/cuda/);
    expect(f[0]!.message).not.toMatch(/torch/);
  });

  describe('reference BLAS detector on torch.__config__.show() text', () => {
    it('MKL build (recorded from this venv: pip torch 2.13 CPU, x86-64): mkl, no warning at a normal GEMM rate', () => {
      const text = fixture('torch-config/pip-2.13-x86_64-mkl.recorded.txt');
      expect(classifyTorchBlas(text).blas).toBe('mkl');
      expect(torchBlasFindings({ version: '2.13.0', config: text, libs: [], gemm512Gflops: 150, threads: 2 })).toEqual([
        expect.objectContaining({ id: 'torch-blas', severity: 'info' }),
      ]);
    });

    it('OpenBLAS build (reconstructed aarch64 wheel text, not recorded here): openblas', () => {
      expect(classifyTorchBlas(fixture('torch-config/openblas-aarch64.reconstructed.txt')).blas).toBe('openblas');
      // BLAS_INFO=generic but Debian's alternatives point libblas.so.3 at OpenBLAS: fine.
      expect(classifyTorchBlas('BLAS_INFO=generic', ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3']).blas).toBe('openblas');
    });

    it('parser unit test on reconstructed Debian python3-torch text (the real condition is tested below): warns reference-blas and slow-gemm', () => {
      const text = fixture('torch-config/debian-python3-torch-reference-blas.reconstructed.txt');
      const libs = ['/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0'];
      const c = classifyTorchBlas(text, libs);
      expect(c.blas).toBe('reference');
      expect(c.evidence).toMatch(/BLAS_INFO=generic, loaded \/usr\/lib\/x86_64-linux-gnu\/blas\/libblas/);
      const f = torchBlasFindings({ version: '1.13.1', config: text, libs, gemm512Gflops: 1.8, threads: 2 });
      expect(f.map((x) => [x.id, x.severity])).toEqual([
        ['reference-blas', 'warn'],
        ['slow-gemm', 'warn'],
      ]);
    });
  });
});

describe('fwbench doctor against a real reference-BLAS PyTorch (Debian python3-torch, /usr/bin/python3)', () => {
  const debianPython = '/usr/bin/python3';

  it('FWBENCH_PYTHON=/usr/bin/python3: flags the reference BLAS with the measured GEMM rate', async () => {
    // Not a skip: without Debian's torch this condition cannot be built, and the test says how to build it.
    const probe = await execa(debianPython, ['-c', 'import torch'], { reject: false });
    expect(
      probe.exitCode,
      `${debianPython} cannot import torch (${probe.stderr.trim().split('\n').pop()}); install it with: apt-get install --no-install-recommends python3-torch`,
    ).toBe(0);
    const r = await fwbench(['doctor', '--engines', 'torch', '--threads', '1', '--json'], { env: { FWBENCH_PYTHON: debianPython } });
    expect(r.exitCode, r.stderr).toBe(0);
    const findings = (JSON.parse(r.stdout) as { findings: unknown[] }).findings.map((f) => FindingSchema.parse(f));
    const ref = findings.find((f) => f.id === 'reference-blas');
    expect(ref?.severity, JSON.stringify(findings)).toBe('warn');
    expect(ref!.message).toContain(debianPython);
    expect(ref!.message).toMatch(/BLAS_INFO=generic/);
    expect(ref!.message).toMatch(/512x512 GEMM \d+\.\d+ GFLOP\/s on 1 thread/);
    const rate = Number(/512x512 GEMM (\d+\.\d+) GFLOP/.exec(ref!.message)![1]);
    expect(rate).toBeGreaterThan(0);
  }, 180_000);

  it("the venv's pip torch (MKL) is not flagged, and --python picks the interpreter over FWBENCH_PYTHON", async () => {
    const venv = join(packageRoot(), 'python-runners', '.venv', 'bin', 'python');
    const r = await fwbench(['doctor', '--engines', 'torch', '--threads', '1', '--json', '--python', venv], { env: { FWBENCH_PYTHON: debianPython } });
    expect(r.exitCode, r.stderr).toBe(0);
    const findings = (JSON.parse(r.stdout) as { findings: unknown[] }).findings.map((f) => FindingSchema.parse(f));
    expect(
      findings.filter((f) => f.id === 'reference-blas' || f.id === 'slow-gemm' || f.id === 'torch-blas-unchecked'),
      JSON.stringify(findings),
    ).toEqual([]);
    const info = findings.find((f) => f.id === 'torch-blas');
    expect(info?.message).toContain(venv);
    expect(info?.message).toMatch(/BLAS: mkl/);
  }, 180_000);
});

describe('above-peak: a cell faster than the peak it is judged against', () => {
  const cell = (id: string, fractionOfPeak?: number) => ({ id, fractionOfPeak }) as unknown as Cell;
  it('warns with the count and the worst cell when a fraction exceeds 1, and stays quiet otherwise', () => {
    const f = abovePeakFinding([cell('a', 0.4), cell('b', 1.7), cell('c', 2.38), cell('d')]);
    expect(f?.severity).toBe('warn');
    expect(f?.message).toMatch(/^2 cell\(s\) ran above the measured peak \(up to 238 %: c\)/);
    expect(f?.fix).toMatch(/fwbench peak --no-cache/);
    expect(abovePeakFinding([cell('a', 0.99), cell('b')])).toBeUndefined();
  });
});

import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Device } from '../engines/types.js';
import type { HostInfo } from './detect/host.js';
import type { Finding } from './schema.js';
import { busyCores, parseProcStat } from '../worker/load.js';
import { packageRoot, pythonInterpreter } from '../run/workers.js';

/**
 * `fwbench doctor`: what makes numbers wrong or slow on this machine, each finding with its fix.
 * `fwbench run` runs the cheap checks at start (well under a second) and stores the findings in
 * run.json; the full doctor also loads PyTorch to check which BLAS it is linked to.
 */

export { FindingSchema, type Finding } from './schema.js';

/**
 * `--threads` below the cores this process may use (the physical cores, capped at the CPUs its
 * affinity allows: what the default --threads is) leaves cores idle.
 */
export function threadsFinding(requested: number, physicalCores: number, usableCpus = physicalCores): Finding | undefined {
  const usable = Math.min(physicalCores, usableCpus);
  if (usable <= 1 || requested >= usable) return undefined;
  const capped = usable < physicalCores ? ` (${physicalCores} physical, ${usableCpus} allowed to this process)` : ' physical';
  return {
    id: 'threads-below-cores',
    severity: 'warn',
    message: `--threads ${requested} where ${usable}${capped} cores are usable: every multi-threaded engine runs on ${requested} of them, so throughput and GFLOP/s understate what this machine does`,
    fix: `omit --threads (default: ${usable}, the physical cores this process may run on), or keep it only to measure single-thread behaviour on purpose`,
  };
}

/** tfjs-cpu is TensorFlow.js's pure-JavaScript backend: it measures JavaScript, not a kernel library. */
export function tfjsCpuFinding(engines: readonly string[]): Finding | undefined {
  if (!engines.includes('tfjs-cpu')) return undefined;
  return {
    id: 'tfjs-pure-js-backend',
    severity: 'warn',
    message:
      'tfjs-cpu is TensorFlow.js on its pure-JavaScript backend (one thread, no SIMD): typically 10-100x slower than tfjs-wasm or tfjs-node; its numbers describe that fallback, not TensorFlow.js at its best',
    fix: 'compare with --engines tfjs-wasm (XNNPACK) or tfjs-node (libtensorflow: npx fwbench setup tfjs-node); keep tfjs-cpu only to show the fallback',
  };
}

/** CPU frequency governors of `sysRoot`/devices/system/cpu/cpu*\/cpufreq/scaling_governor. */
export async function readGovernors(sysRoot = '/sys'): Promise<Map<string, string>> {
  const dir = join(sysRoot, 'devices', 'system', 'cpu');
  const out = new Map<string, string>();
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return out;
  }
  for (const cpu of entries.filter((e) => /^cpu\d+$/.test(e)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)))) {
    try {
      out.set(cpu, (await readFile(join(dir, cpu, 'cpufreq', 'scaling_governor'), 'utf8')).trim());
    } catch {
      // no cpufreq for this CPU
    }
  }
  return out;
}

/** A governor other than `performance` lets clocks drop between iterations; none at all is only info. */
export async function governorFindings(sysRoot = '/sys'): Promise<Finding[]> {
  const gov = await readGovernors(sysRoot);
  if (gov.size === 0) {
    return [
      {
        id: 'cpu-governor-unknown',
        severity: 'info',
        message:
          'no CPU frequency governor exposed (no cpufreq in sysfs: typical of VMs and containers, where the hypervisor decides clocks); frequency scaling could not be checked',
        fix: 'nothing to do here; on bare metal check /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor',
      },
    ];
  }
  const other = [...gov].filter(([, g]) => g !== 'performance');
  if (other.length === 0) return [];
  const kinds = [...new Set(other.map(([, g]) => g))];
  return [
    {
      id: 'cpu-governor',
      severity: 'warn',
      message: `CPU frequency governor ${kinds.join(', ')} on ${other.length} of ${gov.size} CPUs (not 'performance'): clocks ramp up and down with load, so short cells and the first samples run slower and vary more`,
      fix: 'sudo cpupower frequency-set -g performance (or: echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)',
    },
  ];
}

/** Warns when other processes keep cores busy (sampled over `sampleMs` from /proc/stat, or the load average where there is none). */
export async function busyFinding(opts: { cores: number; sampleMs?: number; procRoot?: string }): Promise<Finding | undefined> {
  const { cores, sampleMs = 500, procRoot = '/proc' } = opts;
  let busy: number | undefined;
  let how: string;
  try {
    const a = parseProcStat(await readFile(join(procRoot, 'stat'), 'utf8'));
    await new Promise((r) => setTimeout(r, sampleMs));
    const b = parseProcStat(await readFile(join(procRoot, 'stat'), 'utf8'));
    if (a && b) busy = busyCores(a, b, cores);
    how = `over ${sampleMs} ms (/proc/stat)`;
  } catch {
    how = '';
  }
  if (busy === undefined) {
    try {
      busy = Number((await readFile(join(procRoot, 'loadavg'), 'utf8')).split(/\s+/)[0]);
      how = '(1-minute load average)';
    } catch {
      return undefined;
    }
  }
  if (!Number.isFinite(busy) || busy < Math.max(0.5, 0.25 * cores)) return undefined;
  return {
    id: 'busy-machine',
    severity: 'warn',
    message: `other processes keep ${busy.toFixed(1)} of ${cores} cores busy ${how}: cells compete with them for cores and memory bandwidth, so latencies are inflated and noisy`,
    fix: 'stop other work (top / ps -eo pid,pcpu,comm --sort=-pcpu | head) and run again; on shared machines use a dedicated or pinned host',
  };
}

/** nvidia-smi clocks_throttle_reasons bits that mean the GPU is held back (idle, app clocks and sync boost are benign). */
export const THROTTLE_BITS: Record<number, string> = {
  0x4: 'software power cap',
  0x8: 'hardware slowdown',
  0x20: 'software thermal slowdown',
  0x40: 'hardware thermal slowdown',
  0x80: 'hardware power brake slowdown',
};

/** Parses `nvidia-smi --query-gpu=index,clocks_throttle_reasons.active --format=csv,noheader`: per GPU, the harmful reasons set. */
export function parseThrottleReasons(csv: string): Array<{ index: number; mask: number; reasons: string[] }> {
  const out: Array<{ index: number; mask: number; reasons: string[] }> = [];
  for (const line of csv.split(/\r?\n/)) {
    const [index, mask] = line.split(',').map((f) => f.trim());
    if (index === undefined || !/^\d+$/.test(index) || mask === undefined || !/^0x[0-9a-f]+$/i.test(mask)) continue;
    const m = Number(BigInt(mask) & 0xffffn);
    out.push({
      index: Number(index),
      mask: m,
      reasons: Object.entries(THROTTLE_BITS)
        .filter(([bit]) => (m & Number(bit)) !== 0)
        .map(([, r]) => r),
    });
  }
  return out;
}

/** The argument vector of the throttle query. */
export const THROTTLE_QUERY = ['--query-gpu=index,clocks_throttle_reasons.active', '--format=csv,noheader'];

/** GPUs throttled for power or heat right now (no finding without nvidia-smi or GPUs). */
export async function gpuThrottleFindings(nvidiaSmi = 'nvidia-smi'): Promise<Finding[]> {
  const r = await execa(nvidiaSmi, THROTTLE_QUERY, { reject: false, timeout: 5000, stdin: 'ignore' });
  if (r.failed) return [];
  return parseThrottleReasons(r.stdout)
    .filter((g) => g.reasons.length > 0)
    .map((g) => ({
      id: 'gpu-throttled',
      severity: 'warn' as const,
      message: `GPU ${g.index} is throttled (${g.reasons.join(', ')}; clocks_throttle_reasons.active 0x${g.mask.toString(16)}): GPU cells run below the card's clocks`,
      fix: 'check cooling and power limits (nvidia-smi -q -d PERFORMANCE,POWER,TEMPERATURE); on shared machines wait for other GPU jobs to finish',
    }));
}

/** Settings a cell's engine reported that mean it ran on the CPU. */
function ranOnCpu(settings: Record<string, string | number | boolean> | undefined): boolean {
  if (!settings) return false;
  const text = ['executionProviders', 'device', 'backend']
    .map((k) => settings[k])
    .filter((v) => v !== undefined)
    .map(String);
  return text.length > 0 && text.every((t) => !/cuda|gpu|tensorflow/i.test(t));
}

/** GPU asked for but none here, or cells asked for cuda whose engine reports running on the CPU. */
export function deviceFindings(
  device: Device,
  host: Pick<HostInfo, 'gpus'> | undefined,
  cells: Array<{ id: string; device: string; settings?: Record<string, string | number | boolean> }> = [],
): Finding[] {
  const out: Finding[] = [];
  if (device === 'cuda' && host && host.gpus.gpus.length === 0) {
    out.push({
      id: 'gpu-missing',
      severity: 'warn',
      message: `--device cuda but no NVIDIA GPU is visible (${host.gpus.reason ?? 'nvidia-smi lists none'}): every cell will be skipped or fall back`,
      fix: 'run on a machine with an NVIDIA GPU and driver, or use --device cpu',
    });
  }
  const cpuCells = cells.filter((c) => c.device === 'cuda' && ranOnCpu(c.settings));
  if (cpuCells.length > 0) {
    out.push({
      id: 'gpu-cell-on-cpu',
      severity: 'warn',
      message: `${cpuCells.length} cell(s) asked for cuda but their engine reports running on the CPU: ${cpuCells.map((c) => c.id).join(', ')}`,
      fix: "install the engine's GPU build (fwbench detect shows the fix per engine)",
    });
  }
  return out;
}

/** Which BLAS a PyTorch build uses, from `torch.__config__.show()` and the libraries mapped into the process. */
export function classifyTorchBlas(
  configText: string,
  libs: readonly string[] = [],
): { blas: 'mkl' | 'openblas' | 'reference' | 'other' | 'unknown'; evidence: string } {
  const info = /BLAS_INFO=(\w+)/.exec(configText)?.[1];
  const lib = (re: RegExp): string | undefined => libs.find((l) => re.test(l));
  const mkl = lib(/libmkl/);
  const openblas = lib(/libopenblas|openblas-(pthread|openmp|serial)\//);
  if (info === 'mkl' || /Math Kernel Library/.test(configText) || mkl) return { blas: 'mkl', evidence: info ? `BLAS_INFO=${info}` : `loaded ${mkl}` };
  if (info === 'open' || info === 'openblas' || openblas) return { blas: 'openblas', evidence: openblas ? `loaded ${openblas}` : `BLAS_INFO=${info}` };
  const netlib = lib(/\/blas\/libblas\.so|libblas\.so(\.\d+)*$|librefblas/);
  if (netlib || info === 'generic' || info === 'ref' || info === 'reference') {
    return {
      blas: 'reference',
      evidence: [info ? `BLAS_INFO=${info}` : undefined, netlib ? `loaded ${netlib}` : 'no optimized BLAS library mapped'].filter(Boolean).join(', '),
    };
  }
  if (info) return { blas: 'other', evidence: `BLAS_INFO=${info}` };
  return { blas: 'unknown', evidence: 'no BLAS_INFO in torch.__config__.show()' };
}

/** What fwbench_runner.blas_info prints. */
export interface TorchBlasInfo {
  version: string;
  config: string;
  libs: string[];
  gemm512Gflops: number;
  threads: number;
  /** The interpreter that ran the check (set by torchBlasCheck). */
  python?: string;
}

/** An optimized FP32 BLAS does well over this on one modern core at n=512; netlib's reference BLAS stays around 1-3. */
export const GEMM512_EXPECTED_MIN_GFLOPS = 5;

/** Findings from PyTorch's BLAS: a reference BLAS, or a 512^2 GEMM rate far below expectation. */
export function torchBlasFindings(info: TorchBlasInfo): Finding[] {
  const c = classifyTorchBlas(info.config, info.libs);
  const out: Finding[] = [];
  const fix =
    'use the PyTorch wheels from pip (MKL on x86-64, OpenBLAS on ARM): bash python-runners/setup.sh; for a distribution build, install an optimized BLAS (apt install libopenblas0-pthread; update-alternatives --config libblas.so.3-x86_64-linux-gnu)';
  const where = info.python ? ` (${info.python})` : '';
  if (c.blas === 'reference') {
    out.push({
      id: 'reference-blas',
      severity: 'warn',
      message: `torch ${info.version}${where} uses a reference (netlib) BLAS (${c.evidence}; 512x512 GEMM ${info.gemm512Gflops.toFixed(2)} GFLOP/s on ${info.threads} thread(s)): GEMM-bound layers run 10-50x slower than with MKL or OpenBLAS, so torch numbers measure the BLAS, not PyTorch`,
      fix,
    });
  }
  if (info.gemm512Gflops < GEMM512_EXPECTED_MIN_GFLOPS) {
    out.push({
      id: 'slow-gemm',
      severity: 'warn',
      message: `torch.mm at 512x512 reaches ${info.gemm512Gflops.toFixed(2)} GFLOP/s on ${info.threads} thread(s), far below the >${GEMM512_EXPECTED_MIN_GFLOPS} GFLOP/s an optimized BLAS reaches on one core (BLAS: ${c.blas}, ${c.evidence})`,
      fix,
    });
  }
  if (out.length === 0)
    out.push({
      id: 'torch-blas',
      severity: 'info',
      message: `torch ${info.version}${where} BLAS: ${c.blas} (${c.evidence}); 512x512 GEMM ${info.gemm512Gflops.toFixed(1)} GFLOP/s on ${info.threads} thread(s)`,
      fix: 'nothing to do',
    });
  return out;
}

/**
 * Runs fwbench_runner.blas_info (standard library + torch only, so it also runs in an interpreter
 * that lacks the runner's other dependencies, such as a distribution's python3) in `python`, else
 * the Python runner's interpreter (FWBENCH_PYTHON, the venv, python3); loads torch: a few seconds.
 */
export async function torchBlasCheck(threads: number, python?: string): Promise<Finding[]> {
  const py = pythonInterpreter(python ? { ...process.env, FWBENCH_PYTHON: python } : process.env);
  if ('missing' in py)
    return [{ id: 'torch-blas-unchecked', severity: 'info', message: `PyTorch's BLAS not checked: ${py.missing}`, fix: 'bash python-runners/setup.sh' }];
  const r = await execa(py.path, ['-m', 'fwbench_runner.blas_info', String(threads)], {
    reject: false,
    timeout: 120_000,
    env: { PYTHONPATH: join(packageRoot(), 'python-runners'), OMP_NUM_THREADS: String(threads) },
  });
  if (r.failed) {
    const last = `${r.stderr}\n${r.stdout}`.trim().split('\n').pop() ?? '';
    return [
      {
        id: 'torch-blas-unchecked',
        severity: 'info',
        message: `PyTorch's BLAS not checked with ${py.path}: ${last}`,
        fix: `install torch for ${py.path}, or point --python / FWBENCH_PYTHON at python-runners/.venv/bin/python (bash python-runners/setup.sh)`,
      },
    ];
  }
  return torchBlasFindings({ ...(JSON.parse(r.stdout) as TorchBlasInfo), python: py.path });
}

/** What the doctor looks at. */
export interface DoctorOptions {
  engines: readonly string[];
  threads: number;
  device: Device;
  host: HostInfo;
  /** Cheap checks only (fwbench run): no PyTorch load, shorter load sampling. */
  cheap?: boolean;
  /** Interpreter whose PyTorch the BLAS check loads (default: the runner's, see pythonInterpreter). */
  python?: string;
  sysRoot?: string;
  procRoot?: string;
  nvidiaSmi?: string;
  sampleMs?: number;
}

/** Runs every check; warnings first. */
export async function runDoctor(o: DoctorOptions): Promise<Finding[]> {
  const cores = Math.max(1, o.host.cpu.logicalCores);
  const [gov, busy, gpu, blas] = await Promise.all([
    governorFindings(o.sysRoot),
    busyFinding({ cores, sampleMs: o.sampleMs ?? (o.cheap ? 300 : 500), ...(o.procRoot ? { procRoot: o.procRoot } : {}) }),
    o.host.gpus.gpus.length > 0 || o.nvidiaSmi ? gpuThrottleFindings(o.nvidiaSmi) : Promise.resolve([]),
    !o.cheap && o.engines.includes('torch') ? torchBlasCheck(o.threads, o.python) : Promise.resolve([]),
  ]);
  const all = [
    threadsFinding(o.threads, o.host.cpu.physicalCores, availableParallelism()),
    tfjsCpuFinding(o.engines),
    ...deviceFindings(o.device, o.host),
    ...gov,
    busy,
    ...gpu,
    ...blas,
  ].filter((f): f is Finding => f !== undefined);
  return [...all.filter((f) => f.severity === 'warn'), ...all.filter((f) => f.severity === 'info')];
}

/** Human lines for a list of findings. */
export function formatFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'doctor: nothing found that makes numbers wrong or slow\n';
  return findings.map((f) => `${f.severity === 'warn' ? 'WARN' : 'info'} ${f.id}: ${f.message}\n     fix: ${f.fix}\n`).join('');
}

import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import si from 'systeminformation';
import { z } from 'zod';
import { detectNvidiaGpus, NvidiaDetectionSchema } from './nvidia.js';
import { detectTpu, TpuDetectionSchema } from './tpu.js';

/**
 * The host a run happened on: CPU (with the SIMD extensions that decide which kernels frameworks
 * pick), memory, OS, Node, NVIDIA GPUs and TPUs. Embedded in every run.json.
 */

/** The host description embedded in run.json. */
export const HostInfoSchema = z.object({
  cpu: z.object({
    /** CPU vendor, e.g. "Intel", "AMD". */
    manufacturer: z.string(),
    /** Model name, e.g. "Xeon® Platinum 8481C". */
    brand: z.string(),
    /** Physical cores. */
    physicalCores: z.number().int(),
    /** Logical CPUs (hardware threads). */
    logicalCores: z.number().int(),
    /** Nominal clock (GHz); 0 when unknown. */
    speedGHz: z.number().nonnegative(),
    /** DL-relevant SIMD extensions present (sse4_1 ... avx512*, amx*, avx_vnni), as the kernel names them. */
    simd: z.array(z.string()),
  }),
  memory: z.object({
    /** Total physical memory (bytes). */
    totalBytes: z.number().nonnegative(),
  }),
  os: z.object({
    /** Node's platform name, e.g. "linux". */
    platform: z.string(),
    /** Distribution, e.g. "Debian GNU/Linux". */
    distro: z.string(),
    /** Distribution release, e.g. "12". */
    release: z.string(),
    /** Kernel version. */
    kernel: z.string(),
    /** CPU architecture as Node names it, e.g. "x64", "arm64". */
    arch: z.string(),
  }),
  /** Node.js version (process.version). */
  node: z.string(),
  /** Host name. */
  hostname: z.string(),
  /** NVIDIA GPUs (or why none were found). */
  gpus: NvidiaDetectionSchema,
  /** Cloud TPU signs. */
  tpu: TpuDetectionSchema,
});
/** The host description embedded in run.json. */
export type HostInfo = z.infer<typeof HostInfoSchema>;

// Flags that change which kernels oneDNN, XNNPACK, Eigen and MLAS dispatch to.
const SIMD_FLAGS = new Set(['sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx_vnni']);
const isSimdFlag = (f: string): boolean => SIMD_FLAGS.has(f) || f.startsWith('avx512') || f.startsWith('amx');

/** systeminformation reports 0 GHz in many VMs (no cpufreq); /proc/cpuinfo still has "cpu MHz". */
async function cpuinfoGHz(): Promise<number> {
  try {
    const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(await readFile('/proc/cpuinfo', 'utf8'))?.[1]);
    return Number.isFinite(mhz) ? Math.round(mhz / 10) / 100 : 0;
  } catch {
    return 0;
  }
}

/** Describes this host; every part is probed in parallel (well under 2 s without a GPU). */
export async function detectHost(): Promise<HostInfo> {
  const [cpu, flags, mem, osInfo, gpus, tpu] = await Promise.all([si.cpu(), si.cpuFlags(), si.mem(), si.osInfo(), detectNvidiaGpus(), detectTpu()]);
  const present = new Set(flags.split(/\s+/).filter(Boolean));
  return {
    cpu: {
      manufacturer: cpu.manufacturer,
      brand: cpu.brand,
      physicalCores: cpu.physicalCores,
      logicalCores: cpu.cores,
      speedGHz: cpu.speed || cpu.speedMax || (process.platform === 'linux' ? await cpuinfoGHz() : 0),
      simd: [...present].filter(isSimdFlag).sort(),
    },
    memory: { totalBytes: mem.total },
    os: { platform: process.platform, distro: osInfo.distro, release: osInfo.release, kernel: osInfo.kernel, arch: process.arch },
    node: process.version,
    hostname: osInfo.hostname || hostname(),
    gpus,
    tpu,
  };
}

/** A short, stable one-line description to tell hosts apart, e.g. "Xeon® Processor x2 / 24 GiB / no GPU". */
export function hostFingerprint(h: HostInfo): string {
  // Identical GPUs are counted, not repeated ("8x NVIDIA H100 80GB HBM3").
  const counts = new Map<string, number>();
  for (const g of h.gpus.gpus) counts.set(g.name, (counts.get(g.name) ?? 0) + 1);
  const gpus = counts.size > 0 ? [...counts].map(([name, n]) => (n > 1 ? `${n}x ${name}` : name)).join(', ') : 'no GPU';
  const tpu = h.tpu.chips > 0 || h.tpu.acceleratorType ? ` / TPU ${h.tpu.acceleratorType ?? `x${h.tpu.chips}`}` : '';
  return `${h.cpu.brand} x${h.cpu.logicalCores} / ${Math.round(h.memory.totalBytes / 2 ** 30)} GiB / ${gpus}${tpu}`;
}

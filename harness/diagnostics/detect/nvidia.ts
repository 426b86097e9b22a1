import { execa } from 'execa';
import { z } from 'zod';

/**
 * NVIDIA GPU detection through `nvidia-smi` (ships with every NVIDIA driver, so no native
 * binding is needed). Every failure becomes a `reason` instead of an exception: "no GPU here,
 * because ..." is a result of `fwbench detect`, not an error.
 */

/** One NVIDIA GPU as nvidia-smi reports it. */
export const NvidiaGpuSchema = z.object({
  /** nvidia-smi index (the CUDA ordinal unless CUDA_DEVICE_ORDER / CUDA_VISIBLE_DEVICES say otherwise). */
  index: z.number().int().nonnegative(),
  /** Product name, e.g. "NVIDIA H100 80GB HBM3". */
  name: z.string(),
  /** Total device memory (bytes); 0 when nvidia-smi does not report it. */
  memoryBytes: z.number().nonnegative(),
  /** Driver version, e.g. "550.54.15". */
  driver: z.string(),
  /** GPU UUID ("GPU-..."), when reported. */
  uuid: z.string().optional(),
  /** Compute capability, e.g. "9.0"; absent on drivers older than ~510 or when reported as N/A. */
  computeCapability: z.string().optional(),
});
/** One NVIDIA GPU as nvidia-smi reports it. */
export type NvidiaGpu = z.infer<typeof NvidiaGpuSchema>;

/** What `detectNvidiaGpus` found. */
export const NvidiaDetectionSchema = z.object({
  /** GPUs found; empty when there are none or nvidia-smi could not be run. */
  gpus: z.array(NvidiaGpuSchema),
  /** Driver version (from the first GPU). */
  driver: z.string().optional(),
  /** Highest CUDA version the driver supports (nvidia-smi header), e.g. "12.4". */
  cuda: z.string().optional(),
  /** Why no GPU is listed (nvidia-smi missing, failing, or listing none). */
  reason: z.string().optional(),
});
/** What `detectNvidiaGpus` found. */
export type NvidiaDetection = z.infer<typeof NvidiaDetectionSchema>;

const QUERY_FIELDS = ['index', 'name', 'memory.total', 'driver_version', 'uuid', 'compute_cap'] as const;
// Drivers before ~510 reject the whole query when it names compute_cap, so there is a fallback.
const LEGACY_QUERY_FIELDS = QUERY_FIELDS.filter((f) => f !== 'compute_cap');
const TIMEOUT_MS = 10_000;
const MIB = 2 ** 20;

const queryArgs = (fields: readonly string[]): string[] => [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];

/** nvidia-smi's spellings of "no value": "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]". */
function value(field: string | undefined): string | undefined {
  const v = field?.trim();
  if (!v || /^\[.*\]$/.test(v) || v === 'N/A') return undefined;
  return v;
}

/** Parses `nvidia-smi --query-gpu=index,name,memory.total,driver_version,uuid[,compute_cap] --format=csv,noheader,nounits`. */
export function parseNvidiaSmiQuery(csv: string): NvidiaGpu[] {
  const gpus: NvidiaGpu[] = [];
  for (const line of csv.split(/\r?\n/)) {
    const [index, name, memoryMiB, driver, uuid, computeCapability] = line.split(',').map((f) => f.trim());
    // Anything that is not a data row (a blank line, a warning) has no integer index.
    if (index === undefined || !/^\d+$/.test(index) || name === undefined) continue;
    const mem = Number(value(memoryMiB));
    gpus.push({
      index: Number(index),
      name,
      memoryBytes: Number.isFinite(mem) ? mem * MIB : 0,
      driver: value(driver) ?? '',
      uuid: value(uuid),
      computeCapability: value(computeCapability),
    });
  }
  return gpus;
}

/** Reads the CUDA version from the plain `nvidia-smi` header ("CUDA Version: 12.4"; R610+ says "CUDA UMD Version: 13.3"). */
export function parseCudaVersion(nvidiaSmiPlainOutput: string): string | undefined {
  return /CUDA (?:UMD )?Version:\s*(\d+(?:\.\d+)*)/.exec(nvidiaSmiPlainOutput)?.[1];
}

type SmiResult = { ok: true; stdout: string } | { ok: false; reason: string; output: string };

/** Runs nvidia-smi without a shell and turns every way it can fail into one precise sentence. */
async function runNvidiaSmi(cmd: string, args: string[]): Promise<SmiResult> {
  const r = await execa(cmd, args, { reject: false, timeout: TIMEOUT_MS, stdin: 'ignore' });
  if (!r.failed) return { ok: true, stdout: r.stdout };
  const output = `${r.stderr}\n${r.stdout}`;
  const isName = !cmd.includes('/');
  if (r.code === 'ENOENT') return { ok: false, reason: isName ? `${cmd} not found on PATH` : `${cmd} not found`, output };
  if (r.code === 'EACCES') return { ok: false, reason: `${cmd} is not executable`, output };
  if (r.timedOut) return { ok: false, reason: `${cmd} did not answer within ${TIMEOUT_MS / 1000} s`, output };
  // nvidia-smi prints most of its failures ("NVIDIA-SMI has failed because it couldn't communicate
  // with the NVIDIA driver", "No devices were found") on stdout, not stderr.
  const firstLine = [r.stderr, r.stdout]
    .flatMap((s) => s.split(/\r?\n/))
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  const how = r.exitCode !== undefined ? `exit code ${r.exitCode}` : (r.signal ?? 'failed');
  return { ok: false, reason: `${cmd} failed (${how})${firstLine ? `: ${firstLine}` : ''}`, output };
}

/** Lists NVIDIA GPUs with nvidia-smi; never throws: without GPUs, `reason` says why. */
export async function detectNvidiaGpus(
  opts: { /** Path or command name of nvidia-smi (default 'nvidia-smi'). */ nvidiaSmi?: string } = {},
): Promise<NvidiaDetection> {
  const cmd = opts.nvidiaSmi ?? 'nvidia-smi';
  // The CUDA version is only in the plain header; both calls are independent, so run them together.
  const [first, plain] = await Promise.all([runNvidiaSmi(cmd, queryArgs(QUERY_FIELDS)), runNvidiaSmi(cmd, [])]);
  let query = first;
  if (!query.ok && /compute_cap/.test(query.output) && /not a valid field/i.test(query.output)) {
    query = await runNvidiaSmi(cmd, queryArgs(LEGACY_QUERY_FIELDS));
  }
  if (!query.ok) return { gpus: [], reason: query.reason };
  const gpus = parseNvidiaSmiQuery(query.stdout);
  const cuda = plain.ok ? parseCudaVersion(plain.stdout) : undefined;
  if (gpus.length === 0) return { gpus, cuda, reason: `${cmd} listed no GPUs` };
  return { gpus, driver: gpus[0]?.driver || undefined, cuda };
}

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * Cloud TPU detection from what a TPU VM exposes without any TPU library: device files, PCI
 * vendor/device IDs in sysfs, and the TPU_* environment of the VM image. Each sign seen is
 * reported in words so a user can tell why fwbench thinks there is (or is not) a TPU.
 */

/** What `detectTpu` found. */
export const TpuDetectionSchema = z.object({
  /** At least one sign of a TPU was seen. */
  present: z.boolean(),
  /** Each sign seen, in words (device files, PCI devices, environment variables). */
  signs: z.array(z.string()),
  /** TPU chips: /dev/accel* devices, else Google TPU PCI devices (0 when only the environment says TPU). */
  chips: z.number().int().nonnegative(),
  /** TPU_ACCELERATOR_TYPE, e.g. "v5litepod-8". */
  acceleratorType: z.string().optional(),
});
/** What `detectTpu` found. */
export type TpuDetection = z.infer<typeof TpuDetectionSchema>;

const GOOGLE_PCI_VENDOR = '0x1ae0';
// PCI device IDs of TPU chips, as Google's tpu-info maps them (v2 and v3 share one).
const TPU_GENERATION_BY_PCI_ID: Readonly<Record<string, string>> = {
  '0x0027': 'v2/v3',
  '0x0056': 'v4 lite',
  '0x005e': 'v4',
  '0x0062': 'v5p',
  '0x0063': 'v5e',
  '0x006f': 'v6e',
  '0x0076': 'v7x',
};
// Google functions that every Compute Engine VM has (gVNIC network card, NVMe persistent disk):
// vendor 0x1ae0 alone would make every GCE VM look like a TPU VM.
const GOOGLE_NON_TPU_PCI_IDS = new Set(['0x0042', '0x001f']);

/** Directory entries, or none when the directory is missing or unreadable (that is "no sign"). */
async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim().toLowerCase();
  } catch {
    return undefined;
  }
}

const byNumber = (a: string, b: string): number => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]);
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Looks for the signs of a Cloud TPU VM; missing directories are no sign, never an error. */
export async function detectTpu(
  opts: {
    /** Device directory (default /dev). */
    devDir?: string;
    /** PCI devices in sysfs (default /sys/bus/pci/devices). */
    sysPciDir?: string;
    /** Environment to read TPU_* from (default process.env). */
    env?: NodeJS.ProcessEnv;
  } = {},
): Promise<TpuDetection> {
  const devDir = opts.devDir ?? '/dev';
  const sysPciDir = opts.sysPciDir ?? '/sys/bus/pci/devices';
  const env = opts.env ?? process.env;
  const signs: string[] = [];

  // TPU v2-v4 (and v5 with the accel driver) show up as /dev/accelN.
  const accel = (await entries(devDir)).filter((n) => /^accel\d+$/.test(n)).sort(byNumber);
  if (accel.length > 0) signs.push(`${accel.map((n) => join(devDir, n)).join(', ')}: ${plural(accel.length, 'TPU device file')}`);

  // TPU v5e and later are driven from user space through VFIO: numbered groups in /dev/vfio.
  const vfioDir = join(devDir, 'vfio');
  const vfioGroups = (await entries(vfioDir)).filter((n) => /^\d+$/.test(n)).sort(byNumber);
  const pci = await Promise.all(
    (await entries(sysPciDir)).map(async (address) => ({
      address,
      vendor: await readTrimmed(join(sysPciDir, address, 'vendor')),
      device: (await readTrimmed(join(sysPciDir, address, 'device'))) ?? '?',
    })),
  );
  // A Google device of a known TPU ID is a TPU by itself; one of an unknown ID counts only next to
  // VFIO groups (a TPU generation newer than the table above).
  const tpuPci = pci
    .filter((d) => d.vendor === GOOGLE_PCI_VENDOR && !GOOGLE_NON_TPU_PCI_IDS.has(d.device))
    .filter((d) => TPU_GENERATION_BY_PCI_ID[d.device] !== undefined || vfioGroups.length > 0)
    .sort((a, b) => a.address.localeCompare(b.address));
  if (tpuPci.length > 0) {
    const kinds = [...new Set(tpuPci.map((d) => (TPU_GENERATION_BY_PCI_ID[d.device] ? `TPU ${TPU_GENERATION_BY_PCI_ID[d.device]}` : `device ${d.device}`)))];
    const devices = `${plural(tpuPci.length, 'Google (0x1ae0) PCI device')} (${kinds.join(', ')}) at ${tpuPci.map((d) => d.address).join(', ')}`;
    signs.push(vfioGroups.length > 0 ? `${vfioDir} groups ${vfioGroups.join(', ')} with ${devices}` : devices);
  }

  const tpuVars = Object.keys(env)
    .filter((k) => k.startsWith('TPU_') && env[k] !== undefined)
    .sort();
  // Names only: values such as TPU_WORKER_HOSTNAMES name internal hosts and end up in run.json.
  if (tpuVars.length > 0) signs.push(`environment variables ${tpuVars.join(', ')}`);

  // One chip's cores can be separate PCI functions of one slot (domain:bus:device.function).
  const pciChips = new Set(tpuPci.map((d) => d.address.replace(/\.[0-7]$/, ''))).size;
  return {
    present: signs.length > 0,
    signs,
    chips: accel.length > 0 ? accel.length : pciChips,
    acceleratorType: env.TPU_ACCELERATOR_TYPE || undefined,
  };
}

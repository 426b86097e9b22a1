import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectTpu } from '../harness/diagnostics/detect/tpu.js';
import { tempDir } from './helpers.js';

// No TPU on CI: each test builds a fake /dev and /sys/bus/pci/devices tree the way a Cloud TPU VM
// shows them, with an empty environment unless the test sets one.

/** A fake /dev holding the given device files (names with '/' are made inside folders). */
function fakeDev(root: string, files: string[]): string {
  const dev = join(root, 'dev');
  mkdirSync(dev, { recursive: true });
  for (const f of files) {
    mkdirSync(join(dev, f, '..'), { recursive: true });
    writeFileSync(join(dev, f), '');
  }
  return dev;
}

/** A fake /sys/bus/pci/devices: PCI address -> [vendor, device]. */
function fakePci(root: string, devices: Record<string, [string, string]>): string {
  const pci = join(root, 'sys', 'bus', 'pci', 'devices');
  mkdirSync(pci, { recursive: true });
  for (const [address, [vendor, device]] of Object.entries(devices)) {
    mkdirSync(join(pci, address));
    writeFileSync(join(pci, address, 'vendor'), `${vendor}\n`);
    writeFileSync(join(pci, address, 'device'), `${device}\n`);
  }
  return pci;
}

// Four v5e chips (PCI 0x1ae0:0x0063), the VM's gVNIC (0x1ae0:0x0042, on every GCE VM) and an
// unrelated NVIDIA device.
const V5E_HOST_PCI: Record<string, [string, string]> = {
  '0000:00:04.0': ['0x1ae0', '0x0063'],
  '0000:00:05.0': ['0x1ae0', '0x0063'],
  '0000:00:06.0': ['0x1ae0', '0x0063'],
  '0000:00:07.0': ['0x1ae0', '0x0063'],
  '0000:00:03.0': ['0x1ae0', '0x0042'],
  '0000:00:08.0': ['0x10de', '0x2330'],
};

describe('detectTpu', () => {
  it('fake TPU VM: /dev/accel0..3 are four chips', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const devDir = fakeDev(root, ['accel2', 'accel0', 'accel3', 'accel1', 'null', 'tty0', 'accelerometer']);
    const r = await detectTpu({ devDir, sysPciDir: join(root, 'no-sys'), env: {} });
    expect(r).toEqual({
      present: true,
      chips: 4,
      signs: [`${['accel0', 'accel1', 'accel2', 'accel3'].map((n) => join(devDir, n)).join(', ')}: 4 TPU device files`],
      acceleratorType: undefined,
    });
  });

  it('fake TPU VM: /dev/vfio groups with Google TPU PCI devices, counted from PCI', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const devDir = fakeDev(root, ['vfio/vfio', 'vfio/0', 'vfio/1', 'vfio/2', 'vfio/3']);
    const r = await detectTpu({ devDir, sysPciDir: fakePci(root, V5E_HOST_PCI), env: {} });
    expect(r.present).toBe(true);
    expect(r.chips).toBe(4);
    expect(r.signs).toEqual([
      `${join(devDir, 'vfio')} groups 0, 1, 2, 3 with 4 Google (0x1ae0) PCI devices (TPU v5e) at 0000:00:04.0, 0000:00:05.0, 0000:00:06.0, 0000:00:07.0`,
    ]);
  });

  it('fake TPU VM: accel files and PCI devices together; accel files give the chip count', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const devDir = fakeDev(root, ['accel0', 'accel1', 'accel2', 'accel3', 'vfio/0']);
    const r = await detectTpu({ devDir, sysPciDir: fakePci(root, { ...V5E_HOST_PCI, '0000:00:09.0': ['0x1ae0', '0x0063'] }), env: {} });
    expect(r.chips).toBe(4);
    expect(r.signs).toHaveLength(2);
    expect(r.signs[1]).toMatch(/5 Google \(0x1ae0\) PCI devices \(TPU v5e\)/);
  });

  it('fake TPU VM: a known TPU PCI ID is a sign even without /dev/vfio; cores of one chip count once', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const pci = fakePci(root, { '0000:00:04.0': ['0x1ae0', '0x0076'], '0000:00:04.1': ['0x1ae0', '0x0076'] });
    const r = await detectTpu({ devDir: fakeDev(root, []), sysPciDir: pci, env: {} });
    expect(r).toMatchObject({ present: true, chips: 1, signs: ['2 Google (0x1ae0) PCI devices (TPU v7x) at 0000:00:04.0, 0000:00:04.1'] });
  });

  it('fake TPU VM: an unknown Google PCI ID counts only next to /dev/vfio groups', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const pci = fakePci(root, { '0000:00:04.0': ['0x1ae0', '0x00ff'] });
    expect((await detectTpu({ devDir: fakeDev(join(root, 'a'), []), sysPciDir: pci, env: {} })).present).toBe(false);
    const r = await detectTpu({ devDir: fakeDev(join(root, 'b'), ['vfio/0']), sysPciDir: pci, env: {} });
    expect(r).toMatchObject({ present: true, chips: 1 });
    expect(r.signs[0]).toMatch(/groups 0 with 1 Google \(0x1ae0\) PCI device \(device 0x00ff\) at 0000:00:04\.0$/);
  });

  it('a plain Compute Engine VM (gVNIC, NVMe, /dev/vfio) is not a TPU VM', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const pci = fakePci(root, { '0000:00:03.0': ['0x1ae0', '0x0042'], '0000:00:04.0': ['0x1ae0', '0x001f'], '0000:00:05.0': ['0x10de', '0x2330'] });
    const r = await detectTpu({ devDir: fakeDev(root, ['vfio/vfio', 'vfio/0']), sysPciDir: pci, env: {} });
    expect(r).toEqual({ present: false, signs: [], chips: 0, acceleratorType: undefined });
  });

  it('an empty tree, or none at all, is no TPU and no error', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    expect(await detectTpu({ devDir: fakeDev(root, []), sysPciDir: fakePci(root, {}), env: {} })).toEqual({
      present: false,
      signs: [],
      chips: 0,
      acceleratorType: undefined,
    });
    const missing = join(root, 'missing');
    expect(await detectTpu({ devDir: missing, sysPciDir: missing, env: {} })).toMatchObject({ present: false, signs: [], chips: 0 });
  });

  it('TPU_* environment variables are a sign and give the accelerator type', async () => {
    const root = tempDir('fwbench-fake-tpu-');
    const env = { TPU_ACCELERATOR_TYPE: 'v5litepod-8', TPU_WORKER_ID: '0', PATH: '/usr/bin', CLOUD_TPU_TASK_ID: '0' };
    const r = await detectTpu({ devDir: fakeDev(root, []), sysPciDir: fakePci(root, {}), env });
    expect(r).toEqual({ present: true, signs: ['environment variables TPU_ACCELERATOR_TYPE, TPU_WORKER_ID'], chips: 0, acceleratorType: 'v5litepod-8' });
  });

  it('this machine: answers without throwing', async () => {
    const r = await detectTpu();
    expect(r.chips).toBeGreaterThanOrEqual(0);
    expect(r.present).toBe(r.signs.length > 0);
  });
});

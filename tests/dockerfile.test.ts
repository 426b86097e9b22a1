import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { probeEngine } from '../harness/run/execute.js';
import { engineLibraryEnv } from '../harness/run/workers.js';
import { tempDir } from './helpers.js';

// No Docker engine runs here (the docker client has no daemon and no buildx), so the image is not
// built in these tests: the Dockerfile is checked statically, and the per-engine library path it
// relies on is checked with real workers.

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (!pending) start = i + 1;
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) return;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(pending)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
    pending = '';
  });
  return out;
}

const KEYWORDS = new Set([
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
]);
const dockerfile = instructions(readFileSync('Dockerfile', 'utf8'));

/** Stages by name, each with its instructions. */
function stages(): Map<string, Instruction[]> {
  const out = new Map<string, Instruction[]>();
  let current: Instruction[] | undefined;
  for (const ins of dockerfile) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)\s+AS\s+(\S+)$/i.exec(ins.args);
      expect(m, `line ${ins.line}: FROM without a stage name`).not.toBeNull();
      current = [];
      out.set(m![2]!, current);
    } else current?.push(ins);
  }
  return out;
}

describe('Dockerfile (static check: no Docker engine here to build it)', () => {
  it('parses: known instructions, declared build arguments, JSON forms, COPY --from earlier stages', () => {
    const args = new Set<string>();
    const seen = new Set<string>();
    for (const ins of dockerfile) {
      expect(KEYWORDS.has(ins.keyword), `line ${ins.line}: unknown instruction ${ins.keyword}`).toBe(true);
      if (ins.keyword === 'ARG') args.add(ins.args.split('=')[0]!);
      if (ins.keyword === 'FROM') {
        for (const [, name] of ins.args.matchAll(/\$\{(\w+)\}/g)) expect(args.has(name!), `line ${ins.line}: ARG ${name} not declared before FROM`).toBe(true);
        seen.add(/AS\s+(\S+)$/i.exec(ins.args)![1]!);
      }
      if (['ENTRYPOINT', 'CMD'].includes(ins.keyword)) expect(() => JSON.parse(ins.args), `line ${ins.line}`).not.toThrow();
      const from = /--from=(\S+)/.exec(ins.args);
      if (ins.keyword === 'COPY' && from) expect(seen.has(from[1]!), `line ${ins.line}: COPY --from=${from[1]} names no earlier stage`).toBe(true);
    }
  });

  it('builds a cpu and a cuda variant (VARIANT), both installing with the README set-up script, fwbench as entrypoint', () => {
    const s = stages();
    const variant = dockerfile.find((i) => i.keyword === 'ARG' && i.args.startsWith('VARIANT='));
    expect(variant?.args).toBe('VARIANT=cpu');
    const final = dockerfile.filter((i) => i.keyword === 'FROM').at(-1)!;
    expect(final.args).toBe('base-${VARIANT} AS fwbench');
    for (const v of ['cpu', 'cuda']) expect(s.has(`base-${v}`), `stage base-${v} for VARIANT=${v}`).toBe(true);
    const ins = s.get('fwbench')!;
    expect(
      ins.some((i) => i.keyword === 'RUN' && /npm ci\b.*&& npm run setup\b/.test(i.args)),
      'runs npm ci && npm run setup',
    ).toBe(true);
    expect(ins.find((i) => i.keyword === 'ENTRYPOINT')!.args).toBe('["fwbench"]');
    expect(ins.some((i) => i.keyword === 'VOLUME' && i.args === '/data/results')).toBe(true);
    const cudaEnv = s
      .get('base-cuda')!
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(cudaEnv).toMatch(/FWBENCH_SETUP_DEVICE=cuda/);
    expect(cudaEnv).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it('uses the same set-up as the README and CI, and setup.sh has the requirements the cuda target asks for', () => {
    const setup = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts['setup']!;
    expect(setup).toMatch(/^bash python-runners\/setup.sh && node bin\/fwbench.js setup tfjs-node/);
    // CI runs the README's quick-start commands, line for line, and installs nothing itself.
    const quickStart = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readFileSync('README.md', 'utf8'))![1]!.trim().split('\n');
    expect(quickStart).toEqual(['npm ci && npm run setup && npx fwbench run', 'npm test']);
    const ci = readFileSync('.ci/run', 'utf8').split('\n');
    for (const line of quickStart) expect(ci).toContain(line);
    expect(ci.join('\n')).not.toMatch(/apt-get/);
    expect(readFileSync('python-runners/setup.sh', 'utf8')).toContain('requirements-$device.txt');
    for (const device of ['cpu', 'cuda']) expect(existsSync(`python-runners/requirements-${device}.txt`)).toBe(true);
  });

  it("puts every CUDA 11 package setup.sh installs on tfjs-node-gpu's library path", () => {
    const cudaEnv = stages()
      .get('base-cuda')!
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    const path = /FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU=(\S+)/.exec(cudaEnv)![1]!.split(':');
    const packages = readFileSync('python-runners/requirements-cuda11.txt', 'utf8')
      .split('\n')
      .filter((l) => /^nvidia-/.test(l))
      .map((l) => /^nvidia-([a-z-]+)-cu11/.exec(l)![1]!.replace(/-/g, '_'));
    expect(path.sort()).toEqual(packages.map((p) => `/opt/fwbench/python-runners/.cuda11/nvidia/${p}/lib`).sort());
  });
});

describe('per-engine library path (FWBENCH_LD_LIBRARY_PATH_<ENGINE>), with real workers', () => {
  it('maps the engine id to the variable and puts it in front of LD_LIBRARY_PATH', () => {
    expect(engineLibraryEnv('tfjs-node-gpu', { FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU: '/cuda11/lib', LD_LIBRARY_PATH: '/usr/local/cuda/lib64' })).toEqual({
      LD_LIBRARY_PATH: '/cuda11/lib:/usr/local/cuda/lib64',
    });
    expect(engineLibraryEnv('onnxruntime', { FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU: '/cuda11/lib' })).toEqual({});
  });

  it("reaches only that engine's worker: a broken libtensorflow on tfjs-node's path breaks tfjs-node, not onnxruntime", async () => {
    const dir = tempDir('fwbench-libpath-');
    writeFileSync(join(dir, 'libtensorflow_cc.so.2'), 'not a shared library\n');
    process.env.FWBENCH_LD_LIBRARY_PATH_TFJS_NODE = dir;
    try {
      const [broken, other] = await Promise.all([probeEngine('tfjs-node'), probeEngine('onnxruntime')]);
      expect(broken.available).toBe(false);
      expect(broken.reason).toMatch(/libtensorflow_cc\.so\.2|ELF/);
      expect(other.available, other.reason).toBe(true);
    } finally {
      delete process.env.FWBENCH_LD_LIBRARY_PATH_TFJS_NODE;
    }
    const restored = await probeEngine('tfjs-node');
    expect(restored.available, restored.reason).toBe(true);
  });
});

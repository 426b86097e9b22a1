import { Ajv } from 'ajv';
import { execa } from 'execa';
import fc from 'fast-check';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job as K8sJob } from 'kubernetes-models/batch/v1/Job';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { fetchPodManifest } from '../harness/schedule/k8s.js';
import { readState, shq } from '../harness/schedule/plan.js';
import { fwbench, tempDir } from './helpers.js';

// No Kubernetes cluster and no cloud exist here: these tests check the specs `--dry-run` writes
// against Kubernetes' published OpenAPI schemas (kubernetes-models) and SkyPilot's documented task
// fields, and the shell scripts with the shell's own parser. Submitting them is not tested here.

const RUN = ['--', '--engines', 'onnxruntime,torch', '--workloads', 'transformer', '--preset', 'tiny', '--batch-sizes', '1,8', '--device', 'cuda', '--quick'];

async function dryRun(args: string[]): Promise<string> {
  const dir = join(tempDir('fwbench-spec-'), 'sched');
  const r = await fwbench(['schedule', ...args, '--out', dir, '--dry-run', ...RUN]);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stderr).toContain('nothing submitted');
  return dir;
}

/** SkyPilot task YAML fields as documented (docs.skypilot.co, "YAML spec"); unknown keys are errors there too. */
const SKYPILOT_TASK = {
  type: 'object',
  additionalProperties: false,
  required: ['resources', 'run'],
  properties: {
    name: { type: 'string', pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$' },
    workdir: { type: 'string' },
    num_nodes: { type: 'integer', minimum: 1 },
    envs: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    file_mounts: { type: 'object' },
    setup: { type: 'string' },
    run: { type: 'string' },
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cloud: { type: 'string' },
        infra: { type: 'string' },
        region: { type: 'string' },
        zone: { type: 'string' },
        accelerators: { oneOf: [{ type: 'string', pattern: '^[A-Za-z0-9-]+:\\d+$' }, { type: 'object' }, { type: 'array' }] },
        cpus: { type: ['string', 'number'], pattern: '^\\d+\\+?$' },
        memory: { type: ['string', 'number'], pattern: '^\\d+(\\.\\d+)?\\+?$' },
        instance_type: { type: 'string' },
        use_spot: { type: 'boolean' },
        disk_size: { type: 'integer' },
        image_id: { type: 'string', pattern: '^docker:.+' },
        ports: {},
        labels: { type: 'object' },
      },
    },
  },
};

describe('fwbench schedule --on k8s --dry-run (no cluster here: validated against the Kubernetes schemas)', () => {
  it('writes claims and Jobs that validate, with nvidia.com/gpu limits and results on the claim', async () => {
    const dir = await dryRun([
      '--on',
      'k8s',
      '--split',
      'engine',
      '--image',
      'registry.example/fwbench:cuda',
      '--gpus',
      '1',
      '--namespace',
      'bench',
      '--cpus',
      '8',
      '--mem',
      '32Gi',
    ]);
    const docs = parseAllDocuments(readFileSync(join(dir, 'fwbench-k8s.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, never>);
    expect(docs.map((d) => d['kind'])).toEqual(['PersistentVolumeClaim', 'Job', 'PersistentVolumeClaim', 'Job']);
    const { state } = readState(dir);
    for (const [i, job] of state.jobs.entries()) {
      const pvc = new PersistentVolumeClaim(docs[2 * i]);
      pvc.validate();
      const k = new K8sJob(docs[2 * i + 1]);
      k.validate();
      expect(k.metadata!.namespace).toBe('bench');
      const pod = k.spec!.template.spec!;
      const c = pod.containers[0]!;
      expect(c.image).toBe('registry.example/fwbench:cuda');
      expect(c.resources!.limits!['nvidia.com/gpu']).toBe('1');
      expect(c.resources!.requests).toEqual({ cpu: '8', memory: '32Gi' });
      expect(c.args!.slice(0, 1)).toEqual(['run']);
      expect(c.args!.join(' ')).toContain(`--engines ${job.engines[0]}`);
      expect(c.args!.slice(-2)).toEqual(['--out', `/results/${state.id}/${job.name}/run`]);
      expect(pod.volumes![0]!.persistentVolumeClaim!.claimName).toBe(pvc.metadata!.name);
      expect(c.volumeMounts![0]!.mountPath).toBe('/results');
      expect(pod.restartPolicy).toBe('Never');
      // The pod collect starts to copy the results out validates too.
      new Pod(fetchPodManifest(state, job)).validate();
    }
    expect(state.submitCommands[0]!.argv).toEqual(['kubectl', 'create', '-n', 'bench', '-f', 'fwbench-k8s.yaml', '-o', 'name']);
    // The validator is live: a broken Job is refused.
    expect(() => new K8sJob({ ...docs[1], spec: { template: { spec: { containers: [{ name: 'x', image: 7 }] } } } } as never).validate()).toThrow(
      /image must be string/,
    );
  });

  it('refuses k8s without an image, and options of other schedulers', async () => {
    const a = await fwbench(['schedule', '--on', 'k8s', '--dry-run', '--', '--quick']);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/--on k8s runs a container: give --image/);
    const b = await fwbench(['schedule', '--on', 'k8s', '--image', 'x', '--partition', 'gpu', '--dry-run', '--', '--quick']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/--partition does not apply to --on k8s; its options: --namespace/);
  });
});

describe('fwbench schedule --on skypilot --dry-run (no cloud here: checked against the documented task fields)', () => {
  const validate = new Ajv({ allErrors: true }).compile(SKYPILOT_TASK);

  it('writes one task per job with resources.accelerators, the image as image_id and a run script bash parses', async () => {
    const dir = await dryRun([
      '--on',
      'skypilot',
      '--split',
      'engine',
      '--gpus',
      '1',
      '--gpu-type',
      'H100',
      '--image',
      'registry.example/fwbench:cuda',
      '--cloud',
      'aws',
      '--mem',
      '64+',
    ]);
    const { state } = readState(dir);
    expect(state.specFiles).toEqual(['onnxruntime.sky.yaml', 'torch.sky.yaml']);
    for (const file of state.specFiles) {
      const task = parse(readFileSync(join(dir, file), 'utf8')) as { name: string; resources: Record<string, unknown>; run: string };
      expect(validate(task), JSON.stringify(validate.errors)).toBe(true);
      expect(task.resources).toMatchObject({ accelerators: 'H100:1', image_id: 'docker:registry.example/fwbench:cuda', cloud: 'aws', memory: '64+' });
      expect(task.run).toContain(`--engines ${file.split('.')[0]} --out "$dir/run"`);
      const script = join(dir, `${file}.run.sh`);
      writeFileSync(script, task.run);
      expect((await execa('bash', ['-n', script], { reject: false })).exitCode).toBe(0);
    }
    expect(state.submitCommands.map((c) => c.argv.slice(0, 5))).toEqual(state.jobs.map(() => ['sky', 'launch', '--yes', '--detach-run', '--cluster']));
  });

  it('without an image syncs the checkout as workdir and sets it up with npm run setup (the README set-up)', async () => {
    const dir = await dryRun(['--on', 'skypilot', '--gpus', '2', '--gpu-type', 'A100-80GB']);
    const task = parse(readFileSync(join(dir, 'all.sky.yaml'), 'utf8')) as {
      workdir: string;
      setup: string;
      envs: Record<string, string>;
      resources: Record<string, unknown>;
    };
    expect(validate(task), JSON.stringify(validate.errors)).toBe(true);
    expect(task.workdir).toBe(process.cwd());
    expect(task.setup).toContain('npm run setup');
    expect(task.envs).toEqual({ FWBENCH_SETUP_DEVICE: 'cuda', ONNXRUNTIME_NODE_INSTALL: 'cuda12' });
    expect(task.resources['accelerators']).toBe('A100-80GB:2');
    // The checker is live: an unknown resources key is refused.
    expect(validate({ ...task, resources: { gpu: 'H100' } })).toBe(false);
  });

  it('refuses --gpus without --gpu-type', async () => {
    const r = await fwbench(['schedule', '--on', 'skypilot', '--gpus', '1', '--dry-run', '--', '--device', 'cuda', '--quick']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--gpus on SkyPilot needs --gpu-type/);
  });
});

describe('rendered Slurm and ssh scripts (checked by bash; GPU and container paths not runnable here)', () => {
  it('sbatch with GPUs through pyxis: --gres with the type, srun --container-image, script parses', async () => {
    const dir = await dryRun([
      '--on',
      'slurm',
      '--gpus',
      '2',
      '--gpu-type',
      'h100',
      '--image',
      'nvcr.io#org/fwbench:cuda',
      '--container',
      'pyxis',
      '--partition',
      'gpu',
      '--time',
      '01:00:00',
      '--results-dir',
      '/shared/fwbench',
    ]);
    const text = readFileSync(join(dir, 'fwbench.sbatch'), 'utf8');
    expect(text).toContain('#SBATCH --gres=gpu:h100:2');
    expect(text).toContain('#SBATCH --partition=gpu');
    expect(text).toContain('#SBATCH --time=01:00:00');
    expect(text).toMatch(/srun '--container-image=nvcr.io#org\/fwbench:cuda' --container-mounts=\/shared\/fwbench:\/shared\/fwbench fwbench "\$@"/);
    expect((await execa('bash', ['-n', join(dir, 'fwbench.sbatch')], { reject: false })).exitCode).toBe(0);
  });

  it('sbatch through apptainer passes --nv with GPUs', async () => {
    const dir = await dryRun(['--on', 'slurm', '--gpus', '1', '--image', 'docker://registry.example/fwbench:cuda', '--container', 'apptainer']);
    expect(readFileSync(join(dir, 'fwbench.sbatch'), 'utf8')).toMatch(/apptainer exec --nv --bind \S+ docker:\/\/registry.example\/fwbench:cuda fwbench "\$@"/);
  });

  it('ssh with an image: docker run --gpus with the job folder mounted, script parses, one job per host', async () => {
    const dir = await dryRun(['--on', 'ssh', '--hosts', 'gpu1,alice@gpu2', '--image', 'registry.example/fwbench:cuda', '--gpus', '1']);
    const { state } = readState(dir);
    expect(state.jobs.map((j) => [j.name, j.host])).toEqual([
      ['gpu1', 'gpu1'],
      ['alice-gpu2', 'alice@gpu2'],
    ]);
    const text = readFileSync(join(dir, 'gpu1.sh'), 'utf8');
    expect(text).toMatch(/docker run --rm --gpus 1 -v "\$dir:\/results" registry.example\/fwbench:cuda run .* --out \/results\/run/);
    expect((await execa('sh', ['-n', join(dir, 'gpu1.sh')], { reject: false })).exitCode).toBe(0);
    expect(state.submitCommands[1]!.argv.slice(0, 4)).toEqual(['ssh', '-o', 'BatchMode=yes', 'alice@gpu2']);
  });

  it('shq quotes any word so that the shell gives it back unchanged (property, real sh)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 24 }), fc.string({ unit: 'grapheme', maxLength: 12 })).filter((s) => !s.includes('\0')),
        async (word) => {
          const r = await execa('sh', ['-c', `printf '%s' ${shq(word)}`], { stripFinalNewline: false });
          expect(r.stdout).toBe(word);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('schedule and collect refuse what cannot work, in one line', () => {
  it('refuses to submit when the scheduler client is not on PATH (checked before anything is submitted)', async () => {
    const dir = join(tempDir('fwbench-spec-'), 'sched');
    const r = await execa(process.execPath, ['bin/fwbench.js', 'schedule', '--on', 'k8s', '--image', 'x/fwbench:cuda', '--out', dir, '--', '--quick'], {
      reject: false,
      env: { PATH: '/nonexistent' },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^fwbench: --on k8s needs kubectl on PATH; install the scheduler's client \(or use --dry-run/m);
  });

  it('refuses --gpus when the run flags measure the CPU only, on every scheduler, writing nothing', async () => {
    // Without --device and with --device cpu alike; the GPU runs of the dry runs above are accepted.
    const cases: Array<[string, string[], string[]]> = [
      ['slurm', [], ['--quick']],
      ['k8s', ['--image', 'x/fwbench:cuda'], ['--device', 'cpu']],
      ['skypilot', ['--gpu-type', 'H100'], ['--quick']],
      ['ssh', ['--hosts', 'gpu1', '--image', 'x/fwbench:cuda'], ['--engines', 'torch', '--device', 'cpu']],
    ];
    for (const [on, extra, runFlags] of cases) {
      const dir = join(tempDir('fwbench-spec-'), 'sched');
      const r = await fwbench(['schedule', '--on', on, ...extra, '--gpus', '2', '--out', dir, '--dry-run', '--', ...runFlags]);
      expect(r.exitCode, `${on}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toBe(
        'fwbench: --gpus 2 but the run flags select no GPU device (--device cpu): add --device cuda to the run flags after -- (or drop --gpus)',
      );
      expect(existsSync(dir), on).toBe(false);
    }
  });

  it('refuses to collect a dry run or a folder without a state file', async () => {
    const dir = await dryRun(['--on', 'slurm']);
    const a = await fwbench(['collect', dir]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/state.json is from a dry run: nothing was submitted/);
    const b = await fwbench(['collect', tempDir()]);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/state.json does not exist: give the folder \(or its state.json\) that fwbench schedule wrote/);
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ stateVersion: 1, id: 'x' }));
    const c = await fwbench(['collect', dir]);
    expect(c.exitCode).toBe(2);
    expect(c.stderr).toMatch(/is not an fwbench schedule state file: /);
  });
});

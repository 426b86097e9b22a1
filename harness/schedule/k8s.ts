import { execa } from 'execa';
import { mkdirSync, rmSync } from 'node:fs';
import { join, posix } from 'node:path';
import { stringify } from 'yaml';
import { InputError } from '../errors.js';
import { tailLines, type Job, type ScheduleOptions, type ScheduleState, type Scheduler } from './plan.js';

/**
 * Kubernetes: one batch/v1 Job per job, running the image (whose entrypoint is fwbench) with
 * `nvidia.com/gpu` limits, writing to a PersistentVolumeClaim mounted at /results (one claim per
 * job unless --pvc names an existing one). Collecting starts a small pod that mounts the claim and
 * copies the job's folder out with `kubectl cp`.
 */

const MANIFEST = 'fwbench-k8s.yaml';
const MOUNT = '/results';
/** Image of the pod that reads a claim for `kubectl cp` (which needs tar in the container). */
const FETCH_IMAGE = 'busybox:1.36';

/** A Kubernetes manifest (checked by kubernetes-models in the tests). */
export type Manifest = Record<string, unknown>;

const k8sName = (state: ScheduleState, job: Job): string => `fwbench-${state.id}-${job.name}`;
const claimName = (state: ScheduleState, job: Job): string => state.options.pvc ?? k8sName(state, job);
const labels = (state: ScheduleState, job: Job): Record<string, string> => ({
  'app.kubernetes.io/name': 'fwbench',
  'fwbench/schedule': state.id,
  'fwbench/job': job.name,
});
const metadata = (o: ScheduleOptions, name: string, l: Record<string, string>): Manifest => ({
  name,
  ...(o.namespace ? { namespace: o.namespace } : {}),
  labels: l,
});
const nsArgs = (o: ScheduleOptions): string[] => (o.namespace ? ['-n', o.namespace] : []);

/** The claims (unless --pvc) and Jobs of a schedule, in the order kubectl creates them. */
export function jobManifests(state: ScheduleState): Manifest[] {
  const o = state.options;
  const out: Manifest[] = [];
  for (const job of state.jobs) {
    const l = labels(state, job);
    if (!o.pvc) {
      out.push({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: metadata(o, claimName(state, job), l),
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: o.pvcSize } } },
      });
    }
    const requests = { ...(o.cpus ? { cpu: String(o.cpus) } : {}), ...(o.mem ? { memory: o.mem } : {}) };
    const container = {
      name: 'fwbench',
      image: o.image!,
      args: [...job.runArgs, '--out', posix.join(job.dir, 'run')],
      volumeMounts: [{ name: 'results', mountPath: MOUNT }],
      ...(o.gpus || Object.keys(requests).length
        ? { resources: { ...(Object.keys(requests).length ? { requests } : {}), ...(o.gpus ? { limits: { 'nvidia.com/gpu': String(o.gpus) } } : {}) } }
        : {}),
    };
    out.push({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: metadata(o, k8sName(state, job), l),
      spec: {
        // A benchmark is not retried behind the user's back: a failure is reported by collect.
        backoffLimit: 0,
        template: {
          metadata: { labels: l },
          spec: {
            restartPolicy: 'Never',
            containers: [container],
            volumes: [{ name: 'results', persistentVolumeClaim: { claimName: claimName(state, job) } }],
          },
        },
      },
    });
  }
  return out;
}

/** The pod that mounts a job's claim read-only so `kubectl cp` can copy its results out. */
export function fetchPodManifest(state: ScheduleState, job: Job): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata(state.options, `${k8sName(state, job)}-fetch`, labels(state, job)),
    spec: {
      restartPolicy: 'Never',
      containers: [{ name: 'fetch', image: FETCH_IMAGE, command: ['sleep', '900'], volumeMounts: [{ name: 'results', mountPath: MOUNT, readOnly: true }] }],
      volumes: [{ name: 'results', persistentVolumeClaim: { claimName: claimName(state, job), readOnly: true } }],
    },
  };
}

const toYaml = (docs: Manifest[]): string => docs.map((d) => stringify(d, { aliasDuplicateObjects: false })).join('---\n');

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await execa('kubectl', args, { reject: false, ...(input !== undefined ? { input } : {}) });
  if (r.exitCode !== 0) throw new Error(`kubectl ${args[0]} failed (exit ${r.exitCode}): ${tailLines(`${r.stdout}\n${r.stderr}`)}`);
  return r.stdout;
}

interface JobStatusJson {
  status?: { active?: number; succeeded?: number; failed?: number; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}
interface PodListJson {
  items?: Array<{
    status?: { phase?: string; containerStatuses?: Array<{ state?: { terminated?: { exitCode?: number; reason?: string }; waiting?: { reason?: string } } }> };
  }>;
}

/** The Kubernetes scheduler (batch/v1 Jobs). */
export const k8s: Scheduler = {
  clients: { submit: ['kubectl'], collect: ['kubectl'] },
  options: ['namespace', 'pvc', 'pvcSize', 'cpus', 'mem'],

  check(o) {
    if (!o.image)
      throw new InputError(
        '--on k8s runs a container: give --image REGISTRY/fwbench:TAG (docker build --build-arg VARIANT=cuda -t REGISTRY/fwbench:TAG . && docker push ...)',
      );
    if (o.namespace && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.namespace)) throw new InputError(`--namespace must be a DNS-1123 label, got '${o.namespace}'`);
  },

  defaultResultsDir: (id) => posix.join(MOUNT, id),

  render(state) {
    for (const j of state.jobs)
      if (k8sName(state, j).length > 63 - '-fetch'.length) throw new InputError(`Kubernetes name ${k8sName(state, j)} is too long (at most 57 characters)`);
    return {
      files: [{ name: MANIFEST, text: toYaml(jobManifests(state)) }],
      submitCommands: [{ argv: ['kubectl', 'create', ...nsArgs(state.options), '-f', MANIFEST, '-o', 'name'] }],
    };
  },

  async submit(state, scheduleDir, submitted) {
    const out = await kubectl(['create', ...nsArgs(state.options), '-f', join(scheduleDir, MANIFEST), '-o', 'name']);
    for (const j of state.jobs) {
      const id = `job.batch/${k8sName(state, j)}`;
      if (!out.includes(id)) throw new Error(`kubectl create did not report ${id}: ${tailLines(out)}`);
      submitted({ ...j, submittedId: id });
    }
  },

  async poll(state, job) {
    const o = state.options;
    const s = (JSON.parse(await kubectl(['get', ...nsArgs(o), job.submittedId!, '-o', 'json'])) as JobStatusJson).status ?? {};
    if ((s.succeeded ?? 0) > 0) return { state: 'done', ok: true, detail: 'Job succeeded' };
    const failed = s.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
    if (failed || (s.failed ?? 0) > 0) {
      const pods = JSON.parse(await kubectl(['get', 'pods', ...nsArgs(o), '-l', `job-name=${k8sName(state, job)}`, '-o', 'json'])) as PodListJson;
      const t = pods.items?.[0]?.status?.containerStatuses?.[0]?.state?.terminated;
      return {
        state: 'done',
        ok: false,
        detail: `Job failed${failed ? ` (${failed.reason}: ${failed.message})` : ''}${t ? `; container ${t.reason ?? 'terminated'} with exit code ${t.exitCode}` : ''}`,
      };
    }
    return (s.active ?? 0) > 0 ? { state: 'running', detail: 'Job active' } : { state: 'pending', detail: 'Job waiting for a pod' };
  },

  async fetch(state, job, localDir) {
    const o = state.options;
    const pod = fetchPodManifest(state, job);
    const podName = (pod.metadata as { name: string }).name;
    await kubectl(['apply', ...nsArgs(o), '-f', '-'], stringify(pod));
    try {
      await kubectl(['wait', ...nsArgs(o), '--for=condition=Ready', `pod/${podName}`, '--timeout=300s']);
      const target = join(localDir, job.name);
      rmSync(target, { recursive: true, force: true });
      mkdirSync(localDir, { recursive: true });
      await kubectl(['cp', ...nsArgs(o), `${podName}:${job.dir}`, target]);
      return target;
    } finally {
      await kubectl(['delete', ...nsArgs(o), `pod/${podName}`, '--wait=false']).catch((e: Error) =>
        process.stderr.write(`fwbench collect: could not delete pod ${podName} (delete it by hand): ${e.message}\n`),
      );
    }
  },
};

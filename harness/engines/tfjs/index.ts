import type * as TF from '@tensorflow/tfjs';
import type { TensorMap } from '../../../workloads/safetensors.js';
import type { FamilyName, Params } from '../../../workloads/types.js';
import {
  EngineUnavailable,
  type BuiltModel,
  type BuildRequest,
  type BuiltGenerator,
  type BuiltTrainer,
  type Device,
  type EngineId,
  type EngineRuntime,
  type EngineSettings,
  type NodeEngineDescriptor,
} from '../types.js';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { readOrigin } from '../../setup/tfjs-node.js';
import type { KerasMapping } from '../keras-layout.js';
import type { TfjsModel, TfjsTrainable, TrainableOptions } from './model.js';

/**
 * TensorFlow.js engines: one runtime factory, four backends. Nothing here imports TensorFlow.js
 * at module load (the orchestrator imports this file); frameworks load inside `load()`.
 */

type Tf = typeof TF;
type Backend = 'tensorflow' | 'wasm' | 'cpu';
type NativePackage = '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu';

interface BackendSpec {
  id: EngineId;
  backend: Backend;
  device: Device;
  /** The npm package that registers the backend, for the native ones. */
  nativePackage?: NativePackage;
}

/** A backend registered in this process, with what it reports about itself. */
interface Loaded {
  tf: Tf;
  version: string;
  /** Effective intra-op threads, or why there is no number. */
  threads: number | string;
  details: Record<string, string>;
}

const firstLine = (s: string): string => s.split('\n', 1)[0] ?? s;

function notInstalled(pkg: NativePackage): EngineUnavailable {
  const gpu = pkg === '@tensorflow/tfjs-node-gpu' ? '; it also needs CUDA 11.2 + cuDNN 8.1 and an NVIDIA GPU' : '';
  return new EngineUnavailable(
    `${pkg} is not installed: its install script downloads libtensorflow from storage.googleapis.com, which failed, so npm dropped this optional dependency`,
    `npx fwbench setup tfjs-node${pkg.endsWith('-gpu') ? ' --gpu' : ''} (builds it offline against the TensorFlow Python wheel; run bash python-runners/setup.sh first), or npm install ${pkg}@4.22.0 on a machine that can reach storage.googleapis.com (or set TFJS_NODE_CDN_STORAGE to a mirror)${gpu}`,
  );
}

/** Imports a native tfjs package (which registers the 'tensorflow' backend), classifying failures. */
async function importNative(pkg: NativePackage): Promise<Record<string, unknown>> {
  try {
    // A non-literal specifier: the package is optional, so the type checker must not require it.
    const specifier: string = pkg;
    return (await import(specifier)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(`'${pkg}'`)) throw notInstalled(pkg);
    const needs = pkg === '@tensorflow/tfjs-node-gpu' ? ' with CUDA 11.2 + cuDNN 8.1 on the library path' : '';
    throw new EngineUnavailable(
      `${pkg} is installed but its native addon failed to load: ${firstLine(String(err.message ?? err))}`,
      `npm rebuild ${pkg} (its install script fetches libtensorflow)${needs}`,
    );
  }
}

/** Where the package's libtensorflow came from: fwbench's offline build (from the TF wheel) or the package's own download. */
function libtensorflowOrigin(pkg: NativePackage): string {
  const dir = dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  const o = readOrigin(dir);
  return o
    ? `${o.distribution ?? 'tensorflow'} ${o.tensorflowVersion} Python wheel (${o.libraryDir}), built by fwbench setup`
    : 'libtensorflow downloaded by the package install script';
}

/** Registers and initialises the backend once per process; later calls only re-select it. */
async function loadBackend(spec: BackendSpec, threads: number | undefined): Promise<Loaded> {
  const tf = await import('@tensorflow/tfjs');
  const details: Record<string, string> = {};
  let version = tf.version.tfjs;
  let effective: number | string;
  if (spec.backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The pool size is read when the backend initialises; Node has no wasm threads, so the
    // effective count read back below is 1 whatever is asked.
    if (threads !== undefined) wasm.setThreadsCount(threads);
    await select(tf, 'wasm');
    effective = wasm.getThreadsCount();
    details.simd = String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    details.multithread = String(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  } else if (spec.backend === 'cpu') {
    await select(tf, 'cpu');
    // The cpu backend runs plain JavaScript kernels on the calling thread.
    effective = 1;
  } else {
    const pkg = spec.nativePackage!;
    const native = await importNative(pkg);
    await select(tf, 'tensorflow');
    const versions = native.version as Record<string, string> | undefined;
    version = versions?.['tfjs-node'] ?? version;
    details.package = pkg;
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    if (binding?.TF_Version) details.libtensorflow = binding.TF_Version;
    details.libtensorflowOrigin = libtensorflowOrigin(pkg);
    // TensorFlow sizes its pools from the environment the orchestrator set before the process started.
    effective = process.env.TF_NUM_INTRAOP_THREADS ? Number(process.env.TF_NUM_INTRAOP_THREADS) : 'TensorFlow default (TF_NUM_INTRAOP_THREADS unset)';
  }
  return { tf, version, threads: effective, details: { backend: spec.backend, threads: String(effective), ...details } };
}

/** Makes `name` the active backend, failing loudly when it cannot initialise. */
async function select(tf: Tf, name: Backend): Promise<void> {
  if (tf.getBackend() === name) return;
  if (!(await tf.setBackend(name))) throw new Error(`TensorFlow.js backend '${name}' failed to initialise`);
}

/** Any load failure becomes EngineUnavailable; the package-specific ones already are. */
async function ready(spec: BackendSpec, threads: number | undefined): Promise<Loaded> {
  try {
    return await loadBackend(spec, threads);
  } catch (e) {
    if (e instanceof EngineUnavailable) throw e;
    throw new EngineUnavailable(`${spec.id}: ${e instanceof Error ? e.message : String(e)}`, 'reinstall the dependencies (npm ci) and check the message');
  }
}

/** How a stream model takes its padded batch (settings.streamInputs). */
const STREAM_INPUTS: Partial<Record<FamilyName, string>> = {
  transformer: 'tokens [batch, L] + lengths [batch]: position table sliced to L; -1e9 added to the scores of padded keys',
  rnn: 'tokens [batch, L] + lengths [batch]: tf.layers LSTM stack over [batch, L] (timesteps None) returning sequences; the top layer output at step length - 1, picked by a mask product (step == length - 1)',
};

/** The family builders, loaded with TensorFlow.js only when a model is built. */
async function builder(family: FamilyName): Promise<(w: TensorMap, p: Params, m?: KerasMapping, stream?: boolean) => TfjsModel> {
  switch (family) {
    case 'cnn': {
      const { buildCnn } = await import('./cnn.js');
      return (w, p, m, stream) => {
        if (stream) throw new Error('the cnn family has no sequence length to vary (a shape stream varies the length of token sequences)');
        return buildCnn(w, p, m);
      };
    }
    case 'rnn':
      return (await import('./rnn.js')).buildRnn;
    case 'transformer': {
      // The transformer masks whenever its inputs carry lengths: the same model serves both shapes.
      const { buildTransformer } = await import('./transformer.js');
      return (w, p, m) => buildTransformer(w, p, m);
    }
    case 'decoder':
      throw new Error('the decoder family generates text (--tasks generate): its forward pass is the prefill of a generation, timed there');
  }
}

/** The family builders' trainable variants (the same models, run in training mode). */
async function trainable(family: FamilyName): Promise<(w: TensorMap, p: Params, o: TrainableOptions) => TfjsTrainable> {
  switch (family) {
    case 'cnn':
      return (await import('./cnn.js')).trainableCnn;
    case 'rnn': {
      const { trainableRnn } = await import('./rnn.js');
      return (w, p) => trainableRnn(w, p);
    }
    case 'transformer': {
      const { trainableTransformer } = await import('./transformer.js');
      return (w, p) => trainableTransformer(w, p);
    }
    case 'decoder':
      throw new Error('the decoder family generates text (--tasks generate); it does not train');
  }
}

/** The worker-side runtime of one TF.js backend. */
function createRuntime(spec: BackendSpec): EngineRuntime {
  const checkDevice = (device: Device): void => {
    if (device !== spec.device)
      throw new EngineUnavailable(`${spec.id} runs on ${spec.device} only, not ${device}`, `use device ${spec.device} for ${spec.id}`);
  };
  /** Checks the request, readies the backend and reads back the settings every model of it reports. */
  const prepare = async (req: BuildRequest): Promise<{ tf: Tf; settings: EngineSettings }> => {
    checkDevice(req.device);
    if (req.mode !== 'eager') throw new Error(`${spec.id} has only mode 'eager' (got '${req.mode}')`);
    const { tf, threads, details } = await ready(spec, req.threads);
    return { tf, settings: { ...details, backend: spec.backend, tfjsVersion: tf.version.tfjs, threads, requestedThreads: req.threads } };
  };
  return {
    async probe() {
      const loaded = await ready(spec, undefined);
      return { version: loaded.version, devices: [spec.device], details: { tfjs: loaded.tf.version.tfjs, ...loaded.details } };
    },
    async peak(req) {
      checkDevice(req.device);
      const { tf, details } = await ready(spec, req.threads);
      const { tfjsPeak } = await import('./peak.js');
      return tfjsPeak(tf, req, { ...details, tfjsVersion: tf.version.tfjs });
    },
    async init(req) {
      checkDevice(req.device);
      await ready(spec, req.threads);
    },
    async build(req) {
      const { tf, settings } = await prepare(req);
      const model = (await builder(req.family))(req.weights, req.params, undefined, req.stream);
      return {
        settings: req.stream ? { ...settings, streamInputs: STREAM_INPUTS[req.family] ?? '' } : settings,
        async run(inputs) {
          // Tests build several backends in one process; a worker only ever uses one, so this is a no-op there.
          if (tf.getBackend() !== spec.backend) await select(tf, spec.backend);
          const out = tf.tidy(() => model.predict(inputs));
          try {
            // Readback to host memory is part of the timed work.
            const data = await out.data();
            return data instanceof Float32Array ? data : Float32Array.from(data);
          } finally {
            out.dispose();
          }
        },
        async dispose() {
          model.dispose();
        },
        native: { kind: 'tfjs', tf, model },
      } satisfies BuiltModel;
    },
    async buildTrainer(req): Promise<BuiltTrainer> {
      const { tf, settings } = await prepare(req);
      const { checkGradientKernels, tfjsTrainer } = await import('./train.js');
      // Before anything is built: a backend without a kernel of the backward pass cannot train this family.
      checkGradientKernels(spec.id, req.family, spec.backend);
      const model = (await trainable(req.family))(req.weights, req.params, { batchNormMomentum: req.recipe.batchNormMomentum });
      return tfjsTrainer(model, req, {
        engine: spec.id,
        backend: spec.backend,
        settings,
        select: async () => {
          if (tf.getBackend() !== spec.backend) await select(tf, spec.backend);
        },
      });
    },
    async buildGenerator(req): Promise<BuiltGenerator> {
      if (req.family !== 'decoder') throw new Error(`only the decoder family generates text (got '${req.family}')`);
      const { tf, settings } = await prepare(req);
      const { tfjsGenerator } = await import('./decoder.js');
      return tfjsGenerator(req, {
        settings,
        select: async () => {
          if (tf.getBackend() !== spec.backend) await select(tf, spec.backend);
        },
      });
    },
  };
}

/**
 * What TensorFlow.js cannot compute in, and why (the same on every backend fwbench runs). Checked
 * against tfjs-core 4.22 (DataType, io_utils decodeWeights) and tfjs-node's libtensorflow 2.9.1.
 */
const TFJS_PRECISIONS = {
  bf16: 'TensorFlow.js has no bfloat16 dtype: its tensors are float32, int32, bool, complex64 or string',
  fp16: 'TensorFlow.js has no float16 dtype: its node, wasm and cpu backends compute in float32 (tensorflowjs_converter --quantize_float16 only stores weights as float16, decoded to float32 on load; only WebGL may keep half-float textures where float32 rendering is unavailable)',
  tf32: 'TensorFlow.js has no TF32 switch: libtensorflow 2.9.1, which tfjs-node-gpu loads, enables TF32 by default on Ampere and newer GPUs (TensorFlow >= 2.4) and only its Python/C++ enable_tensor_float_32_execution turns it off, so on such a GPU the matrix products of a tfjs-node-gpu float32 cell may already be TF32 unless NVIDIA_TF32_OVERRIDE=0',
  int8: 'TensorFlow.js has no int8 dtype or kernels: tensorflowjs_converter --quantize_uint8 / --quantize_uint16 only compress the stored weights, which are dequantized to float32 when loaded',
};

function descriptor(spec: BackendSpec, description: string, extra: Pick<NodeEngineDescriptor, 'inDefaultRun'> = {}): NodeEngineDescriptor {
  return {
    id: spec.id,
    framework: 'TensorFlow.js',
    language: 'node',
    devices: [spec.device],
    modes: ['eager'],
    stateLayout: 'keras',
    precisions: TFJS_PRECISIONS,
    description,
    load: async () => createRuntime(spec),
    ...extra,
  };
}

/** TF.js on native libtensorflow (CPU), via @tensorflow/tfjs-node. */
export const tfjsNode = descriptor(
  { id: 'tfjs-node', backend: 'tensorflow', device: 'cpu', nativePackage: '@tensorflow/tfjs-node' },
  'TensorFlow.js on native libtensorflow (CPU) via @tensorflow/tfjs-node; tf.layers / tf ops, eager; generates with tf ops and a tf.concat-grown key/value cache',
);
/** TF.js on native libtensorflow with CUDA, via @tensorflow/tfjs-node-gpu. */
export const tfjsNodeGpu = descriptor(
  { id: 'tfjs-node-gpu', backend: 'tensorflow', device: 'cuda', nativePackage: '@tensorflow/tfjs-node-gpu' },
  'TensorFlow.js on native libtensorflow with CUDA via @tensorflow/tfjs-node-gpu; tf.layers / tf ops, eager; generates with tf ops and a tf.concat-grown key/value cache',
);
/** TF.js WebAssembly backend (XNNPACK kernels). */
export const tfjsWasm = descriptor(
  { id: 'tfjs-wasm', backend: 'wasm', device: 'cpu' },
  'TensorFlow.js WebAssembly backend (XNNPACK; single-threaded under Node); tf.layers / tf ops, eager; generates with tf ops and a tf.concat-grown key/value cache',
);
/** TF.js pure-JavaScript CPU backend: a fallback (the doctor says so), run only when asked for. */
export const tfjsCpu = descriptor(
  { id: 'tfjs-cpu', backend: 'cpu', device: 'cpu' },
  'TensorFlow.js pure-JavaScript CPU backend (one thread; a fallback, run only when asked for); tf.layers / tf ops, eager; generates with tf ops and a tf.concat-grown key/value cache',
  { inDefaultRun: false },
);

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Tensor as OrtTensor } from 'onnxruntime-node';
import type { TensorMap } from '../../workloads/safetensors.js';
import type { FamilyName, Params } from '../../workloads/types.js';
import {
  DEVICES,
  EngineUnavailable,
  type BuildRequest,
  type BuiltModel,
  type Device,
  type EngineRuntime,
  type NodeEngineDescriptor,
  type PeakRequest,
  type PeakResult,
  type ProbeResult,
} from './types.js';

type Ort = typeof import('onnxruntime-node');
type BuildModel = (family: FamilyName, params: Params, weights: TensorMap, options?: { stream?: boolean }) => Uint8Array;

/** ORT graph optimization levels, most optimized (the default) first. */
const MODES = ['all', 'extended', 'basic', 'disabled'] as const;
type Mode = (typeof MODES)[number];

const CUDA_FIX =
  "ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js (the package's own install script, which npm ci does not run; needs CUDA 12 + cuDNN 9 and access to the NuGet feed at api.nuget.org)";

/**
 * Why the CUDA execution provider cannot be used here, or undefined when its libraries are present.
 * onnxruntime-node ships only the CPU provider on npm; its install script fetches the CUDA provider
 * libraries (Linux x64 only) from NuGet next to the binding, unless installation is skipped.
 */
function cudaMissing(): string | undefined {
  if (`${process.platform}/${process.arch}` !== 'linux/x64') {
    return `onnxruntime-node has no CUDA execution provider for ${process.platform}/${process.arch} (Linux x64 only)`;
  }
  const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  const bin = join(dirname(pkg), 'bin', 'napi-v6', 'linux', 'x64');
  const missing = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'].filter((f) => !existsSync(join(bin, f)));
  if (missing.length === 0) return undefined;
  return `CUDA execution provider not installed (${missing.join(', ')} missing in ${bin}; npm ci does not run the install script that downloads it: allowScripts in package.json)`;
}

function createRuntime(ort: Ort, buildModel: BuildModel): EngineRuntime {
  const version = ort.env.versions.node ?? ort.env.versions.common;
  return {
    async probe(): Promise<ProbeResult> {
      const cuda = cudaMissing();
      const devices: Device[] = cuda ? ['cpu'] : [...DEVICES];
      const providers = ort
        .listSupportedBackends()
        .map((b) => b.name)
        .join(', ');
      return { version, devices, details: { providers, ...(cuda ? { cuda, cudaFix: CUDA_FIX } : { cuda: 'CUDA execution provider libraries present' }) } };
    },

    async peak(req: PeakRequest): Promise<PeakResult> {
      if (req.device === 'cuda') {
        const cuda = cudaMissing();
        if (cuda) throw new EngineUnavailable(cuda, CUDA_FIX);
      }
      const { ortPeak } = await import('./onnx/peak.js');
      const r = await ortPeak(ort, req);
      return { ...r, details: { ...r.details, ortVersion: version } };
    },

    async build(req: BuildRequest): Promise<BuiltModel> {
      if (!(MODES as readonly string[]).includes(req.mode)) throw new Error(`onnxruntime: unknown mode '${req.mode}'; valid modes: ${MODES.join(', ')}`);
      if (req.device === 'cuda') {
        const cuda = cudaMissing();
        if (cuda) throw new EngineUnavailable(cuda, CUDA_FIX);
      }
      const executionProviders = req.device === 'cuda' ? ['cuda'] : ['cpu'];
      const options = {
        graphOptimizationLevel: req.mode as Mode,
        intraOpNumThreads: req.threads,
        // One operator at a time: these graphs are chains, and inter-op threads would only compete
        // with the intra-op pool for the same cores.
        interOpNumThreads: 1,
        executionMode: 'sequential' as const,
        // ORT's defaults, set explicitly so the record says what ran: the CPU arena and the memory pattern planner.
        enableCpuMemArena: true,
        enableMemPattern: true,
        executionProviders,
      };
      // A stream model (req.stream) has a symbolic length and a `lengths` input: one session serves every shape.
      const session = await ort.InferenceSession.create(buildModel(req.family, req.params, req.weights, req.stream ? { stream: true } : {}), options);
      const sessionsCreated = 1;
      // The ORT tensors wrapping the host inputs are made once per input map (the worker keeps one), as a user holds
      // them: the graph takes int64 token ids (as exported NLP models do), and neither that
      // widening nor the wrapper objects belong in the timed forward passes (bench/overhead.ts
      // measured ~0.8 µs per pass on cnn/tiny when they were made per call).
      const wrapped = new WeakMap<TensorMap, Record<string, OrtTensor>>();
      const feedsOf = (inputs: TensorMap): Record<string, OrtTensor> => {
        let feeds = wrapped.get(inputs);
        if (feeds) return feeds;
        feeds = {};
        for (const name of session.inputNames) {
          const t = inputs.get(name);
          if (!t) throw new Error(`onnxruntime: input '${name}' missing`);
          // `lengths` stays int32, the type of ONNX LSTM's sequence_lens (the stream graphs declare it so).
          feeds[name] =
            t.dtype === 'F32'
              ? new ort.Tensor('float32', t.data as Float32Array, t.shape)
              : name === 'lengths'
                ? new ort.Tensor('int32', t.data as Int32Array, t.shape)
                : new ort.Tensor(
                    'int64',
                    BigInt64Array.from(t.data, (v) => BigInt(v)),
                    t.shape,
                  );
        }
        wrapped.set(inputs, feeds);
        return feeds;
      };
      // Defaults that change speed, recorded so two runs can be told apart: spinning intra-op
      // threads, and on the CUDA EP its TF32 and cuDNN algorithm search defaults
      // (NVIDIA_TF32_OVERRIDE=0 forces strict FP32 for all engines).
      const defaults = {
        intraOpAllowSpinning: 'ORT default (1)',
        ...(req.device === 'cuda'
          ? {
              cudaUseTf32: 'CUDA EP default (1)',
              cudnnConvAlgoSearch: 'CUDA EP default (EXHAUSTIVE)',
              nvidiaTf32Override: process.env.NVIDIA_TF32_OVERRIDE ?? 'unset',
            }
          : {}),
      };
      return {
        settings: { ...options, ...defaults, executionProviders: executionProviders.join(','), ortVersion: version },
        async run(inputs: TensorMap): Promise<Float32Array> {
          const logits = (await session.run(feedsOf(inputs))).logits;
          if (!logits) throw new Error('onnxruntime: the model returned no logits');
          // onnxruntime-node copies each CPU output into a fresh ArrayBuffer, so the next run
          // cannot overwrite this one (tests/onnx-builder.test.ts checks it): no second copy.
          return logits.data as Float32Array;
        },
        async dispose(): Promise<void> {
          await session.release();
        },
        // ORT compiles (optimizes and plans) a graph once, when its session is created; new shapes reuse it.
        compileCount: () => sessionsCreated,
        native: { kind: 'onnxruntime', session },
      };
    },
  };
}

/** ONNX Runtime via onnxruntime-node, running graphs fwbench builds itself from canonical weights. */
export const onnxruntime: NodeEngineDescriptor = {
  id: 'onnxruntime',
  framework: 'ONNX Runtime',
  language: 'node',
  devices: [...DEVICES],
  modes: [...MODES],
  unsupported: {
    training: {
      '*': 'onnxruntime-node has no training API: it exposes inference sessions only (ONNX Runtime training is the separate onnxruntime-training build, which has no Node package)',
    },
  },
  precisions: {
    bf16: "onnxruntime's CPU execution provider has no bfloat16 kernels for MatMul, Gemm or Conv (the ONNX operator schema allows bfloat16; ORT implements it on CUDA for a few ops only)",
    fp16: {
      mechanism: "fwbench's graph with float16 weights and computation (inputs cast in, logits cast back to float32)",
      devices: ['cuda'],
      limits: "ORT's CPU execution provider implements few float16 kernels (the rest would run through inserted casts to float32)",
    },
    tf32: {
      mechanism: 'the CUDA execution provider option use_tf32 = 1 (its default; fp32 cells set 0)',
      devices: ['cuda'],
      limits: 'TF32 is a mode of NVIDIA tensor cores (Ampere or newer)',
    },
    int8: {
      mechanism:
        "dynamic quantization written into fwbench's graph, as onnxruntime.quantization.quantize_dynamic does it: int8 weights, DynamicQuantizeLinear on activations, MatMulInteger / ConvInteger, rescaled to float32",
      devices: ['cpu'],
      limits: "ORT's integer MatMul and Conv kernels are CPU kernels",
    },
  },
  description: 'ONNX Runtime (onnxruntime-node), CPU or CUDA execution provider; modes are graph optimization levels',
  async load(): Promise<EngineRuntime> {
    // Dynamic imports: the orchestrator imports this descriptor but must never load the runtime.
    const [ort, { buildOnnxModel }] = await Promise.all([import('onnxruntime-node'), import('./onnx/index.js')]);
    return createRuntime(ort, buildOnnxModel);
  },
};

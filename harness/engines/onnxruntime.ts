import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Tensor as OrtTensor } from 'onnxruntime-node';
import type { Precision } from '../../workloads/precision.js';
import type { TensorMap } from '../../workloads/safetensors.js';
import { int, type FamilyName, type Params } from '../../workloads/types.js';
import type { GraphPrecision } from './onnx/precision.js';
import { precisionProblem } from './precision.js';
import {
  DEVICES,
  EngineUnavailable,
  type BuildRequest,
  type BuiltModel,
  type Device,
  type EngineRuntime,
  type GenerateRequest,
  type GenerationStep,
  type BuiltGenerator,
  type NodeEngineDescriptor,
  type PeakRequest,
  type PeakResult,
  type PrecisionUsed,
  type ProbeResult,
} from './types.js';

type Ort = typeof import('onnxruntime-node');
/** What the engine takes from ./onnx (loaded with the runtime, never by the orchestrator). */
interface OnnxTools {
  buildOnnxModel(
    family: FamilyName,
    params: Params,
    weights: TensorMap,
    options?: { stream?: boolean; precision?: GraphPrecision; reduceRange?: boolean },
  ): Uint8Array;
  sessionPrecision(optimizedModel: Uint8Array, asked: 'int8' | 'fp16'): PrecisionUsed;
  cacheNames(layer: number): { pastKey: string; pastValue: string; presentKey: string; presentValue: string };
}

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

/**
 * TF32 on the CUDA execution provider. Its provider option use_tf32 defaults to 1, and
 * onnxruntime-node hands the provider nothing but device_id (js/node/src/session_options_helper.cc
 * makes the options with CreateCUDAProviderOptions and sets only device_id), so a Node session
 * cannot set use_tf32 = 0. NVIDIA's libraries honour NVIDIA_TF32_OVERRIDE=0 (no TF32 in cuBLAS and
 * cuDNN) instead: an fp32 cell sets it in its worker before its session loads the provider, a tf32
 * cell requires it unset. Returns the setting recorded and, for tf32 (asked or planted away), what was used.
 */
function tf32Setting(device: Device, precision: Precision, planted: boolean): { override: string; used?: PrecisionUsed } {
  if (device !== 'cuda') return { override: process.env.NVIDIA_TF32_OVERRIDE ?? 'unset' };
  const strictFp32 = precision === 'fp32' || (precision === 'tf32' && planted);
  if (strictFp32) {
    process.env.NVIDIA_TF32_OVERRIDE = '0';
    const evidence =
      'CUDA EP use_tf32 left at its default 1 (onnxruntime-node passes device_id only), NVIDIA_TF32_OVERRIDE=0 set before the session: cuBLAS and cuDNN run strict float32';
    return { override: '0 (set by fwbench: fp32 cell)', ...(precision === 'tf32' ? { used: { used: 'fp32', evidence } } : {}) };
  }
  if (precision !== 'tf32') return { override: process.env.NVIDIA_TF32_OVERRIDE ?? 'unset' };
  if (process.env.NVIDIA_TF32_OVERRIDE === '0') {
    throw new Error('onnxruntime tf32 needs NVIDIA_TF32_OVERRIDE unset, but this process has NVIDIA_TF32_OVERRIDE=0 (it turns TF32 off in cuBLAS and cuDNN)');
  }
  const evidence = `CUDA execution provider with use_tf32 at its default 1 (onnxruntime-node passes device_id only) and NVIDIA_TF32_OVERRIDE ${process.env.NVIDIA_TF32_OVERRIDE ?? 'unset'}: float32 MatMul/Gemm/Conv may run as TF32 on tensor cores (Ampere or newer); TF32 is a math mode, no dtype shows it`;
  return { override: process.env.NVIDIA_TF32_OVERRIDE ?? 'unset', used: { used: 'tf32', evidence } };
}

/**
 * How an int8 cell's weights are stored on this CPU. ONNX Runtime's quantization guide: on x86
 * without VNNI its uint8 x int8 kernels add pairs of products in 16 bits (vpmaddubsw), which can
 * saturate with full-range 8-bit weights, so it recommends 7-bit weights (`reduce_range`) there;
 * VNNI (avx512_vnni, avx_vnni) accumulates in 32 bits, and ARM's kernels do not saturate.
 */
async function int8Weights(device: Device): Promise<{ reduceRange: boolean; int8Weights: string }> {
  if (device !== 'cpu' || process.arch !== 'x64') return { reduceRange: false, int8Weights: '8-bit, [-127, 127]' };
  const { cpuFlags } = await import('systeminformation');
  const vnni = (await cpuFlags()).split(/\s+/).filter((f) => f === 'avx512_vnni' || f === 'avx_vnni');
  return vnni.length > 0
    ? { reduceRange: false, int8Weights: `8-bit, [-127, 127] (this CPU has ${vnni.join(', ')})` }
    : {
        reduceRange: true,
        int8Weights:
          "7-bit, [-64, 64] (quantize_dynamic's reduce_range: this x86 CPU has no VNNI, where full-range weights can saturate ORT's 16-bit pair sums)",
      };
}

/** The session options of a cell (build and generation alike): its optimization level and threads, and ORT's speed defaults written out. */
function sessionOptions(req: Pick<BuildRequest, 'device' | 'mode' | 'threads'>) {
  return {
    graphOptimizationLevel: req.mode as Mode,
    intraOpNumThreads: req.threads,
    // One operator at a time: these graphs are chains, and inter-op threads would only compete
    // with the intra-op pool for the same cores.
    interOpNumThreads: 1,
    executionMode: 'sequential' as const,
    // ORT's defaults, set explicitly so the record says what ran: the CPU arena and the memory pattern planner.
    enableCpuMemArena: true,
    enableMemPattern: true,
    executionProviders: req.device === 'cuda' ? ['cuda'] : ['cpu'],
  };
}

/**
 * Defaults that change speed, recorded so two runs can be told apart: spinning intra-op threads,
 * and on the CUDA EP its TF32 and cuDNN algorithm search defaults (NVIDIA_TF32_OVERRIDE=0 forces
 * strict FP32 for all engines).
 */
function speedDefaults(device: Device, tf32Override: string): Record<string, string> {
  return {
    intraOpAllowSpinning: 'ORT default (1)',
    ...(device === 'cuda'
      ? {
          cudaUseTf32: 'CUDA EP default (1); onnxruntime-node cannot set it',
          cudnnConvAlgoSearch: 'CUDA EP default (EXHAUSTIVE)',
          nvidiaTf32Override: tf32Override,
        }
      : {}),
  };
}

function createRuntime(ort: Ort, tools: OnnxTools): EngineRuntime {
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
      const precision = req.precision ?? 'fp32';
      const refused = precisionProblem(onnxruntime, precision, { device: req.device, family: req.family, mode: req.mode });
      if (refused) throw new Error(`onnxruntime cannot run ${precision} on ${req.device} (${req.family}, mode ${req.mode}): ${refused}`);
      if (req.device === 'cuda') {
        const cuda = cudaMissing();
        if (cuda) throw new EngineUnavailable(cuda, CUDA_FIX);
      }
      // The planted fault (FWBENCH_FAULT=precision-fallback@build) builds without the mechanism; the evidence below must say so.
      const planted = req.plantPrecisionFallback === true && precision !== 'fp32';
      const rewrite: GraphPrecision = !planted && (precision === 'int8' || precision === 'fp16') ? precision : 'fp32';
      const tf32 = tf32Setting(req.device, precision, planted);
      const int8 = rewrite === 'int8' ? await int8Weights(req.device) : undefined;
      const options = sessionOptions(req);
      // A reduced-precision graph is checked in the form the session runs it: the session saves its
      // optimized graph to a temporary file, read back and deleted below (not done for fp32 cells).
      // The saving is part of session creation, so it is in buildMs: about 76 ms for bert-mini int8
      // (a 35 MB graph; session creation 49 ms without it, 125 ms with it, 2-core AMD EPYC).
      const inspected = precision === 'int8' || precision === 'fp16';
      const dir = inspected ? mkdtempSync(join(tmpdir(), 'fwbench-ort-')) : undefined;
      const optimizedModelFilePath = dir && join(dir, 'session.onnx');
      let used: PrecisionUsed | undefined = tf32.used;
      // A stream model (req.stream) has a symbolic length and a `lengths` input: one session serves every shape.
      const model = tools.buildOnnxModel(req.family, req.params, req.weights, {
        ...(req.stream ? { stream: true } : {}),
        precision: rewrite,
        reduceRange: int8?.reduceRange ?? false,
      });
      let session: Awaited<ReturnType<Ort['InferenceSession']['create']>>;
      try {
        session = await ort.InferenceSession.create(model, { ...options, ...(optimizedModelFilePath ? { optimizedModelFilePath } : {}) });
        if (optimizedModelFilePath) used = tools.sessionPrecision(readFileSync(optimizedModelFilePath), precision as 'int8' | 'fp16');
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
      const observed = used;
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
      const defaults = {
        ...speedDefaults(req.device, tf32.override),
        ...(precision !== 'fp32' ? { precision, graphPrecision: rewrite } : {}),
        ...(int8 ? { int8Weights: int8.int8Weights } : {}),
        ...(inspected ? { precisionEvidence: 'the session graph (optimizedModelFilePath, written during build and deleted)' } : {}),
      };
      return {
        settings: { ...options, ...defaults, executionProviders: options.executionProviders.join(','), ortVersion: version },
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
        ...(observed ? { precisionUsed: () => observed } : {}),
        native: { kind: 'onnxruntime', session },
      };
    },

    /**
     * Greedy generation with fwbench's decoder graph (./onnx/decoder.ts), as ONNX Runtime GenAI
     * runs an exported GPT-2: one session whose graph takes the new tokens and the past key/values.
     * Cache `kv` runs it on the prompt with an empty past, then on one token at a time, feeding its
     * present key/values back as the next step's past (the ort.Tensor objects themselves); cache
     * `none` runs it on the whole sequence so far with an empty past at every step. The ArgMax is
     * in the graph: a step fetches `next` (the ids, int32 [batch]) and the logits only when asked.
     */
    async buildGenerator(req: GenerateRequest): Promise<BuiltGenerator> {
      if (!(MODES as readonly string[]).includes(req.mode)) throw new Error(`onnxruntime: unknown mode '${req.mode}'; valid modes: ${MODES.join(', ')}`);
      if (req.family !== 'decoder') throw new Error(`onnxruntime generates with the decoder family; got ${req.family}`);
      if ((req.precision ?? 'fp32') !== 'fp32') throw new Error(`onnxruntime generates in fp32; got ${req.precision}`);
      if (req.device === 'cuda') {
        const cuda = cudaMissing();
        if (cuda) throw new EngineUnavailable(cuda, CUDA_FIX);
      }
      const tf32 = tf32Setting(req.device, 'fp32', false);
      const options = sessionOptions(req);
      const kv = req.generation.cache === 'kv';
      // Created here, so its optimization is in the cold start.
      const session = await ort.InferenceSession.create(tools.buildOnnxModel('decoder', req.params, req.weights), options);

      const batch = req.batchSize;
      const [heads, hidden] = [int(req.params, 'heads'), int(req.params, 'hidden')];
      const caches = Array.from({ length: int(req.params, 'layers') }, (_, l) => tools.cacheNames(l));
      /** Each present output with the past input it becomes at the next step. */
      const carried = caches.flatMap((n) => [
        [n.presentKey, n.pastKey],
        [n.presentValue, n.pastValue],
      ]) as Array<[string, string]>;
      /** The past of a prefill: every layer's keys and values of no position, [batch, heads, 0, d]. */
      const empty = new ort.Tensor('float32', new Float32Array(0), [batch, heads, 0, hidden / heads]);
      const emptyPast = Object.fromEntries(carried.map(([, pastName]) => [pastName, empty]));
      /** What a step fetches (made once): the ids, the logits when asked, and with the kv cache the presents. */
      const fetches = (logits: boolean): string[] => ['next', ...(logits ? ['logits'] : []), ...(kv ? carried.map(([present]) => present) : [])];
      const fetchWith = fetches(true);
      const fetchWithout = fetches(false);

      /** The ids the last step chose (`next`, int32 [batch]); undefined before a prefill. */
      let chosen: OrtTensor | undefined;
      /** kv: every layer's keys and values so far, the last step's presents under their past names. */
      let past: Record<string, OrtTensor> = emptyPast;
      /** none: the sequence so far, row-major [batch, length] (the prompt, then each chosen id). */
      let sequence = new Int32Array(0);
      let length = 0;

      const run = async (tokens: OrtTensor, wantLogits: boolean): Promise<GenerationStep> => {
        const out = await session.run({ tokens, ...past }, wantLogits ? fetchWith : fetchWithout);
        const next = out.next;
        if (!next || next.type !== 'int32') throw new Error('onnxruntime: the decoder graph returned no int32 `next`');
        chosen = next;
        if (kv) past = Object.fromEntries(carried.map(([present, pastName]) => [pastName, out[present]!]));
        // onnxruntime-node copies each fetched CPU output into a fresh ArrayBuffer: these arrays stay the caller's.
        return { tokens: next.data as Int32Array, ...(wantLogits ? { logits: out.logits!.data as Float32Array } : {}) };
      };

      return {
        settings: {
          ...options,
          ...speedDefaults(req.device, tf32.override),
          executionProviders: options.executionProviders.join(','),
          ortVersion: version,
          sessions: 'one InferenceSession (one graph for the prefill and the decode steps, one copy of the weights)',
          cache: kv
            ? "past/present key-value tensors: each step concatenates every layer's past keys and values with the new tokens' (present), passed back as the next step's past; the prefill's past is empty"
            : 'none: the whole sequence so far with an empty past at every step, logits of its last position',
          argmax: 'in the graph (ArgMax -> next int32 [batch]); a step fetches next, and the logits only when asked',
          ioBinding:
            'none: onnxruntime-node exposes no IO binding (preferredOutputLocation is ONNX Runtime Web only), so every fetched output, the present key/values included, is copied into a fresh JS buffer and fed back from there',
        },
        async prefill(prompt: TensorMap, wantLogits: boolean): Promise<GenerationStep> {
          const t = prompt.get('tokens');
          if (!t || t.dtype !== 'I32' || t.shape.length !== 2 || t.shape[0] !== batch)
            throw new Error(`onnxruntime: the prompt must be an I32 tensor 'tokens' [${batch}, promptLength]`);
          chosen = undefined;
          past = emptyPast;
          if (!kv) {
            sequence = Int32Array.from(t.data);
            length = t.shape[1]!;
          }
          return run(new ort.Tensor('int32', t.data as Int32Array, t.shape), wantLogits);
        },
        async decode(wantLogits: boolean): Promise<GenerationStep> {
          if (!chosen) throw new Error('onnxruntime: decode() before prefill()');
          const ids = chosen.data as Int32Array;
          if (kv) return run(new ort.Tensor('int32', ids, [batch, 1]), wantLogits);
          // No cache: the sequence grows by the chosen ids, and all of it runs again.
          const grown = new Int32Array(batch * (length + 1));
          for (let r = 0; r < batch; r++) {
            grown.set(sequence.subarray(r * length, (r + 1) * length), r * (length + 1));
            grown[r * (length + 1) + length] = ids[r]!;
          }
          sequence = grown;
          length += 1;
          return run(new ort.Tensor('int32', sequence, [batch, length]), wantLogits);
        },
        // ORT compiles (optimizes and plans) a graph once, when its session is created; a growing length or cache reuses it.
        compileCount: () => 1,
        async dispose(): Promise<void> {
          await session.release();
        },
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
    bf16: "onnxruntime-node's CPU execution provider (1.30) has no bfloat16 MatMul kernel: a bfloat16 MatMul graph fails at session creation with 'Could not find an implementation for MatMul(13) node with name 'MatMul_0'' (likewise Gemm, Add, Relu, Erf, BatchNormalization; ONNX's Conv and LSTM do not accept bfloat16 at all), and onnxruntime-common's Tensor has no bfloat16 type",
    fp16: {
      mechanism: "fwbench's graph in float16: every float weight stored as float16, float inputs cast to float16 where they enter, logits cast back to float32",
      devices: ['cuda'],
      limits:
        "ORT's CPU execution provider has no float16 MatMul, Gemm or Conv kernels: it casts their float16 weights to float32 and computes in float32 (the session graph shows it), so a cpu cell would time float32",
    },
    tf32: {
      mechanism:
        'the CUDA execution provider with use_tf32 at its default 1 and NVIDIA_TF32_OVERRIDE unset (onnxruntime-node passes the provider nothing but device_id, so use_tf32 cannot be set; fp32 cells on cuda set NVIDIA_TF32_OVERRIDE=0 in their worker instead)',
      devices: ['cuda'],
      limits: 'TF32 is a mode of NVIDIA tensor cores (Ampere or newer)',
    },
    int8: {
      mechanism:
        "dynamic quantization written into fwbench's graph as onnxruntime.quantization.quantize_dynamic does with its defaults: symmetric per-tensor int8 weights, DynamicQuantizeLinear (uint8) on activations, MatMulInteger / ConvInteger rescaled to float32 (fused by ORT into DynamicQuantizeMatMul / MatMulIntegerToFloat from level extended), com.microsoft DynamicQuantizeLSTM for LSTMs; Gemm heads and activation-by-activation products stay float32 as there, and embedding tables too (quantize_dynamic would store them in 8 bits)",
      devices: ['cpu'],
      limits:
        "ORT's CUDA execution provider has no kernels for these nodes (its MatMulInteger takes int8 activations only, DynamicQuantizeLinear makes uint8; no ConvInteger), so they would run on the CPU",
    },
  },
  description:
    'ONNX Runtime (onnxruntime-node), CPU or CUDA execution provider; modes are graph optimization levels; generates with one decoder graph for prefill and decode (past/present key-value tensors, ArgMax in the graph)',
  async load(): Promise<EngineRuntime> {
    // Dynamic imports: the orchestrator imports this descriptor but must never load the runtime.
    const [ort, tools] = await Promise.all([import('onnxruntime-node'), import('./onnx/index.js')]);
    return createRuntime(ort, tools);
  },
};

import { join } from 'node:path';
import { cachedFile } from '../../workloads/cache.js';
import { cacheDir } from '../../workloads/materialize.js';
import { loadTensors, saveTensors } from '../../workloads/safetensors.js';
import type { WorkloadFamily } from '../../workloads/types.js';
import { KERAS_WEIGHTS, kerasTensors } from './keras-layout.js';
import { DEVICES, type PythonEngineDescriptor } from './types.js';

/**
 * TensorFlow (Keras), run by the Python runner (python-runners/fwbench_runner/tensorflow/, a module per family).
 * The canonical -> Keras mapping is described once, in tfjs/keras-layout.ts: the orchestrator
 * writes its result next to the canonical weights and the Python side only calls `set_weights`.
 */

/** Bumped when the file's naming or the mapping changes, so stale cache files are never read. */
const KERAS_FILE_VERSION = 1;

/** Why the shape-option modes do not train: the option they set is what a shape stream measures. */
const SHAPE_OPTION_ONLY =
  "this mode sets tf.function's input_signature / reduce_retracing, which decide what happens when input shapes change; a training cell runs one fixed shape, so fwbench trains with tf.function's defaults (mode function) and measures these options on inference shape streams (--shapes stream)";

/** TensorFlow with Keras on the CPU or CUDA; by default its eager mode and its graph mode (tf.function) run, as PyTorch's eager and TorchScript do; `--modes all` adds XLA. */
export const tensorflow: PythonEngineDescriptor = {
  id: 'tensorflow',
  framework: 'TensorFlow',
  language: 'python',
  devices: [...DEVICES],
  modes: ['eager', 'function', 'xla', 'function-signature', 'function-relaxed'],
  defaultModes: ['eager', 'function'],
  streamModes: ['eager', 'function', 'xla', 'function-signature', 'function-relaxed'],
  /** Generation: eager with a growing cache, tf.function and XLA on a preallocated one; --modes adds the growing cache under tf.function's shape options. */
  generateModes: ['eager', 'function', 'xla'],
  unsupported: {
    training: {
      'function-signature': SHAPE_OPTION_ONLY,
      'function-relaxed': SHAPE_OPTION_ONLY,
    },
  },
  precisions: {
    bf16: {
      mechanism: "keras.mixed_precision policy 'mixed_bfloat16' (variables fp32, layers compute in bf16; the logits cast to float32)",
      devices: ['cpu', 'cuda'],
      modes: ['eager', 'function', 'function-signature', 'function-relaxed'],
      limits:
        "XLA's CPU compiler rewrites every bf16 dot and convolution into converts around an f32 one (the optimized HLO of a mixed_bfloat16 model has only f32 products), so an xla cell would time fp32 products as bf16; xla with bf16 on CUDA is not verified yet",
    },
    fp16: {
      mechanism: "keras.mixed_precision policy 'mixed_float16' (variables fp32, layers compute in fp16; the logits cast to float32)",
      devices: ['cuda'],
      limits: 'float16 compute is the GPU path; on a CPU TensorFlow users reach for mixed_bfloat16',
    },
    tf32: {
      mechanism: 'tf.config.experimental.enable_tensor_float_32_execution(True) (on by default in TensorFlow: fp32 cells turn it off)',
      devices: ['cuda'],
      limits: 'TF32 is a mode of NVIDIA tensor cores (Ampere or newer)',
    },
    int8: "TensorFlow has no int8 inference path of its own: int8 in TensorFlow is TensorFlow Lite's (tf.lite.TFLiteConverter with Optimize.DEFAULT dynamic-range quantization, run by tf.lite.Interpreter with XNNPACK; present and working in tensorflow 2.21 but deprecated there for LiteRT's ai_edge_litert interpreter), a runtime of its own that is not an fwbench engine yet",
  },
  stateLayout: 'keras',
  description:
    'TensorFlow / Keras (Python runner): Keras models, NHWC, weights via the shared Keras mapping; modes eager, function (tf.function), xla (jit_compile), function-signature (tf.function with an input_signature whose batch and length are None: one trace for every shape), function-relaxed (tf.function(reduce_retracing=True): generalizes after a retrace). Generation: eager grows the KV cache with tf.concat; function and xla preallocate it for prompt + new tokens (a tf.Variable for the keys and values of each layer, assigned in place at the step position, which is a tensor input: one trace for the prefill, one for a decode step); function-signature and function-relaxed grow it under those shape options; without a cache, function and xla recompute a [batch, prompt + new tokens] buffer padded on the right',
  nativeWeights(family: WorkloadFamily, params, m) {
    const mapping = KERAS_WEIGHTS[family.name];
    if (!mapping) return undefined;
    return cachedFile(join(cacheDir(), `${family.name}-${m.key}.keras-v${KERAS_FILE_VERSION}.safetensors`), (path) => {
      const layers = mapping(loadTensors(m.weightsPath).tensors, params);
      saveTensors(path, kerasTensors(layers), { layout: 'keras', source: m.weightsPath, mapping: 'harness/engines/keras-layout.ts' });
    });
  },
};

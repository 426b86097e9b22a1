import { DEVICES, type PythonEngineDescriptor } from './types.js';

/** Why the shape-option modes do not train: the option they set is what a shape stream measures. */
const SHAPE_OPTION_ONLY =
  "this mode sets torch.compile's dynamic= option, which decides what happens when input shapes change; a training cell runs one fixed shape, so fwbench trains with torch.compile's defaults (mode compile) and measures dynamic= on inference shape streams (--shapes stream)";

/**
 * PyTorch, run by the Python runner (python-runners/fwbench_runner/torch/, a module per family): nn.Modules
 * in PyTorch's own idiom on the canonical weights. By default its eager mode and its graph mode
 * (TorchScript) sit side by side, as TensorFlow's eager and tf.function do; `--modes all` adds
 * torch.compile, whose compilation took 120 s of a first default run's 395 s on 2 cores.
 */
export const torch: PythonEngineDescriptor = {
  id: 'torch',
  framework: 'PyTorch',
  language: 'python',
  devices: [...DEVICES],
  modes: ['eager', 'torchscript', 'compile', 'compile-static', 'compile-dynamic'],
  defaultModes: ['eager', 'torchscript'],
  streamModes: ['eager', 'torchscript', 'compile', 'compile-static', 'compile-dynamic'],
  /** Generation: eager with a growing cache against torch.compile on a static (preallocated) cache, the pairing PyTorch's users reach for; --modes adds the growing cache under torch.compile. */
  generateModes: ['eager', 'compile-static'],
  unsupported: {
    generate: {
      torchscript:
        "fwbench's torchscript mode is torch.jit.trace, which records one run's shapes and control flow: a trace of a prefill or of one decode step would freeze its cache length, and PyTorch's generation users run eager or torch.compile (TorchScript is in maintenance)",
    },
    training: {
      'compile-static': SHAPE_OPTION_ONLY,
      'compile-dynamic': SHAPE_OPTION_ONLY,
      torchscript:
        "fwbench's torchscript mode is torch.jit.trace + torch.jit.freeze, which folds the weights into constants, so nothing is left to train; TorchScript is in maintenance and PyTorch points training users to eager or torch.compile",
    },
  },
  precisions: {
    bf16: {
      mechanism:
        "torch.autocast(device, dtype=torch.bfloat16) entered once around the compile step (TorchScript trace or torch.compile), the parity run and the timed loop (weights stay fp32; autocast's op lists pick bf16 for linear, matmul, conv and LSTM). Not on an rnn shape stream on the CPU: autocast has no CPU rule for nn.LSTM on a packed sequence, so the engine refuses it rather than run a float32 LSTM",
      devices: ['cpu', 'cuda'],
    },
    fp16: {
      mechanism: "torch.autocast('cuda', dtype=torch.float16) entered once around the compile step, the parity run and the timed loop (weights stay fp32)",
      devices: ['cuda'],
      limits: 'float16 autocast is the CUDA path; on a CPU PyTorch users reach for bf16',
    },
    tf32: {
      mechanism: 'torch.backends.cuda.matmul.allow_tf32 = True and torch.backends.cudnn.allow_tf32 = True (fp32 cells set both False)',
      devices: ['cuda'],
      limits: 'TF32 is a mode of NVIDIA tensor cores (Ampere or newer)',
    },
    int8: {
      mechanism:
        'torch.ao.quantization.quantize_dynamic on nn.Linear and nn.LSTM: int8 weights, activations quantized per batch (fbgemm / x86 kernels). Under torch.compile Dynamo cannot trace the packed int8 weights: each quantized layer is a graph break and runs eagerly between compiled graphs (the cell records compileGraphBreaks)',
      devices: ['cpu'],
      families: ['rnn', 'transformer'],
      limits:
        'dynamic quantization covers Linear and LSTM layers and runs on the CPU only; a ResNet is convolutions, which need static quantization with calibration data (not an fwbench mechanism), so quantize_dynamic would leave it fp32',
    },
  },
  description:
    'PyTorch (Python runner): nn.Module models, NCHW; modes eager (inference_mode), torchscript (trace + freeze), compile (torch.compile, compiled during the cold start; dynamic=None, its default: static first, dynamic after a shape changes), compile-static (dynamic=False: a graph per shape), compile-dynamic (dynamic=True: symbolic shapes from the start). Generation: eager and compile grow the KV cache with torch.cat (compile recompiles as it grows, then goes dynamic), compile-static preallocates it for prompt + new tokens (index_copy_, one graph for the prefill and one for a decode step), compile-dynamic grows it under symbolic shapes; each step (forward, the logits of one position, argmax) runs on the device and only the chosen ids are read back. Without a cache each step recomputes the whole sequence (grown by torch.cat; compile-static runs one fixed [batch, prompt + new tokens] buffer padded on the right, one graph for every step)',
};

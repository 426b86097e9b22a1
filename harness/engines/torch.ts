import { DEVICES, type PythonEngineDescriptor } from './types.js';

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
  modes: ['eager', 'torchscript', 'compile'],
  defaultModes: ['eager', 'torchscript'],
  unsupported: {
    training: {
      torchscript:
        "fwbench's torchscript mode is torch.jit.trace + torch.jit.freeze, which folds the weights into constants, so nothing is left to train; TorchScript is in maintenance and PyTorch points training users to eager or torch.compile",
    },
  },
  description:
    'PyTorch (Python runner): nn.Module models, NCHW; modes eager (inference_mode), torchscript (trace + freeze), compile (torch.compile, compiled during the cold start)',
};

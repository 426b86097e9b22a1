import type { PythonEngineDescriptor } from './types.js';

/**
 * PyTorch, run by the Python runner (python-runners/fwbench_runner/torch_engine.py): nn.Modules
 * in PyTorch's own idiom on the canonical weights. By default its own default (eager) and its
 * best-known compiled mode (torch.compile) sit side by side; `--modes all` adds TorchScript.
 */
export const torch: PythonEngineDescriptor = {
  id: 'torch',
  framework: 'PyTorch',
  language: 'python',
  devices: ['cpu', 'cuda'],
  modes: ['eager', 'torchscript', 'compile'],
  defaultModes: ['eager', 'compile'],
  description: 'PyTorch (Python runner): nn.Module models, NCHW; modes eager (inference_mode), torchscript (trace + freeze), compile (torch.compile, compiled during the cold start)',
};

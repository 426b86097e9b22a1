"""Training in PyTorch, as a PyTorch user writes the loop (workloads/training.ts TRAINING is the
recipe; the job carries it): `model.train()`, `optimizer.zero_grad(set_to_none=True)`, forward,
`F.cross_entropy(logits, labels)` (mean over the batch, int64 labels), `loss.backward()`,
`optimizer.step()` with `torch.optim.SGD(lr, momentum, weight_decay)` (coupled weight decay,
dampening 0, no Nesterov), BatchNorm momentum from the recipe (PyTorch's convention) and eps 1e-5.

Modes: `eager`, and `compile` (`torch.compile(model, dynamic=False)`: the first step compiles the
forward and the backward graphs; the optimizer step stays eager, as most users write it).
`torchscript` cannot train (trace + freeze folds the weights into constants) and is refused.

The float64 reference (`req.reference`): the same model and recipe in torch.float64 on the CPU,
eager, with deterministic algorithms. "torch" is the canonical model. "keras" reproduces how the
Keras engines train the same canonical model, exactly:

- rnn: Keras' LSTM has one bias b where PyTorch has bias_ih + bias_hh. Before training,
  bias_ih := bias_ih + bias_hh and bias_hh := 0, frozen (requires_grad False): the forward pass is
  unchanged, the single trainable bias gets the gradient (and the weight decay) of Keras' b, so
  bias_ih trains exactly as b does. bias_hh is reported as zeros (gradient and state).
- cnn: Keras updates BatchNorm's moving variance with the biased batch variance (divided by
  N*H*W), PyTorch with the unbiased one (N*H*W - 1). Each BatchNorm2d gets hooks: before its
  forward pass, the running variance and the input's biased per-channel variance are kept; after
  it, running_var := (1 - m) * old + m * biased (PyTorch's update with Keras' statistic, replacing
  the one PyTorch just made). The normalization itself uses the biased variance in both
  frameworks, so nothing else differs.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine import Trainer, pick
from . import FAMILIES, base_settings, configure_threads, load_canonical, torch_device
from .precision import set_tf32

#: Modes that can train; `torchscript` is refused with why.
TRAIN_MODES = dict.fromkeys(("eager", "compile"))
REFERENCES = ("torch", "keras")


class BiasedRunningVariance:
    """Hooks on a BatchNorm2d that make its running variance follow Keras' update (biased batch variance)."""

    def __init__(self, bn):
        self.old = self.batch_var = None
        bn.register_forward_pre_hook(self.before)
        bn.register_forward_hook(self.after)

    def before(self, bn, args):
        if bn.training:
            with torch.no_grad():
                self.old = bn.running_var.clone()
                self.batch_var = args[0].var(dim=(0, 2, 3), unbiased=False)

    def after(self, bn, args, out):
        if bn.training:
            # A new tensor, not copy_: autograd saved the running variance for batch_norm's backward
            # (unused in training mode, yet version-checked), so an in-place write would fail it.
            m = bn.momentum
            bn.running_var = ((1 - m) * self.old + m * self.batch_var).detach()


def merge_lstm_biases(lstm):
    """Keras' single LSTM bias: bias_ih := bias_ih + bias_hh, bias_hh := 0 and frozen."""
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            ih, hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
            ih += hh
            hh.zero_()
            hh.requires_grad_(False)


class TorchTrainer(Trainer):
    def __init__(self, module, names, recipe, mode, device, dtype, settings):
        self.module = module
        self.fn = module
        #: torch.compile wraps the model at the first step: its first use imports Dynamo and
        #: Inductor (seconds), part of compiling, which the first step's time includes.
        self.compile_pending = mode == "compile"
        #: PyTorch state name -> canonical name.
        self.names = names
        self.device = device
        self.cuda = device.type == "cuda"
        self.dtype = dtype
        self.settings = settings
        self.parameters = list(module.named_parameters())
        trainable = [p for _, p in self.parameters if p.requires_grad]
        self.optimizer = torch.optim.SGD(trainable, lr=recipe["learningRate"], momentum=recipe["momentum"], weight_decay=recipe["weightDecay"])
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def session(self):
        return torch.enable_grad()

    def prepare(self, inputs, labels):
        # Host tensors as a user holds them (NCHW float images or int64 ids, int64 labels); copying makes them writable.
        x = np.array(inputs["images"], dtype=self.dtype) if "images" in inputs else np.array(inputs["tokens"], dtype=np.int64)
        return torch.from_numpy(x), torch.from_numpy(np.array(labels, dtype=np.int64))

    def step(self, feed, want_grads):
        x, y = feed
        if self.cuda:
            # The batch starts on the host each step, as inference's inputs do.
            x, y = x.to(self.device), y.to(self.device)
        if self.compile_pending:
            self.fn, self.compile_pending = torch.compile(self.module, dynamic=False), False
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.fn(x), y)
        loss.backward()
        # Copied right after backward, before the optimizer step: what backward produced, whatever the step does next.
        grads = self.gradients() if want_grads else None
        self.optimizer.step()
        value = loss.item()
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return value, grads

    def gradients(self):
        """{canonical name: copy of .grad} of every parameter; a frozen one (Keras' merged LSTM bias) reports zeros."""
        return {self.names[n]: host(p.grad) if p.grad is not None else np.zeros(tuple(p.shape), dtype=self.dtype) for n, p in self.parameters}

    def state(self):
        return {self.names[n]: host(t) for n, t in self.module.state_dict().items() if not n.endswith("num_batches_tracked")}

    def peak_device_bytes(self):
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else None


def host(t):
    return t.detach().to("cpu", copy=True).numpy()


def build(req):
    family = pick("torch", "workload family", FAMILIES, req.family)
    if req.mode == "torchscript":
        raise ValueError(
            "torch: mode 'torchscript' cannot train (torch.jit.trace + torch.jit.freeze folds the weights into constants); train with eager or compile"
        )
    pick("torch", "training mode", TRAIN_MODES, req.mode)
    recipe = req.recipe
    if recipe is None:
        raise ValueError("torch: a training request needs the job's training recipe")
    reference = req.reference
    if reference is not None:
        pick("torch", "reference", dict.fromkeys(REFERENCES), reference)
        if req.device != "cpu" or req.mode != "eager":
            raise ValueError(f"torch: the float64 reference trains eagerly on the CPU (got mode '{req.mode}' on '{req.device}')")
    configure_threads(req.threads)
    device = torch_device(req.device)
    if device.type == "cuda":
        # A training cell is fp32: cuDNN's TF32 default (True) would make its convolutions and LSTM TF32.
        set_tf32(False)
    module = family.model(req.params)
    load_canonical(module, req.family, req.weights)
    names = {family.parameter_name(c): c for c in req.weights}
    state_names = [n for n in module.state_dict() if not n.endswith("num_batches_tracked")]
    if missing := [n for n in state_names if n not in names]:
        raise ValueError(f"{req.family}: PyTorch state without a canonical name: {missing}")
    dtype = np.float64 if reference else np.float32
    if reference:
        torch.use_deterministic_algorithms(True)
        module = module.double()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = recipe["batchNormMomentum"]
            if reference == "keras":
                BiasedRunningVariance(m)
    if reference == "keras" and req.family == "rnn":
        merge_lstm_biases(module.lstm)
    module = module.train().to(device)
    placed = {t.device for t in [*module.parameters(), *module.buffers()]}
    if placed != {device}:
        raise RuntimeError(f"model tensors on {sorted(map(str, placed))}, expected all on {device}")
    settings = {
        **base_settings(req, device),
        "task": "training",
        "gradMode": "autograd, model.train()",
        "optimizer": f"torch.optim.SGD(lr={recipe['learningRate']}, momentum={recipe['momentum']}, weight_decay={recipe['weightDecay']})",
        "loss": "F.cross_entropy (mean over the batch)",
        "batchNormMomentum": recipe["batchNormMomentum"],
        "dtype": "float64" if reference else "float32",
        "placement": f"all parameters and buffers on {device}",
    }
    if req.mode == "compile":
        settings["compiled"] = "model forward and backward (torch.compile, dynamic=False); optimizer step eager"
    if reference:
        settings.update(reference=reference, deterministic=torch.are_deterministic_algorithms_enabled())
    return TorchTrainer(module, names, recipe, req.mode, device, dtype, settings)

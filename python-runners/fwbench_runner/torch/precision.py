"""The torch engine's reduced precisions (harness/engines/torch.ts `precisions`) and what a built
model is observed to compute in.

Mechanisms, as a PyTorch user reaches for them:
- bf16, fp16: `torch.autocast(device, dtype)`, entered by the model's session (once around the
  compile step, the parity run and the timed loop, as a user wraps an inference loop); the weights
  stay fp32 and autocast's op lists pick the reduced dtype for linear, matmul, conv and LSTM.
- int8: `torch.ao.quantization.quantize_dynamic` on nn.Linear and nn.LSTM (qint8 weights, each
  batch's activations quantized on the fly), applied at build.
- tf32: `torch.backends.cuda.matmul.allow_tf32` and `torch.backends.cudnn.allow_tf32`, set at build;
  every other CUDA cell sets both False, so its fp32 really is IEEE fp32 (cuDNN's default is True).

What was computed is read from the framework, never from what was asked: the dtype of the logits
the mode's own function returned in the parity run (autocast's reduced dtype shows there, since the
classifier is an nn.Linear); for autocast, a probe of the eager module on the parity batch whose
forward hooks count the Linear, Conv2d and LSTM outputs per dtype, and a model whose product
layers did not all compute in the reduced dtype is not called reduced (on the CPU, autocast has no
rule for nn.LSTM on a packed sequence: a shape stream's LSTM would run float32 under a bf16
classifier, which is why build refuses that combination); for int8, the
torch.ao.nn.quantized.dynamic modules and their weights' dtype (and, for a frozen TorchScript
module, the quantized ops left in its graph); for tf32, the two flags read back and the GPU's
compute capability (TF32 tensor cores start at 8.0, Ampere)."""

import contextlib
from collections import Counter

import torch
from torch import nn

#: Precisions torch runs with autocast -> the dtype autocast computes in.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: The layers whose matrix products a precision changes: the probe counts their outputs' dtypes.
PRODUCT_LAYERS = (nn.Linear, nn.Conv2d, nn.LSTM)
#: What quantize_dynamic quantizes (the declared mechanism: nn.Linear and nn.LSTM).
QUANTIZED_TYPES = {nn.Linear, nn.LSTM}
#: TF32 tensor cores exist from this CUDA compute capability on (Ampere).
TF32_CAPABILITY = (8, 0)


def dynamic_types():
    """torch.ao.nn.quantized.dynamic's Linear and LSTM: what quantize_dynamic swaps nn.Linear and nn.LSTM for."""
    from torch.ao.nn.quantized import dynamic

    return dynamic.Linear, dynamic.LSTM


def set_tf32(on):
    """Both TF32 switches: matrix products (cuBLAS) and convolutions / RNNs (cuDNN)."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def tf32_flags():
    """The TF32 switches read back: (matmul, cudnn)."""
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


class Precision:
    """A model's precision: the mechanism applied at build (`apply`) and around its forward passes
    (`autocast`), and what it was observed to compute in (`used`). With `planted` (the test fault
    FWBENCH_FAULT=precision-fallback) the mechanism is skipped while the cell still asks for
    `asked`: only the observation can tell."""

    def __init__(self, asked, device, planted=False):
        self.asked = asked
        self.device = device
        self.applied = "fp32" if planted else asked
        self.planted = planted
        #: Dtype of the logits the model's function returned in its last run (set by TorchModel.run).
        self.logits_dtype = None
        #: Linear and LSTM modules before quantization (int8).
        self.quantizable = 0

    def apply(self, module):
        """The build-time part of the mechanism: TF32 switches on CUDA, quantize_dynamic for int8."""
        if self.applied in AUTOCAST and self.device.type == "cpu" and any(isinstance(m, nn.LSTM) for m in module.modules()):
            check_cpu_autocast_lstm(AUTOCAST[self.applied])
        if self.device.type == "cuda":
            set_tf32(self.applied == "tf32")
        if self.applied != "int8":
            return module
        self.quantizable = sum(type(m) in QUANTIZED_TYPES for m in module.modules())
        return torch.ao.quantization.quantize_dynamic(module, QUANTIZED_TYPES, dtype=torch.qint8)

    def autocast(self):
        """The forward-time part: autocast for bf16 and fp16, nothing otherwise."""
        if self.applied not in AUTOCAST:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST[self.applied])

    def settings(self):
        """What a cell records about its precision."""
        s = {"precision": self.asked}
        if self.planted:
            s["precisionMechanism"] = f"none: FWBENCH_FAULT=precision-fallback planted a silent fp32 fallback for {self.asked}"
        elif self.applied in AUTOCAST:
            dtype = str(AUTOCAST[self.applied]).split(".")[-1]
            s["precisionMechanism"] = f"torch.autocast('{self.device.type}', dtype=torch.{dtype}) around the compile step, parity run and timed loop"
        elif self.applied == "int8":
            s["precisionMechanism"] = "torch.ao.quantization.quantize_dynamic({nn.Linear, nn.LSTM}, dtype=torch.qint8)"
            s["quantizedEngine"] = torch.backends.quantized.engine
        elif self.applied == "tf32":
            s["precisionMechanism"] = "torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True"
        return s

    def used(self, module, fn, feed, stream):
        """{"used", "evidence"} from the framework's dtypes after the parity run: `module` is the
        eager nn.Module, `fn` what the mode runs (a frozen TorchScript module, a torch.compile
        wrapper or the module itself), `feed` the parity batch on the device."""
        dtype = self.logits_dtype
        if dtype is None:
            raise RuntimeError("precision_used() before any run: the evidence is read from the parity run")
        evidence = [f"logits {dtype_name(dtype)} from the {type(fn).__name__}'s parity run"]
        quantized = quantized_modules(module)
        if self.device.type == "cuda":
            evidence.append(tf32_evidence())
        if dtype in (torch.bfloat16, torch.float16):
            counts, every = probe(module, feed, stream, dtype)
            # Reduced only where every product layer was: a float32 LSTM under a bf16 classifier is not a bf16 model.
            used = ("bf16" if dtype == torch.bfloat16 else "fp16") if every else "fp32"
            evidence.append(f"eager probe under the same autocast: {counts}{'' if every else f' (not every product layer in {dtype_name(dtype)})'}")
        elif dtype != torch.float32:
            used = "fp32"  # no precision of the axis computes in this dtype: the gate fails it
        elif quantized:
            used = "int8"
            evidence.append(quantized_evidence(quantized, self.quantizable, fn))
        elif self.device.type == "cuda" and all(tf32_flags()) and torch.cuda.get_device_capability(self.device) >= TF32_CAPABILITY:
            used = "tf32"
        else:
            used = "fp32"
            if self.asked in AUTOCAST:
                evidence.append(f"eager probe: {probe(module, feed, stream, AUTOCAST[self.asked])[0]}")
            elif self.asked == "int8":
                evidence.append(f"no torch.ao.nn.quantized.dynamic module (Linear and LSTM: {count_types(module, QUANTIZED_TYPES)})")
        return {"used": used, "evidence": "; ".join(evidence)}


def check_cpu_autocast_lstm(dtype):
    """Raises EngineUnavailable when this CPU cannot run nn.LSTM under autocast to `dtype`: on the
    CPU autocast sends LSTM to oneDNN, whose reduced-precision RNN primitive needs AVX-512 (an
    AVX2-only CPU raises "could not create a primitive descriptor for the LSTM forward propagation
    primitive"). Tried on a one-step LSTM, so the reason is this machine's own answer."""
    from ..engine import EngineUnavailable

    probe_lstm = nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype):
            probe_lstm(torch.zeros(1, 1, 4))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise EngineUnavailable(
            f"this CPU has no {dtype_name(dtype)} LSTM kernel: torch.autocast('cpu', dtype=torch.{dtype_name(dtype)}) runs nn.LSTM through oneDNN, "
            f"whose reduced-precision RNN needs AVX-512 (torch CPU capability {torch.backends.cpu.get_cpu_capability()}); it raised: {first}",
            f"run {dtype_name(dtype)} LSTM cells on a CPU with AVX-512 (avx512_core or newer, e.g. Intel Cooper Lake / Sapphire Rapids, "
            "AMD Zen 4) or on a CUDA GPU",
        ) from e


def dtype_name(dtype):
    """`bfloat16` for torch.bfloat16."""
    return str(dtype).split(".")[-1]


def stream_problem(family, device, precision):
    """Why torch cannot run `precision` on a shape stream of `family` on `device`, or None."""
    if family == "rnn" and device == "cpu" and precision in AUTOCAST:
        return (
            f"torch cannot run {precision} on an rnn shape stream on the CPU: autocast has no CPU rule for nn.LSTM on a packed sequence "
            "(pack_padded_sequence), so the LSTM would run float32 under a reduced-precision classifier; use fixed shapes"
        )
    return None


def count_types(module, types):
    return sum(type(m) in types for m in module.modules())


def quantized_modules(module):
    """The torch.ao.nn.quantized.dynamic modules in `module`."""
    types = dynamic_types()
    return [m for m in module.modules() if isinstance(m, types)]


def weight_dtypes(m):
    """The dtypes of a dynamic quantized module's weights."""
    linear, _ = dynamic_types()
    return [m.weight().dtype] if isinstance(m, linear) else [w.dtype for w in m.get_weight().values()]


def quantized_evidence(quantized, quantizable, fn):
    """One line: how many Linear and LSTM modules are dynamic quantized ones, their weights' dtypes,
    and for TorchScript the quantized ops in the frozen graph the mode runs."""
    kinds = Counter(type(m).__name__ for m in quantized)
    dtypes = sorted({str(d).split(".")[-1] for m in quantized for d in weight_dtypes(m)})
    counted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    line = f"{len(quantized)} of {quantizable} Linear/LSTM modules are torch.ao.nn.quantized.dynamic ({counted}), weights {', '.join(dtypes)}"
    if isinstance(fn, torch.jit.ScriptModule):
        ops = Counter(n.kind() for n in fn.graph.nodes() if "quantized" in n.kind())
        line += f"; frozen graph ops: {', '.join(f'{n} {k}' for k, n in sorted(ops.items())) or 'no quantized op'}"
    return line


def tf32_evidence():
    matmul, cudnn = tf32_flags()
    major, minor = torch.cuda.get_device_capability()
    return f"torch.backends.cuda.matmul.allow_tf32={matmul}, torch.backends.cudnn.allow_tf32={cudnn} read back; compute capability {major}.{minor}"


def probe(module, feed, stream, reduced):
    """Runs the eager module once on `feed` (inside the model's session, so under its autocast)
    with forward hooks on its Linear, Conv2d and LSTM layers; returns their outputs' dtypes counted
    by layer type (e.g. `Linear 6/6 bfloat16, LSTM 1/1 bfloat16`) and whether every one is `reduced`."""
    seen = []

    def hook(layer, _inputs, output):
        # nn.LSTM returns (output, (h_n, c_n)), its output a PackedSequence for a packed input.
        first = output[0] if isinstance(output, tuple) else output
        first = first.data if isinstance(first, nn.utils.rnn.PackedSequence) else first
        seen.append((type(layer).__name__, first.dtype))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, PRODUCT_LAYERS)]
    try:
        with torch.no_grad():
            module(*feed) if stream else module(feed)
    finally:
        for h in handles:
            h.remove()
    totals = Counter(kind for kind, _ in seen)
    by_dtype = Counter((kind, dtype_name(dtype)) for kind, dtype in seen)
    counts = ", ".join(f"{kind} {n}/{totals[kind]} {dtype}" for (kind, dtype), n in sorted(by_dtype.items()))
    return counts, bool(seen) and all(dtype == reduced for _, dtype in seen)

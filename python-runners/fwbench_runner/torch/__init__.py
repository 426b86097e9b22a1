"""PyTorch engine: the workload families written as a PyTorch user writes them, one module per
family (cnn.py: torchvision-style ResNet, NCHW; rnn.py: nn.LSTM with batch_first; transformer.py:
BERT-style encoder on nn.Linear and F.scaled_dot_product_attention), loading the canonical weights
directly: the canonical names are PyTorch's module paths, apart from what a family's
`parameter_name` renames (nn.LSTM's flat parameter names, nn.Embedding's `.weight`).

Modes: `eager` (torch.inference_mode), `torchscript` (torch.jit.trace + torch.jit.freeze on the
parity inputs) and torch.compile, which compiles on its first call, with each value of its
`dynamic=` option: `compile` (None, the default: static shapes first, dynamic ones after a shape
changes), `compile-static` (False: a graph per shape) and `compile-dynamic` (True: symbolic shapes
from the start). Tracing and the first compilation are in `TorchModel.compile`, timed as the cold
start's compile segment, never in the timed loop; a shape stream's new shapes compile (or not) in
its cold pass, and `compile_count` reports torch's own count.
Precisions (BuildRequest.precision): bf16 and fp16 by autocast, int8 by quantize_dynamic, tf32 by
the CUDA switches; precision.py applies them and reads back what the model computed in.
Training (`build_trainer`): train.py. Generation (`build_generator`, the decoder family): generate.py."""

import contextlib
import os
import re
import shutil

import numpy as np
import torch

from ..engine import BuiltModel, EngineUnavailable, check_precision, devices_here, pick
from ..manifest import ENGINES
from ..manifest import FAMILIES as FAMILY_DECLARATIONS
from . import cnn, decoder, rnn, transformer
from .precision import Precision, stream_problem

#: Workload family -> its module: `model(params)` (the nn.Module) and `parameter_name(canonical)`.
FAMILIES = {"cnn": cnn, "rnn": rnn, "transformer": transformer, "decoder": decoder}
#: Families with a shape stream -> how their model takes a stream batch (recorded in settings).
STREAM_FAMILIES = {
    "rnn": "model(tokens, lengths): nn.utils.rnn.pack_padded_sequence(enforce_sorted=False), top layer's h_n",
    "transformer": "model(tokens, lengths): positions 0..L-1, -1e9 additive key padding mask (attn_mask of F.scaled_dot_product_attention)",
}
GPU_FIX = "python-runners/.venv/bin/pip install -r python-runners/requirements-gpu.txt on a machine with an NVIDIA GPU and driver"


def load_canonical(model, family, weights):
    """load_state_dict with the canonical tensors; anything missing or extra is an error."""
    state = {FAMILIES[family].parameter_name(name): torch.tensor(np.asarray(a)) for name, a in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # BatchNorm's step counter is training state, absent from inference weights by design.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{family} weights do not fit the PyTorch model: missing {missing}, unexpected {unexpected}")


def blas():
    m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return m.group(1) if m else "unknown"


def cuda_status():
    """(usable, why not) for the CUDA device."""
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return True, torch.cuda.get_device_name(0)


def probe():
    usable, cuda = cuda_status()
    details = {
        "blas": blas(),
        "threads": str(torch.get_num_threads()),
        "cuda": cuda,
        "compiler": shutil.which("g++") or shutil.which("c++") or "none (torch.compile on CPU needs a C++ compiler)",
    }
    if not usable:
        details["cudaFix"] = GPU_FIX
    return {"version": torch.__version__, "devices": devices_here("torch", usable), "details": details}


def trace_and_freeze(model, feed):
    with torch.no_grad():
        model.fn = torch.jit.freeze(torch.jit.trace(model.fn, model.on_device(feed)))
    model.traces += 1


def compile_with(dynamic):
    """The compile step of torch.compile with this `dynamic=` option."""

    def compile_on_first_call(model, feed):
        # Wrapping here too: torch.compile's first use imports Dynamo and Inductor (seconds), part of compiling.
        model.fn = torch.compile(model.fn, dynamic=dynamic)
        model.run(feed)

    compile_on_first_call.dynamic = dynamic
    return compile_on_first_call


#: Mode -> its tracing / compilation step on the prepared parity inputs (eager has none).
MODES = {
    "eager": None,
    "torchscript": trace_and_freeze,
    "compile": compile_with(None),
    "compile-static": compile_with(False),
    "compile-dynamic": compile_with(True),
}


def graph_breaks():
    """How many graph breaks Dynamo has counted since reset_compiler (all reasons together)."""
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


def compiled_graphs():
    """torch.compile's own count of the graphs it compiled (Dynamo's unique_graphs counter)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def reset_compiler():
    """Forgets every graph and count torch.compile holds, so the counter counts this model's graphs only."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def recompile_limit():
    """(name, value) of Dynamo's limit on the graphs per function, beyond which it runs the function eagerly."""
    import torch._dynamo.config as config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            return name, getattr(config, name)
    return None, None


class TorchModel(BuiltModel):
    def __init__(self, fn, mode, device, settings, stream=False, precision=None):
        self.fn = fn
        #: The eager module, whatever the mode makes of `fn` (the precision probe runs it).
        self.module = fn
        self.precision = precision or Precision("fp32", device)
        #: Until precision_used() has read the evidence: each run records its logits' dtype and batch.
        self.observing = True
        self.parity_feed = None
        self.compile_step = MODES[mode]
        self.compiles = self.compile_step is not None
        self.device = device
        self.settings = settings
        self.stream = stream
        self.traces = 0
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def prepare(self, inputs):
        # PyTorch users hold NCHW float images and int64 token ids; copying makes them writable.
        if "images" in inputs:
            return torch.from_numpy(np.array(inputs["images"], dtype=np.float32))
        tokens = torch.from_numpy(np.array(inputs["tokens"], dtype=np.int64))
        if not self.stream:
            return tokens
        # A stream batch is called as model(tokens, lengths), the lengths int64 as PyTorch's own.
        return tokens, torch.from_numpy(np.array(inputs["lengths"], dtype=np.int64))

    def on_device(self, feed):
        """The prepared feed on the model's device (a no-op on the CPU)."""
        return tuple(t.to(self.device) for t in feed) if self.stream else feed.to(self.device)

    def session(self):
        # Autocast (bf16, fp16) is entered here, once around compiling, the parity run and the timed
        # loop, as a user wraps an inference loop: a trace or a compiled graph is made under it.
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(self.precision.autocast())
        return stack

    def compile(self, feed):
        self.compile_step(self, feed)
        if self.compile_step is not trace_and_freeze:
            # Where Dynamo gave up tracing (e.g. quantize_dynamic's packed weights: each quantized
            # Linear/LSTM runs eagerly between compiled graphs), the cell records how often.
            self.settings["compileGraphBreaks"] = graph_breaks()

    def compile_count(self):
        if self.compile_step is trace_and_freeze:
            return self.traces
        return None if self.compile_step is None else compiled_graphs()

    def run(self, feed):
        # Inputs start on the host each call, as they do for every engine (ORT, tfjs take host arrays).
        x = self.on_device(feed) if self.cuda else feed
        out = self.fn(*x) if self.stream else self.fn(x)
        # The logits' own dtype is the evidence of what the mode's function computed in (autocast
        # leaves the classifier's bf16 / fp16 there); the protocol takes float32.
        if self.observing:
            self.precision.logits_dtype, self.parity_feed = out.dtype, x
        if self.cuda:
            out = out.cpu()
            # .cpu() already waits for the copy; this makes "all queued work finished" explicit before the clock is read.
            torch.cuda.synchronize(self.device)
        return (out if out.dtype == torch.float32 else out.float()).numpy()

    def precision_used(self):
        used = self.precision.used(self.module, self.fn, self.parity_feed, self.stream)
        self.observing, self.parity_feed = False, None
        return used

    def peak_device_bytes(self):
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else None


def configure_threads(threads):
    """Sizes the thread pools before the first op (set_num_interop_threads fails once any parallel work ran)."""
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)


def torch_device(name):
    """The torch.device of a cell's device; EngineUnavailable with the fix when CUDA is not usable here."""
    if name == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise EngineUnavailable(why, GPU_FIX)
        return torch.device("cuda:0")
    return torch.device("cpu")


def base_settings(req, device):
    """The settings inference and training cells both record."""
    settings = {
        "torchVersion": torch.__version__,
        "mode": req.mode,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "requestedThreads": req.threads,
        "blas": blas(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkldnnEnabled": torch.backends.mkldnn.enabled,
        # "highest" is strict FP32; "high"/"medium" let matmuls use TF32 or bf16 passes.
        "float32MatmulPrecision": torch.get_float32_matmul_precision(),
    }
    if req.mode.startswith("compile"):
        settings["compileBackend"] = "inductor"
    if device.type == "cuda":
        settings.update(
            gpu=torch.cuda.get_device_name(device),
            tf32Matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32Conv=torch.backends.cudnn.allow_tf32,
            cudnnBenchmark=torch.backends.cudnn.benchmark,
            nvidiaTf32Override=os.environ.get("NVIDIA_TF32_OVERRIDE", "unset"),
        )
    return settings


def check_task(family, task):
    """A ValueError in one line when the family's declaration (workloads/*.ts `tasks`) has no such task."""
    tasks = FAMILY_DECLARATIONS[family]["tasks"]
    if task not in tasks:
        flags = " or ".join(f"--tasks {t}" for t in tasks)
        raise ValueError(f"torch: the {family} family does not do {task}; its models do {' and '.join(tasks)} ({flags})")


def build(req):
    family = pick("torch", "workload family", FAMILIES, req.family)
    pick("torch", "mode", MODES, req.mode)
    check_task(req.family, "inference")
    if req.stream and req.family not in STREAM_FAMILIES:
        raise ValueError(f"torch: the {req.family} family has no shape stream (a stream varies the length of token sequences)")
    # Behind the orchestrator, which skips such cells: a precision the declaration does not allow here.
    check_precision("torch", req)
    if req.stream and (why := stream_problem(req.family, req.device, req.precision)):
        raise ValueError(why)
    configure_threads(req.threads)
    device = torch_device(req.device)
    precision = Precision(req.precision, device, planted=req.plant_precision_fallback)
    model = family.model(req.params)
    load_canonical(model, req.family, req.weights)
    model = model.eval().to(device)
    placed = {t.device for t in [*model.parameters(), *model.buffers()]}
    if placed != {device}:
        raise RuntimeError(f"model tensors on {sorted(map(str, placed))}, expected all on {device}")
    # After the placement check: quantize_dynamic's packed weights are no parameters or buffers.
    model = precision.apply(model)
    settings = {
        **base_settings(req, device),
        **precision.settings(),
        "gradMode": "inference_mode",
        "placement": f"all parameters and buffers on {device}",
    }
    if req.stream:
        settings["streamInputs"] = STREAM_FAMILIES[req.family]
    if req.mode.startswith("compile"):
        reset_compiler()
        # What torch does when shapes change: dynamic= decides, and past the recompile limit Dynamo
        # stops compiling the function and runs it eagerly.
        settings["compileDynamic"] = str(MODES[req.mode].dynamic)
        name, limit = recompile_limit()
        if name:
            settings["dynamoRecompileLimit"] = f"{limit} (torch._dynamo.config.{name})"
    return TorchModel(model, req.mode, device, settings, stream=req.stream, precision=precision)


def build_trainer(req):
    """A Trainer for a TrainRequest (train.py: the loop, the modes, the float64 reference)."""
    from .train import build as build_training

    pick("torch", "workload family", FAMILIES, req.family)
    check_task(req.family, "training")
    return build_training(req)


#: The cache each mode generates with (generate.py): growing by torch.cat, or preallocated.
GENERATE_CACHES = {
    "kv": {
        "growing": "growing: each step's keys and values appended with torch.cat (past_key_values), positions from the cache's length",
        "static": (
            "static: [batch, heads, promptLength + newTokens, d] per layer preallocated, written with index_copy_ at the step's positions"
            " (a device tensor advanced in place), keys after the query's position masked"
        ),
    },
    "none": {
        "growing": "none: the whole sequence so far recomputed every step (causal SDPA), the chosen tokens appended with torch.cat, the last position's logits",
        "static": (
            "none: a fixed [batch, promptLength + newTokens] buffer padded on the right with zeros recomputed every step (causal SDPA),"
            " the logits at the current position (a device tensor)"
        ),
    },
}


def build_generator(req):
    """A Generator for a GenerateRequest (generate.py): the decoder on the device, its `step`
    (forward, one position's logits, argmax) eager or under torch.compile with the mode's dynamic=."""
    from .generate import TorchGenerator

    pick("torch", "workload family", FAMILIES, req.family)
    check_task(req.family, "generate")
    pick("torch", "mode", MODES, req.mode)
    if why := ENGINES["torch"]["unsupported"].get("generate", {}).get(req.mode):
        raise ValueError(f"torch mode {req.mode} cannot generate: {why}")
    if req.precision != "fp32":
        raise ValueError(f"torch generates in fp32 only; got precision {req.precision}")
    g = req.generation
    if g["promptLength"] < 1 or g["newTokens"] < 1 or g["promptLength"] + g["newTokens"] > req.params["ctx"]:
        raise ValueError(
            f"torch: a prompt of {g['promptLength']} tokens and {g['newTokens']} new tokens need 1 of each at least"
            f" and at most ctx={req.params['ctx']} positions"
        )
    configure_threads(req.threads)
    device = torch_device(req.device)
    model = decoder.model(req.params)
    load_canonical(model, req.family, req.weights)
    model = model.eval().to(device)
    placed = {t.device for t in [*model.parameters(), *model.buffers()]}
    if placed != {device}:
        raise RuntimeError(f"model tensors on {sorted(map(str, placed))}, expected all on {device}")
    kind = "static" if req.mode == "compile-static" else "growing"
    settings = {
        **base_settings(req, device),
        "gradMode": "inference_mode",
        "placement": f"all parameters and buffers on {device}, the cache and the chosen tokens too",
        "cacheKind": kind,
        "cache": GENERATE_CACHES[g["cache"]][kind],
        "generationStep": "Decoder.step: forward, LM head on one position, argmax on the device; the tokens read back with .cpu()",
    }
    step = model.step
    compiles = MODES[req.mode] is not None
    if compiles:
        reset_compiler()
        dynamic = MODES[req.mode].dynamic
        settings["compileDynamic"] = str(dynamic)
        settings["compiledFunction"] = "Decoder.step (compiled on its first call, inside the cold generation)"
        name, limit = recompile_limit()
        if name:
            settings["dynamoRecompileLimit"] = f"{limit} (torch._dynamo.config.{name})"
        step = torch.compile(model.step, dynamic=dynamic)
    return TorchGenerator(model, step, device, settings, req.params, req.batch_size, g, compiles=compiles, static=kind == "static")


def peak(req):
    """GEMM via torch.mm into a preallocated output, copy via dst.copy_(src) (one read, one write per element)."""
    from ..peak import figures, median_ms

    if req.device == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise EngineUnavailable(why, GPU_FIX)
    torch.set_num_threads(req.threads)
    dev = torch.device("cuda" if req.device == "cuda" else "cpu")
    sync = (lambda: torch.cuda.synchronize(dev)) if req.device == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    n = req.gemm_n
    a, b = (torch.rand(n, n, generator=g).to(dev) for _ in range(2))
    c = torch.empty(n, n, device=dev)

    def gemm():
        torch.mm(a, b, out=c)
        sync()

    with torch.inference_mode():
        gemm_ms = median_ms(gemm, req.max_ms)
        a = b = c = None  # frees the GEMM operands before the copy kernel
        src = torch.rand(req.copy_elements, generator=g).to(dev)
        dst = torch.empty_like(src)

        def copy():
            dst.copy_(src)
            sync()

        copy_ms = median_ms(copy, req.max_ms)
    return figures(
        req,
        gemm_ms,
        copy_ms,
        {"gemm": "torch.mm(a, b, out=c)", "copy": "dst.copy_(src)", "blas": blas(), "threads": torch.get_num_threads(), "device": str(dev)},
    )

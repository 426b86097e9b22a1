"""PyTorch engine: the three workload families written as a PyTorch user writes them (nn.Modules,
NCHW, torchvision-style ResNet, nn.LSTM with batch_first, BERT-style encoder on nn.Linear and
F.scaled_dot_product_attention), loading the canonical weights directly: the canonical names are
PyTorch's module paths, apart from nn.LSTM's flat parameter names and nn.Embedding's `.weight`.

Modes: `eager` (torch.inference_mode), `torchscript` (torch.jit.trace + torch.jit.freeze on the
parity inputs) and `compile` (torch.compile, which compiles on its first call): both in
`TorchModel.compile`, timed as the cold start's compile segment, never in the timed loop."""

import os
import re
import shutil
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .engine import BuiltModel, EngineUnavailable
from .resnet_layout import resnet_layout

MODES = ("eager", "torchscript", "compile")
#: The canonical model's BatchNorm epsilon (PyTorch's default).
BN_EPS = 1e-5
#: LayerNorm epsilon of the canonical encoder (BERT's).
LAYER_NORM_EPS = 1e-12
GPU_FIX = "python-runners/.venv/bin/pip install -r python-runners/requirements-gpu.txt on a machine with an NVIDIA GPU and driver"


def conv(c):
    return nn.Conv2d(c.cin, c.cout, c.k, stride=c.stride, padding=c.pad, bias=False)


class ResidualBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) block; attribute names are the canonical ones."""

    def __init__(self, block):
        super().__init__()
        self.depth = len(block.convs)
        for i, c in enumerate(block.convs, start=1):
            setattr(self, f"conv{i}", conv(c))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c.cout, eps=BN_EPS))
        d = block.downsample
        self.downsample = nn.Sequential(OrderedDict(conv=conv(d), bn=nn.BatchNorm2d(d.cout, eps=BN_EPS))) if d else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = x
        for i in range(1, self.depth + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.depth:
                out = F.relu(out)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, params):
        super().__init__()
        layout = resnet_layout(params)
        self.conv1 = conv(layout.stem)
        self.bn1 = nn.BatchNorm2d(layout.stem.cout, eps=BN_EPS)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for stage in range(1, 5):
            blocks = [ResidualBlock(b) for b in layout.blocks if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(layout.features, layout.classes)

    def forward(self, images):
        x = self.maxpool(F.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LstmClassifier(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embedding = nn.Embedding(p["vocab"], p["embed"])
        self.lstm = nn.LSTM(p["embed"], p["hidden"], num_layers=p["layers"], batch_first=True)
        self.fc = nn.Linear(p["hidden"], p["classes"])

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return self.fc(out[:, -1])


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(hidden, hidden) for _ in range(4))
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x):
        batch, seq, hidden = x.shape
        # Contiguous head split, as the canonical layout defines it: head h owns features h*d..h*d+d-1.
        split = lambda t: t.view(batch, seq, self.heads, hidden // self.heads).transpose(1, 2)  # noqa: E731
        context = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return self.norm(x + self.output(context.transpose(1, 2).reshape(batch, seq, hidden)))


class FeedForward(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x):
        # Exact (erf) GELU, F.gelu's default, as BERT defines it.
        return self.norm(x + self.output(F.gelu(self.intermediate(x))))


class EncoderLayer(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.attention = SelfAttention(p["hidden"], p["heads"])
        self.ffn = FeedForward(p["hidden"], p["ffn"])

    def forward(self, x):
        return self.ffn(self.attention(x))


class Embeddings(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.word = nn.Embedding(p["vocab"], p["hidden"])
        self.position = nn.Embedding(p["seq"], p["hidden"])
        self.norm = nn.LayerNorm(p["hidden"], eps=LAYER_NORM_EPS)
        self.register_buffer("positions", torch.arange(p["seq"]), persistent=False)

    def forward(self, tokens):
        return self.norm(self.word(tokens) + self.position(self.positions[: tokens.shape[1]]))


class Encoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embeddings = Embeddings(p)
        self.layers = nn.ModuleList(EncoderLayer(p) for _ in range(p["layers"]))
        self.pooler = nn.Linear(p["hidden"], p["hidden"])
        self.classifier = nn.Linear(p["hidden"], p["classes"])

    def forward(self, tokens):
        x = self.embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


MODELS = {"cnn": ResNet, "rnn": LstmClassifier, "transformer": Encoder}


def torch_name(family, canonical):
    """PyTorch's parameter name for a canonical weight name."""
    if family == "rnn":
        m = re.fullmatch(r"lstm\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)", canonical)
        if m:
            return f"lstm.{m.group(2)}_l{m.group(1)}"
    if family == "transformer" and canonical in ("embeddings.word", "embeddings.position"):
        return f"{canonical}.weight"
    return canonical


def load_canonical(model, family, weights):
    """load_state_dict with the canonical tensors; anything missing or extra is an error."""
    state = {torch_name(family, name): torch.tensor(np.asarray(a)) for name, a in weights.items()}
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
    return {"version": torch.__version__, "devices": ["cpu", "cuda"] if usable else ["cpu"], "details": details}


class TorchModel(BuiltModel):
    def __init__(self, fn, mode, device, settings):
        self.fn = fn
        self.mode = mode
        self.compiles = mode != "eager"
        self.device = device
        self.settings = settings
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def prepare(self, inputs):
        # PyTorch users hold NCHW float images and int64 token ids; copying makes them writable.
        if "images" in inputs:
            return torch.from_numpy(np.array(inputs["images"], dtype=np.float32))
        return torch.from_numpy(np.array(inputs["tokens"], dtype=np.int64))

    def session(self):
        return torch.inference_mode()

    def compile(self, feed):
        if self.mode == "torchscript":
            with torch.no_grad():
                self.fn = torch.jit.freeze(torch.jit.trace(self.fn, feed.to(self.device)))
        else:
            # Wrapping here too: torch.compile's first use imports Dynamo and Inductor (seconds), part of compiling.
            self.fn = torch.compile(self.fn, dynamic=False)
            self.run(feed)

    def run(self, feed):
        if not self.cuda:
            return self.fn(feed).numpy()
        # Inputs start on the host each call, as they do for every engine (ORT, tfjs take host arrays).
        out = self.fn(feed.to(self.device)).cpu()
        # .cpu() already waits for the copy; this makes "all queued work finished" explicit before the clock is read.
        torch.cuda.synchronize(self.device)
        return out.numpy()

    def peak_device_bytes(self):
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else None


def build(req):
    if req.mode not in MODES:
        raise ValueError(f"torch: unknown mode '{req.mode}'; valid modes: {', '.join(MODES)}")
    # Thread pools are sized before the first op; set_num_interop_threads fails once any parallel work ran.
    torch.set_num_threads(req.threads)
    torch.set_num_interop_threads(1)
    if req.device == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise EngineUnavailable(why, GPU_FIX)
    device = torch.device("cuda:0" if req.device == "cuda" else "cpu")
    model = MODELS[req.family](req.params)
    load_canonical(model, req.family, req.weights)
    model = model.eval().to(device)
    placed = {t.device for t in [*model.parameters(), *model.buffers()]}
    if placed != {device}:
        raise RuntimeError(f"model tensors on {sorted(map(str, placed))}, expected all on {device}")
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
        "gradMode": "inference_mode",
        "placement": f"all parameters and buffers on {device}",
    }
    if req.mode == "compile":
        settings["compileBackend"] = "inductor"
    if device.type == "cuda":
        settings.update(
            gpu=torch.cuda.get_device_name(device),
            tf32Matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32Conv=torch.backends.cudnn.allow_tf32,
            cudnnBenchmark=torch.backends.cudnn.benchmark,
            nvidiaTf32Override=os.environ.get("NVIDIA_TF32_OVERRIDE", "unset"),
        )
    return TorchModel(model, req.mode, device, settings)


def peak(req):
    """GEMM via torch.mm into a preallocated output, copy via dst.copy_(src) (one read, one write per element)."""
    from .peak import figures, median_ms

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

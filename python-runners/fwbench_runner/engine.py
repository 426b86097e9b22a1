"""What every framework package (fwbench_runner.torch, fwbench_runner.tensorflow) provides to the
runner loop (the Python twin of harness/engines/types.ts): `probe()`, `build(BuildRequest) ->
BuiltModel` and `peak(PeakRequest)`, raising EngineUnavailable with the fix when the engine cannot
run here; and the helpers they share. Each package picks the module of a cell's workload family
from its FAMILIES dict and the mode's step from its MODES dict (`pick`); the keys of both are
checked against results/schema/manifest.json by python-runners/tests/test_manifest.py."""

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from .manifest import ENGINES, precision_problem

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements-cpu.txt"


class EngineUnavailable(Exception):
    """The engine cannot run here; the cell is skipped (not failed) and `fix` says how to change that."""

    def __init__(self, message, fix):
        super().__init__(message)
        self.fix = fix


def pinned(package):
    """The requirement line for `package` in requirements-cpu.txt (the single place versions are pinned)."""
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec.split("==")[0].split(">")[0].split("<")[0].split("[")[0] == package:
            return spec
    return package


def install_fix(package):
    """The exact command that installs `package` into the interpreter running this worker."""
    return f"{sys.executable} -m pip install '{pinned(package)}' (or: bash python-runners/setup.sh)"


def pick(engine_id, kind, table, name):
    """`table[name]`, or a ValueError naming the valid keys: how an engine picks its family module or its mode."""
    if name not in table:
        raise ValueError(f"{engine_id}: unknown {kind} '{name}'; valid: {', '.join(table)}")
    return table[name]


def check_precision(engine_id, req):
    """Raises a one-line ValueError when `req` asks for a precision the engine's declaration does not
    allow there: the engine's second line of defence behind the orchestrator, which skips such cells."""
    why = precision_problem(engine_id, req.precision, req.device, req.family, req.mode)
    if why:
        raise ValueError(f"{engine_id} cannot run {req.precision} for {req.family} in mode {req.mode} on {req.device}: {why}")


def devices_here(engine_id, cuda_usable):
    """The engine's devices (from the manifest) that it can use here: CUDA only when usable."""
    return [d for d in ENGINES[engine_id]["devices"] if cuda_usable or d != "cuda"]


@dataclass
class BuildRequest:
    """What an engine needs to build one model (mirrors BuildRequest in harness/engines/types.ts)."""

    family: str
    params: dict
    batch_size: int
    #: Canonical weights by name (workloads/*.ts document names and layouts).
    weights: dict
    #: Weights already mapped to the engine's native layout by the orchestrator, or None.
    native_weights: dict | None
    device: str
    mode: str
    threads: int
    #: Build for a shape stream (workloads/shapes.ts): `prepare` then gets `tokens` int32 [batch, L]
    #: with any L up to the preset's seq and `lengths` int32 [batch]; a row's positions at or beyond
    #: its length are padding and must not change its logits (transformer: masked attention keys;
    #: rnn: the output of the row's last real step). False: one fixed shape, no `lengths`.
    stream: bool = False
    #: The number format to compute in (workloads/precision.ts): the engine applies the mechanism its
    #: descriptor declares (harness/engines/*.ts `precisions`) and says what it observed in
    #: `precision_used`; it never falls back to fp32 silently.
    precision: str = "fp32"
    #: Test-only (FWBENCH_FAULT=precision-fallback@build): build without the precision's mechanism,
    #: as if fp32 had been asked, and report `precision_used` from what the model really does.
    plant_precision_fallback: bool = False


class BuiltModel:
    """A model ready to run. `prepare` turns canonical host inputs into what a user of the framework
    holds (layout, dtype) once, outside timing; `run` is one timed forward pass including the copy
    of the logits back to host memory."""

    settings: dict
    #: Whether the mode has a tracing / compilation step (`compile`), timed as its own cold-start segment.
    compiles = False

    def compile(self, feed):
        """The mode's tracing / compilation on the prepared inputs, inside `session` (torchscript's
        trace and freeze; torch.compile's and tf.function's first call, which compiles), so the
        first run after it is a plain inference. Only called when `compiles`."""
        raise NotImplementedError

    def session(self):
        """Context entered once around the first run and the whole timed loop (grad mode, device
        scope): entering it per iteration costs microseconds a user's loop does not pay."""
        return contextlib.nullcontext()

    def prepare(self, inputs):
        raise NotImplementedError

    def run(self, feed):
        raise NotImplementedError

    def peak_device_bytes(self):
        """Allocator peak on the accelerator since build, or None on the CPU."""
        return None

    def compile_count(self):
        """How many times the framework has compiled or traced this model so far, by its own
        counter (torch.compile's unique graphs, tf.function's experimental_get_tracing_count(), one
        per TorchScript trace), or None for a mode that compiles nothing (eager)."""
        return None

    def precision_used(self):
        """What the model was observed to compute in, after the parity run: `{"used": precision,
        "evidence": one line}` from the framework's own dtypes (outputs, weights, quantized modules),
        never from what was asked. Required for a reduced precision; None (fp32, unchecked) by default."""
        return None

    def dispose(self):
        """Releases framework resources (the process exits right after; nothing to do by default)."""


@dataclass
class GenerateRequest(BuildRequest):
    """What an engine needs to build a generator (mirrors GenerateRequest in harness/engines/types.ts):
    the model's request plus the cell's generation, {"promptLength", "newTokens", "cache"}
    (workloads/generate.ts). `cache` "kv" keeps each layer's keys and values of every position so
    far as the framework's users do (the mode decides: a growing cache, or one preallocated for
    promptLength + newTokens positions so a compiled graph keeps its shape); "none" recomputes the
    whole sequence so far at every step and takes its last position's logits."""

    generation: dict = None


class Generator:
    """A decoder ready to generate greedily (the Python twin of BuiltGenerator in
    harness/engines/types.ts). The runner's one loop times each call: `prefill` is step 0, `decode`
    each later step; the generator keeps its cache and the tokens it chose last between calls. Each
    returns (the chosen token of each row as an int32 ndarray [batch], read back to the host; the
    step's logits as a float32 ndarray [batch, vocab] when `want_logits`, else None)."""

    settings: dict

    def session(self):
        """Context entered once around the cold generation and every warm one (grad mode, device scope)."""
        return contextlib.nullcontext()

    def prepare(self, tokens):
        """The prompts (int32 ndarray [batch, promptLength]) as a user of the framework holds them, once, outside timing."""
        raise NotImplementedError

    def prefill(self, feed, want_logits):
        """Starts a generation: forgets any earlier one, runs the prompts, returns the first new tokens."""
        raise NotImplementedError

    def decode(self, want_logits):
        """One more step: feeds the tokens chosen last, returns the next ones."""
        raise NotImplementedError

    def compile_count(self):
        """As BuiltModel.compile_count."""
        return None

    def peak_device_bytes(self):
        """Allocator peak on the accelerator since build, or None on the CPU."""
        return None

    def dispose(self):
        """Releases framework resources (the process exits right after; nothing to do by default)."""


@dataclass
class TrainRequest(BuildRequest):
    """What an engine needs to build a trainer (mirrors TrainRequest in harness/engines/types.ts):
    the model's request plus the job's training recipe (workloads/training.ts TRAINING: learningRate,
    momentum, weightDecay, batchNormMomentum, paritySteps)."""

    recipe: dict = None
    #: Set only for the float64 reference job (torch): the parametrisation it reproduces, "torch"
    #: (the canonical model) or "keras" (an LSTM's two biases merged into Keras' one; BatchNorm's
    #: running variance updated with the biased batch variance, as Keras does).
    reference: str | None = None


class Trainer:
    """A model ready to train on one fixed batch (the Python twin of BuiltTrainer in
    harness/engines/types.ts). `prepare` turns the canonical host inputs and labels into what a
    user of the framework holds, once, outside timing; `step` is one timed training step."""

    settings: dict

    def session(self):
        """Context entered once around the parity steps and the whole timed loop (device scope)."""
        return contextlib.nullcontext()

    def prepare(self, inputs, labels):
        raise NotImplementedError

    def step(self, feed, want_grads):
        """Forward, loss, backward, optimizer update on the prepared batch; returns (loss as a float
        read back to the host, {name: gradient ndarray} of every trainable tensor when `want_grads`
        else None), named as `state` names the tensors."""
        raise NotImplementedError

    def state(self):
        """{name: ndarray} of every tensor of the model's state (weights and normalization
        statistics): canonical names for torch, `<keras layer>/<index>` in set_weights order for Keras."""
        raise NotImplementedError

    def peak_device_bytes(self):
        """Allocator peak on the accelerator since build, or None on the CPU."""
        return None

    def dispose(self):
        """Releases framework resources (the process exits right after; nothing to do by default)."""

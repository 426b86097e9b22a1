"""What every framework module provides to the runner loop (the Python twin of
harness/engines/types.ts): `probe()` and `build(BuildRequest) -> BuiltModel`, raising
EngineUnavailable with the fix when the engine cannot run here."""

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

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

    def dispose(self):
        """Releases framework resources (the process exits right after; nothing to do by default)."""

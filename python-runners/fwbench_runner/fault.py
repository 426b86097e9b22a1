"""Test-only fault injection, the Python twin of harness/worker/fault.ts (see there):
FWBENCH_FAULT=<kind>@<phase>[:<engine>[:<minBatch>]] makes this real runner process crash, hang,
garble the protocol or exhaust memory on entering `phase`; `precision-fallback@build` plants a
silent fallback instead (the runner builds with BuildRequest.plant_precision_fallback, the engine
skips its precision mechanism), and `generation-skip@parity` a lost token (the parity generation
makes one decode step more after its first and drops it). Not a user feature."""

import os
import re
import signal
import sys
import time

from .manifest import FAULT_KINDS, PHASES


def parse_fault(text):
    """The fault described by FWBENCH_FAULT as a dict, or None; a malformed value raises."""
    if not text:
        return None
    m = re.fullmatch(r"([a-z-]+)@([a-z-]+)(?::([a-z0-9-]+)(?::(\d+))?)?", text)
    if not m or m.group(1) not in FAULT_KINDS or m.group(2) not in PHASES:
        raise ValueError(
            f"FWBENCH_FAULT='{text}' is not <kind>@<phase>[:<engine>[:<minBatch>]] with kind in {'|'.join(FAULT_KINDS)} and phase in {'|'.join(PHASES)}"
        )
    return {"kind": m.group(1), "phase": m.group(2), "engine": m.group(3), "min_batch": int(m.group(4)) if m.group(4) else None}


def cuda_oom(engine):
    """The framework's own CUDA out-of-memory exception, with the message it gives (injected: there is no GPU here)."""
    if engine == "torch":
        import torch

        return torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total capacity; 13.90 GiB already allocated; 1.06 GiB free)"
        )
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[1024,1024,256] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc"
    )


def maybe_fault(fault, phase, engine, batch_size, write_raw):
    """Fires `fault` if it applies here; returns normally otherwise (and after `garbage`). Returns
    the kind of a fault that applies here and that the caller carries out (`precision-fallback`:
    the runner plants it in the build), None otherwise."""
    if not fault or fault["phase"] != phase:
        return None
    if fault["engine"] and fault["engine"] != engine:
        return None
    if fault["min_batch"] is not None and (batch_size or 0) < fault["min_batch"]:
        return None
    what = f"injected fault {fault['kind']}@{phase} (FWBENCH_FAULT)"
    kind = fault["kind"]
    if kind == "generation-skip":
        print(f"{what}: the parity generation drops its second token", file=sys.stderr, flush=True)
        return kind
    if kind == "precision-fallback":
        print(f"{what}: the engine builds without its precision mechanism", file=sys.stderr, flush=True)
        return kind
    if kind in ("exit", "segv", "kill", "hang"):
        print(f"{what}: {kind}", file=sys.stderr, flush=True)
    if kind == "exit":
        os._exit(3)
    if kind in ("segv", "kill"):
        os.kill(os.getpid(), signal.SIGSEGV if kind == "segv" else signal.SIGKILL)
    if kind in ("hang", "segv", "kill"):
        while True:
            time.sleep(3600)
    if kind == "garbage":
        write_raw(b"this is not a protocol message\n")
    elif kind == "truncate":
        write_raw(b'{"type":"samples","warmupNs":[12345,')
        os._exit(0)
    elif kind == "exception":
        raise RuntimeError(what)
    elif kind == "oom":
        # Real exhaustion: allocate 64 MiB blocks until the worker's cap
        # (--max-memory-mb, RLIMIT_DATA) refuses with MemoryError. Without a cap it would eat the machine.
        if not os.environ.get("FWBENCH_MAX_MEMORY_MB"):
            raise RuntimeError(f"{what} needs a memory cap: run with --max-memory-mb")
        hog = []
        while True:
            hog.append(bytearray(64 << 20))
    elif kind == "cuda-oom":
        raise cuda_oom(engine)

"""Timing of the peak kernels (`fwbench peak`), the Python twin of harness/engines/peak-timing.ts:
two warm-up calls, then calls until at least 5 samples and 200 ms, or the time budget (at least
3 samples), or 50 samples; the median. Engines provide `peak(req)` returning `figures(...)`."""

import statistics
import time
from dataclasses import dataclass


@dataclass
class PeakRequest:
    device: str
    threads: int
    gemm_n: int
    copy_elements: int
    max_ms: float

    @staticmethod
    def from_message(msg):
        return PeakRequest(msg["device"], msg["threads"], msg["gemmN"], msg["copyElements"], msg["maxMs"])


def median_ms(fn, max_ms):
    """Median wall time (ms) of `fn()`, which must return only when its work is complete."""
    for _ in range(2):
        fn()
    samples = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        elapsed = (time.perf_counter() - start) * 1e3
        if (len(samples) >= 5 and elapsed >= 200) or (len(samples) >= 3 and elapsed >= max_ms) or len(samples) >= 50:
            return statistics.median(samples)


def figures(req, gemm_ms, copy_ms, details):
    """The `peak-result` fields: GEMM GFLOP/s = 2n^3 / median, copy GB/s = 8 bytes per element / median."""
    copy_bytes = 8 * req.copy_elements
    return {
        "gemmN": req.gemm_n,
        "gemmMedianMs": gemm_ms,
        "gemmGflops": 2 * req.gemm_n**3 / (gemm_ms / 1e3) / 1e9,
        "copyBytes": copy_bytes,
        "copyMedianMs": copy_ms,
        "copyGBps": copy_bytes / (copy_ms / 1e3) / 1e9,
        "details": {k: str(v) for k, v in details.items()},
    }

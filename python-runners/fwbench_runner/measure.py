"""The warm-up and timed loop, the same rules and defaults as harness/measure.ts (see there).

Warm-up: at least warmupMinIters iterations, then until the last warmupWindow times all lie
within +-warmupTolerance of their median (stable), capped by warmupMaxIters and warmupMaxMs.
Timed loop: until at least minSamples samples AND minTimeMs elapsed, capped by maxTimeMs and
maxSamples (at least one sample). Times are integer ns from time.perf_counter_ns.
"""
import time

DEFAULT_MEASURE = {
    "warmupMinIters": 3,
    "warmupMaxIters": 50,
    "warmupMaxMs": 2000,
    "warmupTolerance": 0.1,
    "warmupWindow": 3,
    "minSamples": 20,
    "minTimeMs": 1000,
    "maxTimeMs": 10000,
    "maxSamples": 100000,
}


def is_stable(values, window, tol):
    """True when the last `window` values lie within +-tol of their median."""
    if len(values) < window:
        return False
    last = sorted(values[-window:])
    med = last[window // 2]
    return all(abs(v - med) <= tol * med for v in last)


def measure(iteration, s=DEFAULT_MEASURE, clock=time.perf_counter_ns):
    """Runs warm-up then the timed loop around `iteration`; returns the `samples` message fields."""
    warmup_ns = []
    warm_start = clock()
    while True:
        t0 = clock()
        iteration()
        t1 = clock()
        warmup_ns.append(t1 - t0)
        if len(warmup_ns) >= s["warmupMinIters"] and is_stable(warmup_ns, s["warmupWindow"], s["warmupTolerance"]):
            warmup_stop = "stable"
            break
        if len(warmup_ns) >= s["warmupMaxIters"]:
            warmup_stop = "max-iters"
            break
        if (t1 - warm_start) / 1e6 >= s["warmupMaxMs"] and len(warmup_ns) >= s["warmupMinIters"]:
            warmup_stop = "max-time"
            break
    samples_ns = []
    start = clock()
    while True:
        t0 = clock()
        iteration()
        t1 = clock()
        samples_ns.append(t1 - t0)
        elapsed_ms = (t1 - start) / 1e6
        if len(samples_ns) >= s["minSamples"] and elapsed_ms >= s["minTimeMs"]:
            stop = "min-samples-and-time"
            break
        if len(samples_ns) >= s["maxSamples"]:
            stop = "max-samples"
            break
        if elapsed_ms >= s["maxTimeMs"]:
            stop = "max-time"
            break
    return {"warmupNs": warmup_ns, "samplesNs": samples_ns, "stopReason": stop, "warmupStopReason": warmup_stop}

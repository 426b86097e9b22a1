"""The warm-up and timed loop, the same rules as harness/worker/measure.ts (see there), and its
defaults (DEFAULT_MEASURE, read from results/schema/manifest.json).

Warm-up: at least warmupMinIters iterations and warmupMinMs (absent = 0), then until the last
warmupWindow times all lie within +-warmupTolerance of their median (stable), capped by
warmupMaxIters (counted once warmupMinMs has passed) and warmupMaxMs.
Timed loop: once minSamples samples AND minTimeMs elapsed, the 95 % order-statistic interval of
the median is checked at n, then every ~10 % more samples; it stops with 'target-interval' when
the half-width is <= targetInterval x median, else at maxSamples ('max-samples') or maxTimeMs
('max-time'), whichever comes first (at least one sample). Times are integer ns from
time.perf_counter_ns.
"""

import math
import time

from .load import watch_load
from .manifest import DEFAULT_MEASURE

Z95 = 1.959963984540054


def is_stable(values, window, tol):
    """True when the last `window` values lie within +-tol of their median."""
    if len(values) < window:
        return False
    last = sorted(values[-window:])
    med = last[window // 2]
    return all(abs(v - med) <= tol * med for v in last)


def median_ci_indices(n, z=Z95):
    """0-based indices of the order statistics bounding the 95 % interval of the median (see measure.ts)."""
    h = z * math.sqrt(n) / 2
    lo = max(1, math.floor(n / 2 - h))
    hi = min(n, math.ceil(1 + n / 2 + h))
    return lo - 1, hi - 1


def median_ci(values):
    """The median (mean of the middle two for an even count) and its 95 % order-statistic interval."""
    n = len(values)
    if n == 0:
        return {"medianNs": 0, "loNs": 0, "hiNs": 0, "halfWidthPct": 0}
    s = sorted(values)
    med = s[(n - 1) // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    i, j = median_ci_indices(n)
    lo, hi = s[i], s[j]
    return {"medianNs": med, "loNs": lo, "hiNs": hi, "halfWidthPct": ((hi - lo) / 2 / med) * 100 if med > 0 else 0}


def clock_resolution(clock, reads=1000):
    """Smallest positive difference between consecutive clock reads (0 if the clock never moved)."""
    best = 0
    prev = clock()
    for _ in range(reads):
        t = clock()
        d = t - prev
        if d > 0 and (best == 0 or d < best):
            best = d
        prev = t
    return best


def measure(iteration, s=DEFAULT_MEASURE, clock=time.perf_counter_ns, on_timed_loop=lambda: None, watch=watch_load):
    """Runs warm-up then the timed loop around `iteration`; returns the `samples` message fields.
    `on_timed_loop` is called once, between warm-up and the timed loop (the runner announces the phase);
    `watch` (None: not watched) gives the loop's CPU accounting, the `load` field."""
    target = s.get("targetInterval", 0)
    resolution = clock_resolution(clock)
    warmup_ns = []
    warm_start = clock()
    while True:
        t0 = clock()
        iteration()
        t1 = clock()
        warmup_ns.append(t1 - t0)
        warmed_ms = (t1 - warm_start) / 1e6
        long_enough = warmed_ms >= s.get("warmupMinMs", 0)
        if long_enough and len(warmup_ns) >= s["warmupMinIters"] and is_stable(warmup_ns, s["warmupWindow"], s["warmupTolerance"]):
            warmup_stop = "stable"
            break
        if long_enough and len(warmup_ns) >= s["warmupMaxIters"]:
            warmup_stop = "max-iters"
            break
        if warmed_ms >= s["warmupMaxMs"] and len(warmup_ns) >= s["warmupMinIters"]:
            warmup_stop = "max-time"
            break
    on_timed_loop()
    load_of_loop = watch() if watch else None
    samples_ns = []
    start = clock()
    next_check = 0
    while True:
        t0 = clock()
        iteration()
        t1 = clock()
        samples_ns.append(t1 - t0)
        n = len(samples_ns)
        elapsed_ms = (t1 - start) / 1e6
        if n >= s["minSamples"] and elapsed_ms >= s["minTimeMs"] and n >= next_check:
            next_check = n + max(1, n // 10)
            if target > 0 and median_ci(samples_ns)["halfWidthPct"] <= target * 100:
                stop = "target-interval"
                break
        if n >= s["maxSamples"]:
            stop = "max-samples"
            break
        if elapsed_ms >= s["maxTimeMs"]:
            stop = "max-time"
            break
    return {
        "warmupNs": warmup_ns,
        "samplesNs": samples_ns,
        "stopReason": stop,
        "warmupStopReason": warmup_stop,
        "interval": median_ci(samples_ns),
        "clockResolutionNs": resolution,
        **({"load": load_of_loop()} if load_of_loop else {}),
    }

"""The loop rules, on a fake clock, with the same cases as tests/stats-parity-measure.unit.test.ts."""

import json
from pathlib import Path

import pytest

from fwbench_runner.measure import DEFAULT_MEASURE, clock_resolution, is_stable, measure, median_ci, median_ci_indices

CASES = json.loads((Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "stopping-cases.json").read_text())


class FakeClock:
    def __init__(self, step_ns):
        self.t = 0
        self.step_ns = step_ns

    def __call__(self):
        return self.t

    def tick(self):
        self.t += self.step_ns()


def settings(**kw):
    return {**DEFAULT_MEASURE, **kw}


def test_warms_up_until_stable_then_samples_until_min_samples_and_min_time():
    times = iter([50, 30, 20, 10, 10, 10])
    c = FakeClock(lambda: next(times, 10) * 10**6)
    r = measure(c.tick, settings(warmupMinMs=0, warmupMaxMs=1e6, minSamples=5, minTimeMs=100, maxTimeMs=1e6, maxSamples=10**6, targetInterval=0.01), c)
    assert r["warmupStopReason"] == "stable"
    assert [v / 1e6 for v in r["warmupNs"]] == [50, 30, 20, 10, 10, 10]
    # 10 ms each: 5 samples reach only 50 ms, so the 100 ms minimum decides.
    assert len(r["samplesNs"]) == 10
    assert r["stopReason"] == "target-interval"
    assert all(isinstance(v, int) for v in r["samplesNs"] + r["warmupNs"])


def test_max_time_and_max_iters_cap_the_loops():
    c = FakeClock(lambda: 10**9)
    r = measure(c.tick, settings(warmupMinIters=1, warmupMaxIters=1, warmupMaxMs=1, warmupWindow=2, minSamples=100, minTimeMs=0, maxTimeMs=3000), c)
    assert r["warmupStopReason"] == "max-iters"
    assert len(r["samplesNs"]) == 3
    assert r["stopReason"] == "max-time"


def test_max_samples_and_warmup_max_time():
    steps = iter([1, 9] * 100)
    c = FakeClock(lambda: next(steps) * 10**6)
    r = measure(c.tick, settings(warmupMinIters=3, warmupMaxIters=50, warmupMaxMs=25, minSamples=1, minTimeMs=10**6, maxTimeMs=10**7, maxSamples=4), c)
    assert r["warmupStopReason"] == "max-time"
    assert len(r["warmupNs"]) == 6  # 1+9+1+9+1 = 21 ms < 25, the sixth ends at 30
    assert r["stopReason"] == "max-samples" and len(r["samplesNs"]) == 4


def test_stability_needs_the_whole_window_within_tolerance():
    assert is_stable([10, 10.5, 9.6], 3, 0.1)
    assert not is_stable([10, 12, 10], 3, 0.1)
    assert not is_stable([10, 10], 3, 0.1)


@pytest.mark.parametrize("n,lo,hi", CASES["medianCiIndices"])
def test_median_ci_indices_shared_cases(n, lo, hi):
    assert median_ci_indices(n) == (lo, hi)


def test_median_ci_of_1_to_100():
    assert median_ci(list(range(1, 101))) == pytest.approx(CASES["medianCiOf1to100"], rel=1e-12)
    assert median_ci([]) == {"medianNs": 0, "loNs": 0, "hiNs": 0, "halfWidthPct": 0}


class CyclicClock:
    def __init__(self, steps_ms):
        self.t = 0
        self.i = 0
        self.steps = steps_ms

    def __call__(self):
        return self.t

    def tick(self):
        self.t += round(self.steps[self.i % len(self.steps)] * 10**6)
        self.i += 1


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_stopping_rule_shared_cases(case):
    c = CyclicClock(case["steps"])
    r = measure(c.tick, {**CASES["base"], **case["settings"]}, c)
    assert r["stopReason"] == case["stopReason"]
    assert len(r["warmupNs"]) == case["warmupN"]
    assert len(r["samplesNs"]) == case["n"]
    assert r["interval"]["halfWidthPct"] == pytest.approx(case["halfWidthPct"], rel=1e-12, abs=1e-12)
    # A clock that never moves between reads has no measurable resolution.
    assert r["clockResolutionNs"] == 0


def test_clock_resolution_is_the_smallest_positive_step():
    ticks = iter([0, 0, 40, 40, 120, 150, 150] + [150] * 2000)
    assert clock_resolution(lambda: next(ticks)) == 30

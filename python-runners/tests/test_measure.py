"""The loop rules, on a fake clock, with the same cases as tests/stats-parity-measure.test.ts."""
import re
from pathlib import Path

from fwbench_runner.measure import DEFAULT_MEASURE, is_stable, measure


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


def test_defaults_equal_harness_measure_ts():
    ts = (Path(__file__).resolve().parents[2] / "harness" / "measure.ts").read_text()
    block = re.search(r"DEFAULT_MEASURE: MeasureSettings = \{(.*?)\};", ts, re.S).group(1)
    assert {k: float(v) for k, v in re.findall(r"(\w+): ([\d.]+)", block)} == {k: float(v) for k, v in DEFAULT_MEASURE.items()}


def test_warms_up_until_stable_then_samples_until_min_samples_and_min_time():
    times = iter([50, 30, 20, 10, 10, 10])
    c = FakeClock(lambda: next(times, 10) * 10**6)
    r = measure(c.tick, settings(warmupMaxMs=1e6, minSamples=5, minTimeMs=100, maxTimeMs=1e6, maxSamples=10**6), c)
    assert r["warmupStopReason"] == "stable"
    assert [v / 1e6 for v in r["warmupNs"]] == [50, 30, 20, 10, 10, 10]
    # 10 ms each: 5 samples reach only 50 ms, so the 100 ms minimum decides.
    assert len(r["samplesNs"]) == 10
    assert r["stopReason"] == "min-samples-and-time"
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

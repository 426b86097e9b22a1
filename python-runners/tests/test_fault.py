"""The test-only fault switch (FWBENCH_FAULT) in the real runner process, and the phase callback of
the timed loop that lets a fault fire between warm-up and measurement."""

import signal

import pytest
from test_protocol import converse, converse_raw

from fwbench_runner.fault import parse_fault
from fwbench_runner.measure import measure

PROBE = {"type": "probe", "protocol": 1, "engine": "torch"}


def test_parse_fault_accepts_kind_phase_engine_and_batch_and_refuses_the_rest():
    assert parse_fault(None) is None
    assert parse_fault("oom@build:torch:4") == {"kind": "oom", "phase": "build", "engine": "torch", "min_batch": 4}
    assert parse_fault("hang@warmup") == {"kind": "hang", "phase": "warmup", "engine": None, "min_batch": None}
    for bad in ("boom@build", "exit@nowhere", "exit", "exit@build:torch:x"):
        with pytest.raises(ValueError, match="FWBENCH_FAULT="):
            parse_fault(bad)


def test_an_exception_names_its_class_and_the_phase(monkeypatch):
    monkeypatch.setenv("FWBENCH_FAULT", "exception@probe:torch")
    msgs, code = converse(PROBE)
    assert code == 1
    assert [m["type"] for m in msgs] == ["hello", "phase", "error"]
    assert msgs[-1]["phase"] == "probe"
    assert msgs[-1]["message"] == "RuntimeError: injected fault exception@probe (FWBENCH_FAULT)"


def test_a_fault_for_another_engine_does_not_fire(monkeypatch):
    monkeypatch.setenv("FWBENCH_FAULT", "exception@probe:tensorflow")
    msgs, code = converse(PROBE)
    assert code == 0
    assert msgs[-1]["type"] == "done"


def test_exit_segv_and_garbage_are_real(monkeypatch):
    monkeypatch.setenv("FWBENCH_FAULT", "exit@probe")
    msgs, code = converse(PROBE)
    assert code == 3 and msgs[-1] == {"type": "phase", "phase": "probe"}
    monkeypatch.setenv("FWBENCH_FAULT", "segv@probe")
    msgs, code = converse(PROBE)
    assert code == -signal.SIGSEGV
    monkeypatch.setenv("FWBENCH_FAULT", "garbage@probe")
    lines, code = converse_raw(PROBE)
    assert code == 0
    assert lines[2] == "this is not a protocol message"


def test_the_timed_loop_callback_runs_once_between_warmup_and_samples():
    events = []
    settings = {
        "warmupMinIters": 3,
        "warmupMaxIters": 3,
        "warmupMaxMs": 1000,
        "warmupTolerance": 0.1,
        "warmupWindow": 3,
        "minSamples": 4,
        "minTimeMs": 0,
        "maxTimeMs": 1000,
        "maxSamples": 4,
        "targetInterval": 0,
    }
    out = measure(lambda: events.append("run"), settings, on_timed_loop=lambda: events.append("timed"))
    assert events == ["run"] * 3 + ["timed"] + ["run"] * 4
    assert len(out["samplesNs"]) == 4

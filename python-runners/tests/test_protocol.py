"""Messages validate against results/schema/protocol.schema.json, and the runner speaks the protocol
over a real socketpair on fd 3 (as the orchestrator's spawn does)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from fwbench_runner import runner
from fwbench_runner.engine import EngineUnavailable
from fwbench_runner.measure import measure
from fwbench_runner.protocol import Channel, validators

RUNNERS = Path(__file__).resolve().parents[1]
TO_WORKER, FROM_WORKER = validators()


def test_every_message_the_runner_sends_validates():
    samples = measure(
        lambda: None,
        {
            "warmupMinIters": 1,
            "warmupMaxIters": 2,
            "warmupMaxMs": 1,
            "warmupTolerance": 0.1,
            "warmupWindow": 2,
            "minSamples": 2,
            "minTimeMs": 0,
            "maxTimeMs": 1000,
            "maxSamples": 3,
        },
    )
    for msg in [
        {"type": "hello", "protocol": 1, "pid": os.getpid(), "language": "python", "runtime": "python 3.11"},
        {"type": "probe-result", "version": "2.13.0", "devices": ["cpu"], "details": {"blas": "mkl"}},
        {"type": "built", "phases": {"importMs": 900.0, "weightsMs": 2.0, "buildMs": 1.5}, "settings": {"threads": 2, "mode": "eager", "mkldnn": True}},
        {"type": "built", "phases": {"importMs": 900.0, "weightsMs": 2.0, "buildMs": 1.5, "compileMs": 4000.0}, "settings": {}},
        {"type": "parity", "firstRunMs": 3.0, "shape": [2, 2], "values": [0.1, -0.2, 0.3, 0.4]},
        {"type": "samples", **samples},
        {"type": "memory", "peakHostBytes": 123 * 2**20, "peakDeviceBytes": 2**20},
        {"type": "done"},
        {"type": "error", "phase": "build", "message": "boom", "stack": "Traceback ...", "unavailable": True, "fix": "pip install torch==2.13.0"},
    ]:
        FROM_WORKER.validate(msg)


def test_invalid_messages_are_rejected_both_ways():
    with pytest.raises(jsonschema.ValidationError):
        FROM_WORKER.validate({"type": "hello", "protocol": 1, "pid": 1, "language": "ruby", "runtime": "x"})
    with pytest.raises(jsonschema.ValidationError):
        FROM_WORKER.validate({"type": "error", "phase": "teardown", "message": "x"})
    with pytest.raises(jsonschema.ValidationError):
        TO_WORKER.validate({"type": "probe", "protocol": 2, "engine": "torch"})
    TO_WORKER.validate({"type": "continue"})


def test_cold_start_phases_are_the_ones_harness_protocol_declares():
    """The runner's phase names are checked against the schema: unknown, missing or negative ones are refused."""
    built = lambda phases: {"type": "built", "phases": phases, "settings": {}}  # noqa: E731
    ok = {"importMs": 1.0, "weightsMs": 1.0, "buildMs": 1.0}
    FROM_WORKER.validate(built(ok))
    for bad in [{**ok, "traceMs": 1.0}, {"weightsMs": 1.0, "buildMs": 1.0}, {**ok, "compileMs": -1.0}]:
        with pytest.raises(jsonschema.ValidationError):
            FROM_WORKER.validate(built(bad))


def test_channel_refuses_to_send_an_invalid_message_and_nan():
    a, b = socket.socketpair()
    ch = Channel(a)
    with pytest.raises(jsonschema.ValidationError):
        ch.send({"type": "memory"})
    with pytest.raises(ValueError):
        ch.send({"type": "parity", "firstRunMs": 1.0, "shape": [1, 1], "values": [float("nan")]})
    ch.send({"type": "done"})
    assert b.recv(100) == b'{"type":"done"}\n'
    ch.close()
    b.close()


def test_a_missing_framework_is_unavailable_with_the_install_command(monkeypatch):
    monkeypatch.setitem(runner.ENGINES, "nothing", ("no_such_framework_xyz.engine", "no_such_framework_xyz", "torch"))
    with pytest.raises(EngineUnavailable) as e:
        runner.load_engine("nothing")
    assert "no_such_framework_xyz is not installed" in str(e.value)
    assert e.value.fix.startswith(f"{sys.executable} -m pip install 'torch==2.13.0'")


def converse(first, replies=()):
    """Runs `python -m fwbench_runner` with fd 3 as one end of a socketpair; returns its messages and exit code."""
    lines, code = converse_raw(first, replies)
    return [json.loads(line) for line in lines], code


def converse_raw(first, replies=()):
    """Like converse, but returns the raw protocol lines."""
    ours, theirs = socket.socketpair()
    env = {**os.environ, "PYTHONPATH": str(RUNNERS), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "fwbench_runner"], pass_fds=(theirs.fileno(), 3), env=env, preexec_fn=lambda: os.dup2(theirs.fileno(), 3))
    theirs.close()
    ours.sendall((json.dumps(first) + "\n").encode())
    for reply in replies:
        ours.sendall((json.dumps(reply) + "\n").encode())
    lines = ours.makefile("rb").read().decode().splitlines()
    ours.close()
    return lines, proc.wait(timeout=120)


def test_runner_probe_round_trip_over_fd3():
    msgs, code = converse({"type": "probe", "protocol": 1, "engine": "torch"})
    assert code == 0
    assert [m["type"] for m in msgs] == ["hello", "phase", "probe-result", "done"]
    assert msgs[1]["phase"] == "probe"
    assert msgs[0]["language"] == "python" and msgs[0]["pid"] > 0
    assert "cpu" in msgs[2]["devices"]
    for m in msgs:
        FROM_WORKER.validate(m)


def test_runner_reports_the_failing_phase_with_the_traceback(tmp_path):
    msgs, code = converse({"type": "probe", "protocol": 1, "engine": "jax"})
    assert code == 1
    assert msgs[-1]["type"] == "error" and msgs[-1]["phase"] == "probe"
    assert "no engine 'jax'" in msgs[-1]["message"] and "Traceback" in msgs[-1]["stack"]
    job = {
        "type": "job",
        "protocol": 1,
        "cell": {"engine": "torch", "mode": "eager", "device": "cpu", "family": "rnn", "params": {}, "batchSize": 1, "threads": 1},
        "weightsPath": str(tmp_path / "missing.safetensors"),
        "inputsPath": str(tmp_path / "x"),
        "measure": {
            "warmupMinIters": 1,
            "warmupMaxIters": 1,
            "warmupMaxMs": 1,
            "warmupTolerance": 0.1,
            "warmupWindow": 2,
            "minSamples": 1,
            "minTimeMs": 0,
            "maxTimeMs": 1,
            "maxSamples": 1,
            "targetInterval": 0.01,
        },
    }
    msgs, code = converse(job)
    assert code == 1 and msgs[-1]["phase"] == "load" and "missing.safetensors" in msgs[-1]["message"]

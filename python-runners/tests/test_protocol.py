"""The runner speaks the protocol over a real socketpair on fd 3 (as the orchestrator's spawn does),
on the job messages the orchestrator itself makes: orchestrator_jobs.mjs builds them with the
harness's compiled code (dist/), and the runner's own Channel and loop take them."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from fwbench_runner import manifest, runner
from fwbench_runner.engine import EngineUnavailable
from fwbench_runner.protocol import Channel, validators

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
TO_WORKER, FROM_WORKER = validators()


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """{(engine, mode, family): job message} as `fwbench run` makes them, weights and inputs in a fresh cache."""
    if not (REPO / "dist" / "harness" / "run" / "execute.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` (npm ci runs it) so the orchestrator's code can make the job messages")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "orchestrator_jobs.mjs")], env=env, capture_output=True, text=True, check=True)
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    return {(m["cell"]["engine"], m["cell"]["mode"], m["cell"]["family"]): m for m in messages}


def through_channel(msg):
    """`msg` as the runner's Channel receives it from the other end of a socketpair (schema and manifest checks included)."""
    ours, theirs = socket.socketpair()
    channel = Channel(theirs)
    try:
        ours.sendall((json.dumps(msg) + "\n").encode())
        return channel.receive()
    finally:
        channel.close()
        ours.close()


def test_the_orchestrator_sends_every_mode_of_every_python_engine_on_every_family_and_the_runner_takes_each(jobs):
    def can(e, mode, family):
        task = manifest.FAMILIES[family]["tasks"][0]
        return not manifest.ENGINES[e]["unsupported"].get(task, {}).get(mode)

    engines = manifest.python_engines()
    expected = {(e, mode, family) for e in engines for mode in manifest.ENGINES[e]["modes"] for family in manifest.FAMILIES if can(e, mode, family)}
    assert set(jobs) == expected
    for job in jobs.values():
        assert through_channel(job) == job
        # TensorFlow gets the Keras-layout weights the orchestrator wrote (the decoder has no Keras mapping); PyTorch loads the canonical ones.
        assert ("nativeWeightsPath" in job) == (job["cell"]["engine"] == "tensorflow" and job["cell"]["family"] != "decoder")
        assert ("generate" in job) == (job["cell"]["family"] == "decoder")


def cell_error(job, **cell):
    """The ValueError the runner's Channel raises for `job` with `cell` fields replaced."""
    with pytest.raises(ValueError) as e:
        through_channel({**job, "cell": {**job["cell"], **cell}})
    return str(e.value)


def test_a_cell_outside_the_manifest_is_refused_in_one_line_naming_the_valid_values(jobs):
    job = jobs["torch", "eager", "rnn"]
    assert cell_error(job, family="gru") == "unknown workload family 'gru'; valid: cnn, rnn, transformer, decoder"
    assert cell_error(job, mode="function") == "unknown mode 'function' for engine 'torch'; valid: eager, torchscript, compile, compile-static, compile-dynamic"
    assert cell_error(job, device="tpu") == "unknown device 'tpu'; valid: cpu, cuda"


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


def test_the_runner_refuses_a_family_outside_the_manifest_before_loading_anything(jobs):
    msgs, code = converse({**jobs["tensorflow", "xla", "cnn"], "cell": {**jobs["tensorflow", "xla", "cnn"]["cell"], "family": "gru"}})
    assert code == 1
    assert [m["type"] for m in msgs] == ["error"]
    assert msgs[0]["phase"] == "start"
    assert msgs[0]["message"] == "ValueError: unknown workload family 'gru'; valid: cnn, rnn, transformer, decoder"


def phases_and_types(msgs):
    return [m["phase"] if m["type"] == "phase" else m["type"] for m in msgs]


def test_a_real_torch_job_runs_through_parity_samples_and_memory(jobs):
    job = jobs["torch", "eager", "rnn"]
    msgs, code = converse(job, [{"type": "continue"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == ["hello", "load", "build", "built", "parity", "parity", "warmup", "measure", "samples", "memory", "memory", "done"]
    for m in msgs:
        FROM_WORKER.validate(m)
    built, parity, samples = (next(m for m in msgs if m["type"] == t) for t in ("built", "parity", "samples"))
    assert set(built["phases"]) == {"importMs", "weightsMs", "buildMs"}  # eager: nothing to compile
    assert built["settings"]["mode"] == "eager" and built["settings"]["threads"] == job["cell"]["threads"]
    classes = job["cell"]["params"]["classes"]
    assert parity["shape"] == [job["cell"]["batchSize"], classes] and len(parity["values"]) == job["cell"]["batchSize"] * classes
    assert len(samples["samplesNs"]) >= job["measure"]["minSamples"]


def test_a_real_tensorflow_job_builds_its_family_from_the_keras_layout_weights_and_stops_when_told(jobs):
    job = jobs["tensorflow", "function", "transformer"]
    msgs, code = converse(job, [{"type": "stop"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == ["hello", "load", "build", "built", "parity", "parity", "memory", "memory", "done"]
    for m in msgs:
        FROM_WORKER.validate(m)
    built, parity = (next(m for m in msgs if m["type"] == t) for t in ("built", "parity"))
    assert "compileMs" in built["phases"] and built["settings"]["mode"] == "function"
    assert parity["shape"] == [job["cell"]["batchSize"], job["cell"]["params"]["classes"]]


def test_runner_reports_the_failing_phase_with_the_traceback(jobs, tmp_path):
    msgs, code = converse({"type": "probe", "protocol": 1, "engine": "jax"})
    assert code == 1
    assert msgs[-1]["type"] == "error" and msgs[-1]["phase"] == "probe"
    assert "no engine 'jax'" in msgs[-1]["message"] and "Traceback" in msgs[-1]["stack"]
    msgs, code = converse({**jobs["torch", "eager", "rnn"], "weightsPath": str(tmp_path / "missing.safetensors")})
    assert code == 1 and msgs[-1]["phase"] == "load" and "missing.safetensors" in msgs[-1]["message"]


def test_runner_probe_round_trip_over_fd3():
    msgs, code = converse({"type": "probe", "protocol": 1, "engine": "torch"})
    assert code == 0
    assert [m["type"] for m in msgs] == ["hello", "phase", "probe-result", "done"]
    assert msgs[1]["phase"] == "probe"
    assert msgs[0]["language"] == "python" and msgs[0]["pid"] > 0
    assert "cpu" in msgs[2]["devices"]
    for m in msgs:
        FROM_WORKER.validate(m)


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

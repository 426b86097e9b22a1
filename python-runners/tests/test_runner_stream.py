"""The runner drives a real shape-stream job (torch, tiny presets) through the protocol over a real
socketpair on fd 3, as the orchestrator spawns it: the job message is the one `fwbench run` makes
(stream_workloads.mjs: jobMessage plus the job's `stream` field), every message is validated against
the schema the TS side generates, and the sequence, the shapes and the counts are the ones
harness/worker/protocol.ts documents for a stream job, and so is the warm passes' stopping rule."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from test_protocol import converse, phases_and_types  # noqa: E402

from fwbench_runner import runner  # noqa: E402
from fwbench_runner import torch as torch_engine  # noqa: E402
from fwbench_runner.engine import BuildRequest  # noqa: E402
from fwbench_runner.protocol import validators  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 2
_, FROM_WORKER = validators()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{family: {params, weightsPath, streams, job}} for batch 2, written to a fresh cache."""
    if not (REPO / "dist" / "workloads" / "shapes.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can make the job messages")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "stream_workloads.mjs"), str(BATCH)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def one(msgs, kind):
    [m] = [m for m in msgs if m["type"] == kind]
    return m


def test_a_stream_job_sends_its_cold_pass_then_warm_passes_then_the_fixed_baselines_samples(made):
    job = made["rnn"]["job"]
    assert job["cell"]["shapes"] == "stream" and job["stream"]["batches"] == 16
    msgs, code = converse(job, [{"type": "continue"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == [
        *["hello", "load", "build", "built", "parity", "stream-parity"],
        *["measure", "passes", "warmup", "measure", "samples", "memory", "memory", "done"],
    ]
    for m in msgs:
        FROM_WORKER.validate(m)
    built, cold, warm, samples = (one(msgs, t) for t in ("built", "stream-parity", "passes", "samples"))
    assert set(built["phases"]) == {"importMs", "weightsMs", "buildMs"}  # eager: nothing to compile
    assert "pack_padded_sequence" in built["settings"]["streamInputs"]
    batches, classes = job["stream"]["batches"], job["cell"]["params"]["classes"]
    assert len(cold["passNs"]) == batches and all(t > 0 for t in cold["passNs"])
    assert [len(o) for o in cold["outputs"]] == [BATCH * classes] * batches
    assert len({tuple(o) for o in cold["outputs"]}) == batches  # every batch's own logits
    assert cold["compiles"] is None and warm["compiles"] is None
    assert job["stream"]["minPasses"] <= len(warm["passesNs"]) <= job["stream"]["maxPasses"]
    assert all(len(p) == batches for p in warm["passesNs"])
    assert warm["load"]["wallMs"] > 0 and warm["load"]["ownCpuMs"] >= 0
    assert len(samples["samplesNs"]) >= job["measure"]["minSamples"]


def test_a_stream_job_told_to_stop_ends_after_its_cold_pass_and_a_reference_file_needs_no_fixed_batch(made):
    w = made["transformer"]
    rows = w["streams"]["rows"]
    # The reference's job: every row a batch of one at its own length (no fixed.* in its file), traced once.
    stream = {**w["job"]["stream"], "path": rows["path"], "batches": rows["batches"]}
    job = {**w["job"], "cell": {**w["job"]["cell"], "mode": "torchscript", "batchSize": 1}, "stream": stream}
    msgs, code = converse(job, [{"type": "stop"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == ["hello", "load", "build", "built", "parity", "stream-parity", "memory", "memory", "done"]
    for m in msgs:
        FROM_WORKER.validate(m)
    built, cold = one(msgs, "built"), one(msgs, "stream-parity")
    assert "compileMs" in built["phases"] and built["settings"]["mode"] == "torchscript"
    assert cold["compiles"] == 1
    classes = job["cell"]["params"]["classes"]
    assert len(cold["passNs"]) == rows["batches"] == len(rows["lengths"]) * BATCH
    assert [len(o) for o in cold["outputs"]] == [classes] * rows["batches"]
    # The cell's batches hold these rows padded: the cell's cold pass gives the same logits.
    cell_msgs, code = converse(w["job"], [{"type": "stop"}])
    assert code == 0, cell_msgs[-1]
    padded = np.array(one(cell_msgs, "stream-parity")["outputs"], dtype=np.float64).reshape(-1, classes)
    alone = np.array(cold["outputs"], dtype=np.float64).reshape(-1, classes)
    assert np.linalg.norm(padded - alone) / np.linalg.norm(alone) < 3e-5


def test_a_stream_cell_without_its_stream_field_fails_in_one_line(made):
    job = {k: v for k, v in made["rnn"]["job"].items() if k != "stream"}
    msgs, code = converse(job)
    assert code == 1
    assert msgs[-1]["type"] == "error" and msgs[-1]["phase"] == "start"
    assert msgs[-1]["message"] == "ValueError: a stream cell's job needs its `stream` field (the stream file and its passes)"


def test_warm_passes_stop_at_the_protocols_bounds(made):
    """The warm passes' rule on a real model and a clock that advances 1 ms per read: at least
    minPasses passes and minTimeMs, at most maxPasses, and maxTimeMs ends them after one pass."""
    w = made["rnn"]
    model = torch_engine.build(BuildRequest("rnn", w["params"], BATCH, load_tensors(w["weightsPath"])[0], None, "cpu", "eager", 1, stream=True))
    tensors = load_tensors(w["streams"]["exact"]["path"])[0]
    feeds = [model.prepare({"tokens": tensors[f"tokens.{i}"], "lengths": tensors[f"lengths.{i}"]}) for i in range(2)]

    def passes(min_passes, max_passes, min_ms, max_ms):
        ticks = iter(range(0, 10**12, 1_000_000))
        spec, settings = {"minPasses": min_passes, "maxPasses": max_passes}, {"minTimeMs": min_ms, "maxTimeMs": max_ms}
        with model.session():
            out = runner.warm_passes(model, feeds, spec, settings, clock=lambda: next(ticks), watch=None)
        assert "load" not in out and out["compiles"] is None
        assert all(p == [1_000_000, 1_000_000] for p in out["passesNs"])  # each batch timed on its own
        return len(out["passesNs"])

    # One pass reads the clock 5 times (twice per batch, once for the elapsed time): 5 ms.
    assert passes(3, 20, 0, 1000) == 3
    assert passes(1, 20, 50, 1000) == 10
    assert passes(3, 4, 10_000, 100_000) == 4
    assert passes(5, 20, 10_000, 1) == 1

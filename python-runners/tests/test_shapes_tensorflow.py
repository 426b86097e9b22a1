"""The TensorFlow engine on shape streams (BuildRequest.stream; workloads/shapes.ts), on the files a
stream cell reads, written by the harness's own compiled code: the Keras-layout weights
(training_files.mjs) and the stream's batches (materializeStream, padded `max` and `exact`).

1. In every mode, a padded batch with its lengths gives each row's logits as if the row ran alone,
   unpadded, at its own length, through the fixed-shape model (no mask, no lengths): relative L2
   below FP32_REL_L2_TOLERANCE. With every length set to the padded length (mask off) the short
   rows' logits differ, so the mask is what makes them right.
2. On one stream of several distinct lengths (`exact` padding: each batch at its longest row),
   tf.function without a signature traces once per distinct shape, more than with a signature
   (once); the counts of every mode are printed.
3. The new modes run fixed-shape cells too, with the fixed model's logits.

Tiny presets with two layers (stacked LSTMs; two encoder layers), batch 4."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fwbench_runner import tensorflow as tf_engine  # noqa: E402
from fwbench_runner.engine import BuildRequest  # noqa: E402
from fwbench_runner.manifest import ENGINES  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 4
SEED = 0
FAMILIES = ["rnn", "transformer"]
MODES = ENGINES["tensorflow"]["modes"]
#: harness/parity FP32_REL_L2_TOLERANCE: what a stream row's logits must meet against the row alone.
TOLERANCE = 3e-5
#: With the mask off, a padded row's logits are those of another input: far beyond the tolerance.
UNMASKED_AT_LEAST = 1e-3

STREAM_FILES = """
import { FAMILIES } from './dist/workloads/index.js';
import { materializeStream } from './dist/workloads/shapes.js';
const [name, params, seed, batch] = JSON.parse(process.argv[1]);
const out = {};
for (const padding of ['max', 'exact']) out[padding] = materializeStream(FAMILIES[name], params, seed, batch, padding).path;
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """{family: params, Keras-layout weights and the stream's batches per padding ([(tokens, lengths)])}."""
    if not (REPO / "dist" / "workloads" / "shapes.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the orchestrator's code can write the stream files")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    spec = [{"family": f, "preset": "tiny", "set": {"layers": 2}, "seed": SEED, "batch": BATCH} for f in FAMILIES]
    out = subprocess.run(["node", str(RUNNERS / "tests" / "training_files.mjs"), json.dumps(spec)], env=env, capture_output=True, text=True, check=True)
    loaded = {}
    for line in out.stdout.splitlines():
        cell = json.loads(line)
        family, params = cell["family"], cell["params"]
        args = json.dumps([family, params, SEED, BATCH])
        written = subprocess.run(["node", "--input-type=module", "-e", STREAM_FILES, args], cwd=REPO, env=env, capture_output=True, text=True, check=True)
        paths = json.loads(written.stdout)
        streams = {}
        for padding, path in paths.items():
            tensors = load_tensors(path)[0]
            n = sum(1 for name in tensors if name.startswith("tokens."))
            streams[padding] = [(tensors[f"tokens.{i}"], tensors[f"lengths.{i}"]) for i in range(n)]
        weights, native = (load_tensors(cell[key])[0] for key in ("weightsPath", "nativeWeightsPath"))
        loaded[family] = {"params": params, "weights": weights, "native": native, "streams": streams}
    return loaded


def build(cell, family, mode, stream=True, batch=BATCH, params=None):
    req = BuildRequest(family, params or cell["params"], batch, cell["weights"], cell["native"], "cpu", mode, 1, stream=stream)
    return tf_engine.build(req)


def run(model, inputs):
    with model.session():
        return model.run(model.prepare(inputs))


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def alone(cell, family, tokens, length, models):
    """The logits of one row run alone, unpadded, at its own length, through the fixed-shape eager
    model (no lengths, no mask): the transformer's runs at any length; the rnn's is built at it."""
    key = 1 if family == "transformer" else length
    if key not in models:
        params = cell["params"] if family == "transformer" else {**cell["params"], "seq": length}
        models[key] = build(cell, family, "eager", stream=False, batch=1, params=params)
    return run(models[key], {"tokens": np.ascontiguousarray(tokens[None, :length])})[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_padded_batch_gives_each_row_its_logits_alone_in_every_mode(cells, family):
    cell = cells[family]
    # `max` padding: every row padded to the preset's length; the first batches have 2..8 real steps.
    batches = cell["streams"]["max"][:4]
    assert any(int(l) < t.shape[1] for t, ls in batches for l in ls), "the batches must have padding"
    references, models = [], {}
    for tokens, lengths in batches:
        references.append([alone(cell, family, tokens[r], int(lengths[r]), models) for r in range(len(lengths))])
    report = []
    for mode in MODES:
        model = build(cell, family, mode)
        worst, unmasked = 0.0, 0.0
        for (tokens, lengths), want in zip(batches, references, strict=True):
            got = run(model, {"tokens": tokens, "lengths": lengths})
            assert got.shape == (len(lengths), cell["params"]["classes"])
            worst = max(worst, *(rel(got[r], want[r]) for r in range(len(lengths))))
            # Mask off: every position counts as real.
            full = run(model, {"tokens": tokens, "lengths": np.full_like(lengths, tokens.shape[1])})
            short = [r for r in range(len(lengths)) if lengths[r] < tokens.shape[1]]
            unmasked = max(unmasked, *(rel(full[r], want[r]) for r in short))
        report.append(f"{mode} {worst:.1e} (mask off {unmasked:.1e})")
        assert worst < TOLERANCE, (mode, worst)
        assert unmasked > UNMASKED_AT_LEAST, (mode, unmasked)
    print(f"\n{family}: padded vs alone, worst row relL2 per mode: " + "; ".join(report))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_function_without_signature_traces_per_shape_and_with_one_once(cells, family):
    cell = cells[family]
    stream = cell["streams"]["exact"]
    shapes = {t.shape for t, _ in stream}
    assert len(shapes) >= 3, f"the stream has {len(shapes)} distinct shapes"
    counts = {}
    for mode in MODES:
        model = build(cell, family, mode)
        with model.session():
            for tokens, lengths in stream:
                model.run(model.prepare({"tokens": tokens, "lengths": lengths}))
        counts[mode] = model.compile_count()
        settings = model.settings
        assert settings["mode"] == mode and settings["inputSignature"] == (mode == "function-signature")
        assert settings["reduceRetracing"] == (mode == "function-relaxed") and settings["jitCompile"] == (mode == "xla")
    print(f"\n{family}: {len(stream)} batches, {len(shapes)} distinct shapes; traces per mode: {counts}")
    assert counts["eager"] is None
    # The done-when: tf.function without a signature retraces more than with one.
    assert counts["function"] == len(shapes) and counts["xla"] == len(shapes)
    assert counts["function-signature"] == 1
    assert counts["function"] > counts["function-signature"]
    assert 1 <= counts["function-relaxed"] < counts["function"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_new_modes_run_fixed_shape_cells_with_the_fixed_logits(cells, family):
    cell = cells[family]
    tokens = cell["streams"]["max"][0][0]
    want = run(build(cell, family, "eager", stream=False), {"tokens": tokens})
    for mode in ("function-signature", "function-relaxed"):
        model = build(cell, family, mode, stream=False)
        got = run(model, {"tokens": tokens})
        assert rel(got, want) < 1e-6, mode
        assert model.compile_count() == 1
        assert model.settings["shapes"] == "fixed"
    assert "input_signature=[TensorSpec([None, None], int32" in build(cell, family, "function-signature", stream=False).settings["tfFunction"]

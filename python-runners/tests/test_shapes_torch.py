"""The torch models on shape streams (BuildRequest.stream), on the canonical tiny workloads and
stream files the harness's own compiled code makes (stream_workloads.mjs): in every mode, a padded
batch with its lengths gives each row's logits as the row run alone, unpadded, at its own length
(relative L2 < FP32_REL_L2_TOLERANCE), and the same batch with every length set to the padded
length (the mask off) does not; torch.compile's own count of compiled graphs shows dynamic=False
compiling more graphs on a stream of distinct lengths than dynamic=True.

Figures are printed (pytest -s shows them)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fwbench_runner import torch as engine  # noqa: E402
from fwbench_runner.engine import BuildRequest  # noqa: E402
from fwbench_runner.manifest import ENGINES  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 4
FAMILIES = ("rnn", "transformer")
MODES = ENGINES["torch"]["modes"]
#: harness/parity FP32_REL_L2_TOLERANCE: what a stream cell's logits must meet against the reference.
TOLERANCE = 3e-5


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{family: {params, weightsPath, streams: {padding: {path, batches, lengths}}, job}}, written to a fresh cache."""
    if not (REPO / "dist" / "workloads" / "shapes.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can make the workloads")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "stream_workloads.mjs"), str(BATCH)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def build(made, family, mode, stream=True, batch=BATCH):
    w = made[family]
    return engine.build(BuildRequest(family, w["params"], batch, load_tensors(w["weightsPath"])[0], None, "cpu", mode, 1, stream=stream))


def batch_of(made, family, padding, i):
    """Batch i of a stream file: {tokens, lengths}."""
    tensors = load_tensors(made[family]["streams"][padding]["path"])[0]
    return {"tokens": tensors[f"tokens.{i}"], "lengths": tensors[f"lengths.{i}"]}


def rows_alone(made, family, i):
    """The logits of batch i's rows, each run alone at its own length, unpadded (the reference's
    file `rows`: batch i row r is entry i * BATCH + r), by the eager model: [BATCH, classes]."""
    model = build(made, family, "eager", batch=1)
    with model.session():
        return np.concatenate([model.run(model.prepare(batch_of(made, family, "rows", i * BATCH + r))) for r in range(BATCH)])


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def two_batches(made, family):
    """Two batches of the stream at two different padded lengths: batch 0 padded to the preset's
    length (`max`), the one a mode traces or compiles on, then the first batch padded to its
    longest row (`exact`) that is shorter than the preset's length and has a shorter row: it runs
    at another length (a trace that baked the length in would fail it)."""
    s = made[family]["streams"]["exact"]
    seq = made[family]["params"]["seq"]
    i = next(i for i, rows in enumerate(s["lengths"]) if max(rows) < seq and min(rows) < max(rows))
    return [("max", 0), ("exact", i)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", MODES)
def test_a_padded_batch_with_lengths_gives_each_rows_logits_alone_and_the_mask_matters(made, family, mode):
    model = build(made, family, mode)
    batches = two_batches(made, family)
    feeds = [model.prepare(batch_of(made, family, padding, i)) for padding, i in batches]
    assert feeds[0][0].shape[1] != feeds[1][0].shape[1], "the two batches must run at different lengths"
    with model.session():
        if model.compiles:
            model.compile(feeds[0])
        outs = [model.run(f) for f in feeds]
        count = model.compile_count()
        masked_off = [model.run((tokens, torch.full_like(lens, tokens.shape[1]))) for tokens, lens in feeds]
    for (padding, i), feed, out, off in zip(batches, feeds, outs, masked_off, strict=True):
        tokens, lens = feed
        assert (lens < tokens.shape[1]).any(), "a batch without padding would show nothing"
        alone = rows_alone(made, family, i)
        assert out.shape == alone.shape == (BATCH, made[family]["params"]["classes"])
        padded, unmasked = rel_l2(out, alone), rel_l2(off, alone)
        print(f"{family} {mode} {padding} batch {i} (L={tokens.shape[1]}, lengths {lens.tolist()}): relL2 {padded:.2e} with lengths, {unmasked:.2e} mask off")
        assert padded < TOLERANCE
        assert unmasked > 100 * TOLERANCE
    print(f"{family} {mode}: compile count {count}")
    if mode == "eager":
        assert count is None
    elif mode == "torchscript":
        assert count == 1  # one trace, on the first batch, serves every length
    else:
        assert count >= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_without_stream_the_model_takes_tokens_alone_and_agrees_with_the_stream_model_at_full_length(made, family):
    fixed_model, stream_model = build(made, family, "eager", stream=False), build(made, family, "eager")
    tensors = load_tensors(made[family]["streams"]["exact"]["path"])[0]
    fixed = {"tokens": tensors["fixed.tokens"], "lengths": tensors["fixed.lengths"]}
    feed = fixed_model.prepare(fixed)
    assert isinstance(feed, torch.Tensor)  # no lengths: the model as it always was
    with torch.inference_mode():
        a, b = fixed_model.run(feed), stream_model.run(stream_model.prepare(fixed))
    assert rel_l2(b, a) < TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_compile_static_compiles_more_graphs_than_compile_dynamic_on_a_stream_of_distinct_lengths(made, family):
    s = made[family]["streams"]["exact"]
    # The first batches of the stream at three distinct padded lengths (exact: each batch's longest row).
    picked, seen = [], set()
    for i, rows in enumerate(s["lengths"]):
        if max(rows) not in seen and len(picked) < 3:
            seen.add(max(rows))
            picked.append(i)
    assert len(picked) == 3
    counts = {}
    for mode in ("compile-static", "compile-dynamic"):
        model = build(made, family, mode)
        assert model.settings["compileDynamic"] == {"compile-static": "False", "compile-dynamic": "True"}[mode]
        assert "dynamoRecompileLimit" in model.settings
        feeds = [model.prepare(batch_of(made, family, "exact", i)) for i in picked]
        with model.session():
            model.compile(feeds[0])
            for feed in feeds:
                model.run(feed)
        counts[mode] = model.compile_count()
    print(f"{family}: compiled graphs over lengths {sorted(seen)}: {counts}")
    assert counts["compile-static"] > counts["compile-dynamic"] >= 1

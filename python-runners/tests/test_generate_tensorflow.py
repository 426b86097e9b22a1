"""The TensorFlow engine's generators (fwbench_runner/tensorflow/decoder.py) on the files a generation
cell reads, written by the harness's own compiled code (generate_workloads.mjs: the tiny decoder's
canonical weights and a prompt file), against the float64 numpy reference (decoder_reference.py,
which recomputes the whole sequence at every step, so a cache that drops or misplaces a position
cannot match it):

1. every mode x cache (kv, none) x batch (1, 2) generates the reference's token ids, with every
   step's logits within the parity tolerance (the worst relative L2 of each cell is printed); a
   generation on another prompt in between is that prompt's reference generation, and the first
   prompt's generation then reproduces the first one (prefill forgets the earlier generation);
2. the tracing counts: function and xla trace once for the prefill and once for a decode step,
   however many decode steps follow and however many generations; function-signature traces once;
   function-relaxed traces a second time at the first decode step, a general trace every later
   step reuses; whereas plain tf.function on a growing cache (what function would be without the
   preallocated cache) traces again at every step;
3. a generate job through the real runner over the protocol (the message `fwbench run` sends,
   made into a TensorFlow xla cell): the reference's ids in `generate-parity`, the logits file, the
   compile count (2) and the warm generations;
4. the decoder family refuses inference and training builds, and other families refuse to generate.

Prompt 8 tokens, 6 new tokens, one thread."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from decoder_reference import generate as reference_generate  # noqa: E402

from fwbench_runner import tensorflow as tf_engine  # noqa: E402
from fwbench_runner.engine import BuildRequest, GenerateRequest  # noqa: E402
from fwbench_runner.manifest import ENGINES  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402
from fwbench_runner.tensorflow import decoder  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
PROMPT, NEW = 8, 6
BATCHES = [1, 2]
MODES = ENGINES["tensorflow"]["modes"]
#: harness/parity FP32_REL_L2_TOLERANCE: what the orchestrator's parity gate holds each step's logits to.
TOLERANCE = 3e-5


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """The tiny decoder's params and canonical weights, the prompts of batch 2 (a batch of 1 is its
    first row), a second prompt (the first shifted by one token id) and both prompts' reference
    generations per batch."""
    if not (REPO / "dist" / "workloads" / "generate.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can write the decoder's files")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    args = [str(max(BATCHES)), str(PROMPT), str(NEW)]
    out = subprocess.run(["node", str(RUNNERS / "tests" / "generate_workloads.mjs"), *args], env=env, capture_output=True, text=True, check=True)
    made = json.loads(out.stdout)
    job = made["job"]
    params, weights = made["params"], load_tensors(made["weightsPath"])[0]
    first = load_tensors(made["promptPath"])[0]["tokens"]
    other = (first + 1) % params["vocab"]
    prompts = {b: (first[:b], other[:b]) for b in BATCHES}
    references = {b: tuple(reference_generate(weights, params, p, NEW) for p in prompts[b]) for b in BATCHES}
    return {"params": params, "weights": weights, "prompts": prompts, "references": references, "job": job}


def request(workload, mode, cache, batch):
    generation = {"promptLength": PROMPT, "newTokens": NEW, "cache": cache}
    return GenerateRequest("decoder", workload["params"], batch, workload["weights"], None, "cpu", mode, 1, generation=generation)


def run(gen, prompt):
    """One generation as the runner makes it (prefill, then decode steps, every step's logits asked
    for): (ids [B, N], logits [N, B, V], the compile count after each step)."""
    feed = gen.prepare(prompt)
    ids, logits, counts = [], [], []
    with gen.session():
        for step in range(NEW):
            chosen, step_logits = gen.prefill(feed, True) if step == 0 else gen.decode(True)
            assert chosen.dtype == np.int32 and chosen.shape == (prompt.shape[0],)
            assert step_logits.dtype == np.float32 and step_logits.shape == (prompt.shape[0], gen.decoder.word.input_dim)
            ids.append(chosen)
            logits.append(step_logits)
            counts.append(gen.compile_count())
    return np.stack(ids, axis=1), np.stack(logits), counts


def worst_rel_l2(logits, reference):
    return max(float(np.linalg.norm(got - want) / np.linalg.norm(want)) for got, want in zip(logits, reference, strict=True))


#: The compile count after each step of the first generation, per mode (the same for kv and none):
#: eager compiles nothing; function/xla trace the prefill, then one decode trace serves every step;
#: function-signature's one trace serves everything; function-relaxed retraces once, generalised.
COUNTS = {
    "eager": [None] * NEW,
    "function": [1] + [2] * (NEW - 1),
    "xla": [1] + [2] * (NEW - 1),
    "function-signature": [1] * NEW,
    "function-relaxed": [1] + [2] * (NEW - 1),
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("cache", ["kv", "none"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_cache_generates_the_reference_ids_and_logits_with_bounded_traces(workload, mode, cache, batch):
    gen = tf_engine.build_generator(request(workload, mode, cache, batch))
    first, other = workload["prompts"][batch]
    (want_ids, want_logits), (other_ids, other_logits) = workload["references"][batch]

    ids, logits, counts = run(gen, first)
    worst = worst_rel_l2(logits, want_logits)
    print(f"\n{mode:18} {cache:4} batch {batch}: worst step relL2 {worst:.2e}, compile count per step {counts}")
    np.testing.assert_array_equal(ids, want_ids)
    assert worst < TOLERANCE
    assert counts == COUNTS[mode]

    # Another prompt, then the first again: each generation starts afresh, and traces nothing new.
    again_other = run(gen, other)
    np.testing.assert_array_equal(again_other[0], other_ids)
    assert worst_rel_l2(again_other[1], other_logits) < TOLERANCE
    again_ids, again_logits, again_counts = run(gen, first)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_logits, logits, rtol=0, atol=1e-6)
    assert again_counts == again_other[2] == [COUNTS[mode][-1]] * NEW

    # The settings say how the cache is kept and what the mode wrapped.
    fixed = mode in decoder.FIXED_MODES
    assert gen.settings["cache"] == decoder.CACHE_WORDS["fixed" if fixed else "growing"][cache]
    assert gen.settings["jitCompile"] == (mode == "xla") and gen.settings["inputSignature"] == (mode == "function-signature")
    assert gen.settings["tfFunction"].startswith("tf.function(") == (mode != "eager")


@pytest.mark.parametrize("cache", ["kv", "none"])
def test_plain_tf_function_on_a_growing_cache_traces_at_every_step_unlike_the_preallocated_one(workload, cache):
    batch = 2
    preallocated = tf_engine.build_generator(request(workload, "function", cache, batch))
    # The same decoder, the cache grown by tf.concat (as eager) under tf.function with no shape option.
    growing = decoder.GrowingGenerator(preallocated.decoder, batch, cache, lambda call, signature: tf.function(call), "cpu", {})
    first = workload["prompts"][batch][0]
    ids, _, counts = run(growing, first)
    print(f"\nplain tf.function, growing {cache}: compile count per step {counts}; preallocated: {run(preallocated, first)[2]}")
    np.testing.assert_array_equal(ids, workload["references"][batch][0][0])
    # A new cache (or sequence) length at every step: a trace per step, NEW in all, where function has 2.
    assert counts == list(range(1, NEW + 1))
    # The same lengths again are cache hits: the count follows the number of distinct lengths.
    assert run(growing, first)[2] == [NEW] * NEW


def test_a_generate_job_runs_through_the_runner_with_the_reference_ids_and_two_traces(workload, tmp_path):
    from test_protocol import converse, phases_and_types

    from fwbench_runner.protocol import validators

    job = workload["job"]
    logits_path = tmp_path / "logits.safetensors"
    job = {**job, "cell": {**job["cell"], "engine": "tensorflow", "mode": "xla"}, "generate": {**job["generate"], "logitsPath": str(logits_path)}}
    msgs, code = converse(job, [{"type": "continue"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == ["hello", "load", "build", "built", "parity", "generate-parity", "measure", "passes", "memory", "memory", "done"]
    _, from_worker = validators()
    for m in msgs:
        from_worker.validate(m)
    [built] = [m for m in msgs if m["type"] == "built"]
    [cold] = [m for m in msgs if m["type"] == "generate-parity"]
    [warm] = [m for m in msgs if m["type"] == "passes"]
    assert built["settings"]["cache"] == decoder.CACHE_WORDS["fixed"]["kv"]
    want_ids, want_logits = workload["references"][max(BATCHES)][0]
    assert cold["tokens"] == want_ids.tolist() and len(cold["passNs"]) == NEW
    assert worst_rel_l2(load_tensors(str(logits_path))[0]["logits"], want_logits) < TOLERANCE
    assert cold["compiles"] == 2 and warm["compiles"] == 2
    assert job["generate"]["minPasses"] <= len(warm["passesNs"]) <= job["generate"]["maxPasses"]
    assert all(len(p) == NEW for p in warm["passesNs"])


def test_the_decoder_only_generates_and_only_the_decoder_generates(workload):
    fields = dict(params=workload["params"], batch_size=1, weights=workload["weights"], native_weights=None, device="cpu", mode="function", threads=1)
    with pytest.raises(ValueError, match=r"^tensorflow: the decoder family generates text \(--tasks generate\)"):
        tf_engine.build(BuildRequest("decoder", **fields))
    with pytest.raises(ValueError, match=r"^tensorflow: the transformer family does not generate text; the decoder family does$"):
        tf_engine.build_generator(GenerateRequest("transformer", **fields, generation={"promptLength": PROMPT, "newTokens": NEW, "cache": "kv"}))
    with pytest.raises(ValueError, match=r"^tensorflow: unknown generation cache 'paged'; valid: kv, none$"):
        tf_engine.build_generator(GenerateRequest("decoder", **fields, generation={"promptLength": PROMPT, "newTokens": NEW, "cache": "paged"}))


def test_a_preallocated_generator_refuses_prompts_of_another_shape(workload):
    gen = tf_engine.build_generator(request(workload, "function", "kv", 1))
    with pytest.raises(ValueError, match=r"^tensorflow: prompts of shape \[2, 8\]; this generator was built for \[1, 8\]$"):
        gen.prefill(gen.prepare(workload["prompts"][2][0]), False)

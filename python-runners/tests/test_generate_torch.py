"""The torch generator against the float64 reference (decoder_reference.py) on the decoder's tiny
preset, with the weights, the prompts and the job made by the harness's own compiled code
(generate_workloads.mjs): in every generate mode, with the kv cache and without one, at batch 1
and 2, the greedy token ids equal the reference's and each step's logits are within the parity
tolerance; a second generation repeats the first (the prefill forgets the earlier one); the
compile count is torch.compile's own, and the runner drives a real generation job end to end.

Relative L2 figures are printed (pytest -s shows them): fp32 against float64, ~3e-7 here."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import decoder_reference  # noqa: E402
from test_protocol import converse, phases_and_types  # noqa: E402

from fwbench_runner import torch as torch_engine  # noqa: E402
from fwbench_runner.engine import BuildRequest, GenerateRequest, TrainRequest  # noqa: E402
from fwbench_runner.protocol import validators  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
PROMPT, NEW = 8, 6
#: The parity gate's tolerance on each step's logits (fp32).
TOLERANCE = 3e-5
_, FROM_WORKER = validators()

#: torch.compile's count of unique graphs after each step of the first generation, by (mode,
#: cache): what each way of holding the cache costs in compilations. compile-static: one graph per
#: input shape a step has (kv: the prefill's [B, P] and a decode step's [B, 1], the position a
#: tensor; none: the one [B, P+N] buffer), never one per position. compile (dynamic=None): static
#: first, then recompiled with the length symbolic when it first changes (kv: the prefill, the
#: first decode step at cache length P, the decode step again at P+1; none: the prefill, then the
#: sequence at P+1). compile-dynamic: symbolic from the start (kv: the prefill and a decode step;
#: none: one graph for every length).
GRAPHS = {
    ("compile-static", "kv"): [1, 2, 2, 2, 2, 2],
    ("compile-static", "none"): [1, 1, 1, 1, 1, 1],
    ("compile", "kv"): [1, 2, 3, 3, 3, 3],
    ("compile", "none"): [1, 2, 2, 2, 2, 2],
    ("compile-dynamic", "kv"): [1, 2, 2, 2, 2, 2],
    ("compile-dynamic", "none"): [1, 1, 1, 1, 1, 1],
}
MODES = ["eager", "compile", "compile-static", "compile-dynamic"]


def make(tmp_path_factory, batch):
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp(f"cache-b{batch}"))}
    logits = str(tmp_path_factory.mktemp(f"logits-b{batch}") / "logits.safetensors")
    out = subprocess.run(
        ["node", str(RUNNERS / "tests" / "generate_workloads.mjs"), str(batch), str(PROMPT), str(NEW), logits],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    made = json.loads(out.stdout)
    made["weights"] = load_tensors(made["weightsPath"])[0]
    made["prompt"] = load_tensors(made["promptPath"])[0]["tokens"]
    made["ids"], made["logits"] = decoder_reference.generate(made["weights"], made["params"], made["prompt"], NEW)
    return made


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{batch: {params, weights, prompt, job, ids and logits of the float64 reference}} for batches 1 and 2, in a fresh cache."""
    if not (REPO / "dist" / "workloads" / "generate.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can make the workloads")
    return {batch: make(tmp_path_factory, batch) for batch in (1, 2)}


def request(w, mode, cache, batch, new=NEW):
    generation = {"promptLength": PROMPT, "newTokens": new, "cache": cache}
    return GenerateRequest("decoder", w["params"], batch, w["weights"], None, "cpu", mode, 1, generation=generation)


def generation(gen, feed):
    """One generation: (ids [B, N], logits [N, B, V], the compile count after each step)."""
    ids, logits, counts = [], [], []
    for i in range(NEW):
        tokens, step_logits = gen.prefill(feed, True) if i == 0 else gen.decode(True)
        assert tokens.dtype == np.int32 and step_logits.dtype == np.float32
        ids.append(tokens)
        logits.append(step_logits)
        counts.append(gen.compile_count())
    return np.stack(ids, axis=1), np.stack(logits), counts


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


#: Eager at batch 1 and 2; each compiled mode at batch 2 only (a compilation costs 10-30 s on a
#: 2-core CPU, and tests/generate.test.ts runs the default compile-static at batch 1 and 4 end to end).
CASES = [(mode, batch) for mode in MODES for batch in ((1, 2) if mode == "eager" else (2,))]


@pytest.mark.parametrize("cache", ["kv", "none"])
@pytest.mark.parametrize(("mode", "batch"), CASES)
def test_generation_equals_the_float64_reference_and_a_second_one_repeats_it(made, mode, cache, batch):
    from fwbench_runner.torch import graph_breaks

    w = made[batch]
    gen = torch_engine.build_generator(request(w, mode, cache, batch))
    assert gen.settings["cacheKind"] == ("static" if mode == "compile-static" else "growing")
    feed = gen.prepare(w["prompt"])
    with gen.session():
        ids, logits, counts = generation(gen, feed)
        again, logits_again, counts_again = generation(gen, feed)
        # A prefill with other prompts in between: the cache holds nothing of them afterwards.
        gen.prefill(gen.prepare(w["prompt"][:, ::-1]), False)
        gen.decode(False)
        third, logits_third, _ = generation(gen, feed)
    errors = [rel_l2(logits[i], w["logits"][i]) for i in range(NEW)]
    print(f"torch {mode} cache={cache} batch={batch}: worst step logits relL2 {max(errors):.2e}, compile counts {counts}")
    np.testing.assert_array_equal(ids, w["ids"])
    assert max(errors) < TOLERANCE
    for repeat_ids, repeat_logits in ((again, logits_again), (third, logits_third)):
        np.testing.assert_array_equal(repeat_ids, ids)
        np.testing.assert_array_equal(repeat_logits, logits)
    if mode == "eager":
        assert counts == counts_again == [None] * NEW
    else:
        assert counts == GRAPHS[mode, cache]
        assert counts_again == [counts[-1]] * NEW  # the warm generations compile nothing more
        assert graph_breaks() == 0  # each step one whole graph


def test_compile_static_keeps_its_graphs_however_long_the_generation(made):
    """The decode graph takes the position as a tensor: 3 or 12 new tokens, the same two graphs."""
    w = made[2]
    counts = {}
    for new in (3, 12):
        gen = torch_engine.build_generator(request(w, "compile-static", "kv", 2, new))
        with gen.session():
            gen.prefill(gen.prepare(w["prompt"]), False)
            for _ in range(new - 1):
                gen.decode(False)
        counts[new] = gen.compile_count()
    assert counts == {3: 2, 12: 2}


def test_the_decoder_only_generates_and_other_families_do_not(made):
    w = made[1]
    fields = ("decoder", w["params"], 1, w["weights"], None, "cpu", "eager", 1)
    expected = r"^torch: the decoder family does not do {}; its models do generate \(--tasks generate\)$"
    with pytest.raises(ValueError, match=expected.format("inference")):
        torch_engine.build(BuildRequest(*fields))
    with pytest.raises(ValueError, match=expected.format("training")):
        torch_engine.build_trainer(TrainRequest(*fields, recipe={}))
    with pytest.raises(ValueError, match=r"^torch: the rnn family does not do generate; its models do inference and training"):
        torch_engine.build_generator(GenerateRequest("rnn", {}, 1, {}, None, "cpu", "eager", 1, generation={"promptLength": 1, "newTokens": 1, "cache": "kv"}))
    with pytest.raises(ValueError, match=r"^torch mode torchscript cannot generate: fwbench's torchscript mode is torch.jit.trace"):
        torch_engine.build_generator(request(w, "torchscript", "kv", 1))
    too_long = GenerateRequest(*fields, generation={"promptLength": 280, "newTokens": 9, "cache": "kv"})
    with pytest.raises(ValueError, match=r"^torch: a prompt of 280 tokens and 9 new tokens need .* at most ctx=288 positions$"):
        torch_engine.build_generator(too_long)


def test_the_runner_generates_a_real_job_end_to_end(made):
    w = made[2]
    job = w["job"]
    assert job["cell"]["task"] == "generate" and job["cell"]["mode"] == "eager" and job["cell"]["generation"]["cache"] == "kv"
    msgs, code = converse(job, [{"type": "continue"}])
    assert code == 0, msgs[-1]
    assert phases_and_types(msgs) == [
        *["hello", "load", "build", "built", "parity", "generate-parity"],
        *["measure", "passes", "memory", "memory", "done"],
    ]
    for m in msgs:
        FROM_WORKER.validate(m)
    built, cold, warm = (next(m for m in msgs if m["type"] == t) for t in ("built", "generate-parity", "passes"))
    assert built["settings"]["cacheKind"] == "growing" and "torch.cat" in built["settings"]["cache"]
    assert cold["tokens"] == w["ids"].tolist()
    assert len(cold["passNs"]) == NEW and all(t > 0 for t in cold["passNs"])
    assert cold["compiles"] is None and warm["compiles"] is None
    spec = job["generate"]
    assert spec["minPasses"] <= len(warm["passesNs"]) <= spec["maxPasses"]
    assert all(len(p) == NEW for p in warm["passesNs"])
    logits, meta = load_tensors(spec["logitsPath"])
    assert meta["engine"] == "torch" and meta["mode"] == "eager" and meta["family"] == "decoder"
    assert logits["logits"].shape == w["logits"].shape and logits["logits"].dtype == np.float32
    assert max(rel_l2(logits["logits"][i], w["logits"][i]) for i in range(NEW)) < TOLERANCE

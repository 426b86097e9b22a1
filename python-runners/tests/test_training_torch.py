"""The torch trainer against the float64 reference on the canonical tiny workloads (weights, inputs,
seeded labels and the recipe made by the harness's own compiled code: training_workloads.mjs), the
"keras" reference's two mappings checked independently, and the runner's training flow end to end
on a fake channel whose messages are validated against the protocol schema the TS side generates.

Relative L2 figures are printed (pytest -s shows them). What bounds them: a gradient is computed in
fp32 (~1e-7..1e-6 relative); an update is read as (fp32 weights after the step) - (initial
weights), so the rounding of the stored fp32 weights (~6e-8 of |w|) weighs on small updates (rows
of an embedding no token used, which only decay; biases whose gradient is zero by symmetry) and
dominates the tensors' update errors (up to ~1e-3 relative on the tiny rnn and transformer)."""

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fwbench_runner import runner  # noqa: E402
from fwbench_runner.engine import TrainRequest  # noqa: E402
from fwbench_runner.protocol import validators  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402
from fwbench_runner.torch import build_trainer, cnn  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 4
FAMILIES = ("cnn", "rnn", "transformer")
CELL = {"engine": "torch", "mode": "eager", "family": "rnn", "device": "cpu", "batchSize": BATCH, "threads": 1, "task": "training"}
#: A measurement short enough for a test: one or two warm-up steps, three timed ones.
MEASURE = {
    "warmupMinIters": 1,
    "warmupMaxIters": 2,
    "warmupMaxMs": 2000,
    "warmupTolerance": 1,
    "warmupWindow": 2,
    "minSamples": 3,
    "minTimeMs": 0,
    "maxTimeMs": 2000,
    "maxSamples": 3,
    "targetInterval": 0,
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{recipe, workloads: {family: {params, weightsPath, inputsPath, labelsPath}}}, written to a fresh cache."""
    if not (REPO / "dist" / "workloads" / "training.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can make the workloads")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "training_workloads.mjs"), str(BATCH)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def train(made, family, mode="eager", reference=None, **recipe):
    """Three steps of a fresh trainer: losses, gradients at step 1, state after step 1 and after step 3, initial weights (float64)."""
    w = made["workloads"][family]
    weights = load_tensors(w["weightsPath"])[0]
    inputs = load_tensors(w["inputsPath"])[0]
    labels = load_tensors(w["labelsPath"])[0]["labels"]
    full = {**made["recipe"], **recipe}
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        trainer = build_trainer(TrainRequest(family, w["params"], BATCH, weights, None, "cpu", mode, 1, recipe=full, reference=reference))
        feed = trainer.prepare(inputs, labels)
        loss, grads = trainer.step(feed, True)
        after_first = trainer.state()
        losses = [loss] + [trainer.step(feed, False)[0] for _ in range(full["paritySteps"] - 1)]
        after_last = trainer.state()
    finally:
        torch.use_deterministic_algorithms(deterministic)  # the reference sets it for its process
    return SimpleNamespace(
        losses=np.array(losses),
        grads=grads,
        step1=after_first,
        stepK=after_last,
        initial={k: np.asarray(v, np.float64) for k, v in weights.items()},
        inputs=inputs,
        trainer=trainer,
    )


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def whole(tensors, names):
    return np.concatenate([np.ravel(np.asarray(tensors[n], np.float64)) for n in names])


def update(run):
    return {n: run.step1[n] - run.initial[n] for n in run.step1}


def compare(run, ref):
    """Relative L2 figures of `run` against the reference: losses, gradients (all together and the
    worst tensor, its error floored at 1e-4 of the whole gradient's norm: some are zero by
    symmetry, such as attention's key bias), update after step 1 (together, worst tensor), state
    after the last step (worst tensor)."""
    names = list(ref.grads)
    assert set(run.grads) == set(names) and set(run.step1) == set(ref.step1) == set(run.stepK)
    scale = np.linalg.norm(whole(ref.grads, names))
    u, uref = update(run), update(ref)
    return {
        "loss": rel(run.losses, ref.losses),
        "grad": rel(whole(run.grads, names), whole(ref.grads, names)),
        "gradWorst": max(np.linalg.norm(run.grads[n] - ref.grads[n]) / (np.linalg.norm(ref.grads[n]) + 1e-4 * scale) for n in names),
        "update": rel(whole(u, list(uref)), whole(uref, list(uref))),
        "updateWorst": max(rel(u[n], uref[n]) for n in uref),
        "stepKWorst": max(rel(run.stepK[n], ref.stepK[n]) for n in ref.stepK),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_fp32_trains_like_the_float64_reference_and_a_wrong_weight_decay_shows(made, family):
    ref = train(made, family, reference="torch")
    fp32 = train(made, family)
    good = compare(fp32, ref)
    wrong = compare(train(made, family, weightDecay=0.0), ref)
    print(f"\n{family} eager vs float64: {json.dumps(good)}\n{family} weightDecay=0 vs float64: {json.dumps(wrong)}")
    assert good["loss"] < 1e-5 and good["grad"] < 1e-5 and good["gradWorst"] < 1e-4
    assert good["update"] < 1e-3 and good["updateWorst"] < 1e-2 and good["stepKWorst"] < 1e-5
    assert wrong["update"] > 30 * good["update"] and wrong["updateWorst"] > 10 * good["updateWorst"] and wrong["stepKWorst"] > 10 * good["stepKWorst"]
    # The state names are the canonical ones, every one of them, and BatchNorm's counter is not state.
    assert set(ref.step1) == set(ref.initial)
    assert all(ref.step1[n].dtype == np.float64 and ref.step1[n].shape == ref.initial[n].shape for n in ref.initial)
    assert all(ref.grads[n].dtype == np.float64 for n in ref.grads)
    assert all(a.dtype == np.float32 for a in [*fp32.grads.values(), *fp32.step1.values()])


def test_compile_trains_like_eager(made):
    ref = train(made, "transformer", reference="torch")
    compiled = train(made, "transformer", mode="compile")
    eager = train(made, "transformer")
    vs_ref, vs_eager = compare(compiled, ref), compare(compiled, eager)
    print(f"\ntransformer compile vs float64: {json.dumps(vs_ref)}\ntransformer compile vs eager: {json.dumps(vs_eager)}")
    assert vs_ref["loss"] < 1e-5 and vs_ref["grad"] < 1e-5 and vs_ref["gradWorst"] < 1e-4
    assert vs_ref["update"] < 1e-3 and vs_ref["updateWorst"] < 1e-2 and vs_ref["stepKWorst"] < 1e-5
    assert vs_eager["loss"] < 1e-5 and vs_eager["grad"] < 1e-5 and vs_eager["stepKWorst"] < 1e-5


def test_torchscript_and_unknown_modes_and_references_are_refused(made):
    w = made["workloads"]["rnn"]
    weights = load_tensors(w["weightsPath"])[0]

    def build(mode="eager", reference=None):
        return build_trainer(TrainRequest("rnn", w["params"], BATCH, weights, None, "cpu", mode, 1, recipe=made["recipe"], reference=reference))

    with pytest.raises(ValueError, match="torchscript' cannot train"):
        build("torchscript")
    with pytest.raises(ValueError, match="unknown training mode 'fast'"):
        build("fast")
    with pytest.raises(ValueError, match="unknown reference 'jax'"):
        build(reference="jax")
    with pytest.raises(ValueError, match="float64 reference trains eagerly"):
        build("compile", reference="torch")


def test_keras_reference_rnn_merges_the_biases_into_one_that_trains(made):
    torch_ref = train(made, "rnn", reference="torch")
    keras_ref = train(made, "rnn", reference="keras")
    lr, wd = made["recipe"]["learningRate"], made["recipe"]["weightDecay"]
    merged = keras_ref.initial["lstm.0.bias_ih"] + keras_ref.initial["lstm.0.bias_hh"]
    for tensors in (keras_ref.grads, keras_ref.step1, keras_ref.stepK):
        assert tensors["lstm.0.bias_hh"].shape == merged.shape and not tensors["lstm.0.bias_hh"].any()
    # The forward pass is unchanged, so is the first loss and every gradient: bias_ih's is Keras' bias'.
    np.testing.assert_allclose(keras_ref.losses[0], torch_ref.losses[0], rtol=1e-13)
    for name, g in torch_ref.grads.items():
        if name != "lstm.0.bias_hh":
            np.testing.assert_allclose(keras_ref.grads[name], g, rtol=1e-12, atol=1e-18)
    g = keras_ref.grads["lstm.0.bias_ih"]
    np.testing.assert_allclose(keras_ref.step1["lstm.0.bias_ih"], merged - lr * (g + wd * merged), rtol=1e-13, atol=1e-16)
    assert rel(keras_ref.stepK["lstm.0.bias_ih"], keras_ref.step1["lstm.0.bias_ih"]) > 1e-6
    # Later losses differ from the torch parametrisation's: one bias decays where two did.
    assert keras_ref.losses[1] != torch_ref.losses[1]


def conv2d(x, w, stride, pad):
    """NCHW convolution (no bias) in numpy float64."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, w)


def test_keras_reference_cnn_updates_the_running_variance_with_the_biased_batch_variance(made):
    torch_ref = train(made, "cnn", reference="torch")
    keras_ref = train(made, "cnn", reference="keras")
    m = made["recipe"]["batchNormMomentum"]
    # Independently, in numpy, for the stem's BatchNorm: its input is conv1 of the images.
    stem = conv2d(np.asarray(keras_ref.inputs["images"], np.float64), keras_ref.initial["conv1.weight"], 2, 3)
    n = stem.shape[0] * stem.shape[2] * stem.shape[3]
    biased = stem.var(axis=(0, 2, 3))
    old = keras_ref.initial["bn1.running_var"]
    np.testing.assert_allclose(keras_ref.step1["bn1.running_var"], (1 - m) * old + m * biased, rtol=1e-12)
    np.testing.assert_allclose(torch_ref.step1["bn1.running_var"], (1 - m) * old + m * biased * n / (n - 1), rtol=1e-12)
    # Every BatchNorm: the first step's forward pass is the same in both, so the torch reference's
    # update gives each layer's unbiased batch variance; Keras' update uses its biased form.
    sizes = {}
    shapes = cnn.model(made["workloads"]["cnn"]["params"])
    for name, bn in shapes.named_modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.register_forward_pre_hook(lambda module, args, name=name: sizes.__setitem__(name, args[0][:, 0].numel()))
    with torch.no_grad():
        shapes(torch.from_numpy(np.array(keras_ref.inputs["images"])))
    assert len(sizes) == sum(1 for n in keras_ref.initial if n.endswith("running_var")) > 10
    for layer, n in sizes.items():
        name, old = f"{layer}.running_var", keras_ref.initial[f"{layer}.running_var"]
        unbiased = (torch_ref.step1[name] - (1 - m) * old) / m
        np.testing.assert_allclose(keras_ref.step1[name], (1 - m) * old + m * unbiased * (n - 1) / n, rtol=1e-10, err_msg=name)
    # Nothing else differs after a step: the running variance is not read by a training forward pass.
    for name in keras_ref.step1:
        if not name.endswith("running_var"):
            np.testing.assert_allclose(keras_ref.step1[name], torch_ref.step1[name], rtol=1e-12, atol=1e-15)


def test_the_runner_trains_a_cell_message_for_message(made, tmp_path):
    node = subprocess.run(["node", str(REPO / "bin" / "fwbench.js"), "schema", "--out", str(tmp_path / "schema")], capture_output=True, text=True, check=True)
    assert node.returncode == 0
    to_worker, from_worker = validators(tmp_path / "schema" / "protocol.schema.json")
    w = made["workloads"]["rnn"]
    job = {
        "type": "job",
        "protocol": 1,
        "cell": {**CELL, "params": w["params"]},
        "weightsPath": w["weightsPath"],
        "inputsPath": w["inputsPath"],
        "measure": MEASURE,
        "training": {**made["recipe"], "labelsPath": w["labelsPath"], "parityPath": str(tmp_path / "parity.safetensors")},
    }
    incoming = [job, {"type": "continue"}]
    for msg in incoming:
        to_worker.validate(msg)
    sent = []

    def send(msg):
        from_worker.validate(msg)
        sent.append(msg)

    channel = SimpleNamespace(receive=lambda: incoming.pop(0), send=send, sock=SimpleNamespace(sendall=lambda b: None))
    runner.Worker(channel).run()
    kinds = [m["type"] if m["type"] != "phase" else m["phase"] for m in sent]
    assert kinds == ["hello", "load", "build", "built", "parity", "train-parity", "warmup", "measure", "samples", "memory", "memory"]
    built = next(m for m in sent if m["type"] == "built")
    assert set(built["phases"]) == {"importMs", "weightsMs", "buildMs"} and built["settings"]["task"] == "training"
    parity = next(m for m in sent if m["type"] == "train-parity")
    ref = train(made, "rnn", reference="torch")
    assert rel(parity["losses"], ref.losses) < 1e-5 and parity["firstStepMs"] > 0
    tensors, meta = load_tensors(job["training"]["parityPath"])
    assert meta == {"engine": "torch", "mode": "eager", "family": "rnn", "steps": "3"}
    # Every parity step's gradients and the state after it (harness/worker/protocol.ts TRAIN_PARITY_TENSORS).
    assert set(tensors) == {f"{p}{k}/{n}" for k in (1, 2, 3) for p, names in (("grad", ref.grads), ("step", ref.step1)) for n in names}
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert rel(tensors["step3/fc.weight"], ref.stepK["fc.weight"]) < 1e-5
    assert len(next(m for m in sent if m["type"] == "samples")["samplesNs"]) == 3


def test_a_training_job_for_an_engine_without_a_trainer_names_it(made, monkeypatch):
    monkeypatch.setattr(runner, "load_engine", lambda engine_id: SimpleNamespace())
    w = made["workloads"]["rnn"]
    job = {
        "type": "job",
        "cell": {**CELL, "params": w["params"]},
        "weightsPath": w["weightsPath"],
        "inputsPath": w["inputsPath"],
        "training": {"labelsPath": w["labelsPath"]},
    }
    channel = SimpleNamespace(receive=lambda: job, send=lambda msg: None, sock=SimpleNamespace(sendall=lambda b: None))
    with pytest.raises(ValueError, match="engine 'torch' cannot train"):
        runner.Worker(channel).run()

"""The TensorFlow engine's trainer (fwbench_runner/tensorflow/train.py) on the files a training cell
reads, written by the harness's own compiled code (training_files.mjs: canonical weights, inputs,
Keras-layout weights, seeded labels, the TRAINING recipe):

1. an eager step against an independent float64 computation of the same step in PyTorch (the
   torch engine's model of the family on the canonical weights, torch.optim.SGD with momentum and
   weight_decay, F.cross_entropy): loss, gradients and weight update, compared in Keras layout;
2. tf.function and XLA give eager's losses and gradients;
3. state() and the gradients carry the Keras-layout file's names and shapes, and state() right
   after build is that file exactly (file_weights inverts layer_weights).

Tiny presets, batch 4; the rnn and transformer get two layers, so the file's order (per encoder
layer) and the model's layer order (per layer kind) differ and stacking is covered."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")

from fwbench_runner import tensorflow as tf_engine  # noqa: E402
from fwbench_runner import torch as torch_engine  # noqa: E402
from fwbench_runner.engine import TrainRequest  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 4
CELLS = [
    {"family": "cnn", "preset": "tiny", "seed": 0, "batch": BATCH},
    {"family": "rnn", "preset": "tiny", "set": {"layers": 2}, "seed": 0, "batch": BATCH},
    {"family": "transformer", "preset": "tiny", "set": {"layers": 2}, "seed": 0, "batch": BATCH},
]
FAMILIES = [c["family"] for c in CELLS]
#: Bounds on relative L2 errors of TensorFlow float32 against the float64 reference (measured on
#: these cells: loss <= 1.4e-7, gradients <= 2.1e-6).
LOSS_BOUND = 1e-4
GRAD_BOUND = 1e-4
#: Weight updates (after - before) are bounded by what storing the weights in float32 costs them
#: (measured 5e-7 .. 9e-4 of the update, the weights being ~1e2..1e5 times the step) plus this.
#: Tight enough to fail without the coupled weight decay (cnn: 8e-5 at step 1), with Keras'
#: decoupled one instead (cnn: 1.1e-4 after step 3) or with Keras' default BatchNorm momentum.
UPDATE_EXCESS = 1e-5


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """{family: the cell's params, recipe and loaded files}."""
    if not (REPO / "dist" / "workloads" / "training.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the orchestrator's code can write the training files")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "training_files.mjs"), json.dumps(CELLS)], env=env, capture_output=True, text=True, check=True)
    loaded = {}
    for line in out.stdout.splitlines():
        cell = json.loads(line)
        for key in ("weights", "inputs", "nativeWeights", "labels"):
            cell[key] = load_tensors(cell.pop(f"{key}Path"))[0]
        cell["labels"] = cell["labels"]["labels"]
        loaded[cell["family"]] = cell
    return loaded


def trainer(cell, mode):
    req = TrainRequest(cell["family"], cell["params"], BATCH, cell["weights"], cell["nativeWeights"], "cpu", mode, 1, recipe=dict(cell["recipe"]))
    return tf_engine.build_trainer(req)


def run_tf(cell, mode, steps):
    """Losses of `steps` steps (the first with gradients, as a parity run), the gradients, and the state before and after the first step."""
    t = trainer(cell, mode)
    before = t.state()
    feed = t.prepare(cell["inputs"], cell["labels"])
    with t.session():
        loss, grads = t.step(feed, True)
        after = t.state()
        losses = [loss] + [t.step(feed, False)[0] for _ in range(steps - 1)]
    return {"losses": losses, "grads": grads, "before": before, "after": after, "last": t.state(), "trainer": t}


# --- the float64 reference ------------------------------------------------------------------------


def keras_layout(model, family, tensors):
    """{torch name: tensor} -> {`<keras layer>/<index>`: float64 ndarray}: the per-layer-kind mapping of
    harness/engines/keras-layout.ts written out again (test_the_reference_mapping_reproduces_the_file
    checks it against the file the orchestrator wrote). Expects an rnn's biases merged into bias_ih."""
    modules = dict(model.named_modules())
    out = {}
    for name, t in tensors.items():
        a = t.detach().cpu().numpy().astype(np.float64)
        prefix, leaf = name.rsplit(".", 1)
        layer = prefix.replace(".", "_")
        if family == "rnn" and prefix == "lstm":
            kind, l = leaf.rsplit("_l", 1)
            index = {"weight_ih": 0, "weight_hh": 1, "bias_ih": 2}.get(kind)
            if index is not None:
                out[f"lstm_{l}/{index}"] = a.T if index < 2 else a
            continue
        module = modules[prefix]
        if leaf == "num_batches_tracked":
            continue
        index = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}[leaf]
        if leaf == "weight" and isinstance(module, torch.nn.Conv2d):
            a = a.transpose(2, 3, 1, 0)
        elif leaf == "weight" and isinstance(module, torch.nn.Linear):
            a = a.T
        out[f"{layer}/{index}"] = a
    return out


def torch_model(cell):
    """The torch engine's model of the family on the canonical weights, in the Keras parametrisation
    (an LSTM's two biases merged into bias_ih, bias_hh frozen at zero), float32."""
    family, p = cell["family"], cell["params"]
    model = torch_engine.FAMILIES[family].model(p)
    torch_engine.load_canonical(model, family, cell["weights"])
    if family == "rnn":
        with torch.no_grad():
            for l in range(p["layers"]):
                getattr(model.lstm, f"bias_ih_l{l}").add_(getattr(model.lstm, f"bias_hh_l{l}"))
                getattr(model.lstm, f"bias_hh_l{l}").zero_().requires_grad_(False)
    return model


def torch_reference(cell, steps):
    """`steps` SGD steps in float64 with the recipe; the loss of each, the first step's gradients, the
    state before and after it, and each BatchNorm's biased batch variance at the first step (Keras
    updates the moving variance with it; PyTorch with the unbiased one), all in Keras layout."""
    recipe = cell["recipe"]
    model = torch_model(cell).double().train()
    batch_var = {}

    def record(name):
        def hook(module, inputs, output):
            if name not in batch_var:
                batch_var[name] = inputs[0].detach().var(dim=(0, 2, 3), unbiased=False)

        return hook

    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = recipe["batchNormMomentum"]
            m.register_forward_hook(record(name))
    opt = torch.optim.SGD(
        [q for q in model.parameters() if q.requires_grad], lr=recipe["learningRate"], momentum=recipe["momentum"], weight_decay=recipe["weightDecay"]
    )
    inputs = cell["inputs"]
    x = torch.tensor(inputs["images"], dtype=torch.float64) if "images" in inputs else torch.tensor(inputs["tokens"], dtype=torch.int64)
    y = torch.tensor(cell["labels"], dtype=torch.int64)
    snapshot = lambda: keras_layout(model, cell["family"], {k: v.clone() for k, v in model.state_dict().items()})  # noqa: E731
    before = snapshot()
    losses = []
    for s in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if s == 0:
            grads = keras_layout(model, cell["family"], {n: q.grad for n, q in model.named_parameters() if q.grad is not None})
        opt.step()
        losses.append(loss.item())
        if s == 0:
            after = snapshot()
    # The moving variance Keras computes: momentum-weighted toward the biased batch variance.
    m = recipe["batchNormMomentum"]
    keras_var = {f"{name.replace('.', '_')}/3": (1 - m) * before[f"{name.replace('.', '_')}/3"] + m * v.numpy() for name, v in batch_var.items()}
    # Later steps' moving variances are not compared (the biased correction is made for the first).
    last = {n: a for n, a in snapshot().items() if not (cell["family"] == "cnn" and n.endswith("/3"))}
    return {"losses": losses, "grads": grads, "before": before, "after": {**after, **keras_var}, "last": last}


def rel(a, b):
    """Relative L2 error of `a` against the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def rel_all(got, want):
    """(relative L2 error over all tensors together, the worst tensor's name and its error). The
    worst is sought among tensors whose reference is not ~0 next to the rest (an attention key
    bias' gradient is zero in exact arithmetic: softmax ignores a shift shared by a query's scores)."""
    names = list(want)
    flat = np.concatenate([np.ravel(want[n]) for n in names])
    total = rel(np.concatenate([np.ravel(got[n]) for n in names]), flat)
    scale = np.linalg.norm(flat)
    worst = max((n for n in names if np.linalg.norm(want[n]) > 1e-6 * scale), key=lambda n: rel(got[n], want[n]))
    return total, worst, rel(got[worst], want[worst])


# --- tests ----------------------------------------------------------------------------------------


def test_the_reference_mapping_reproduces_the_file_the_orchestrator_wrote(cells):
    for family in FAMILIES:
        cell = cells[family]
        model = torch_model(cell)
        mapped = keras_layout(model, family, model.state_dict())
        native = cell["nativeWeights"]
        assert set(mapped) == set(native), family
        for name, a in native.items():
            assert mapped[name].shape == a.shape and np.array_equal(mapped[name].astype(np.float32), a), (family, name)


def update_errors(got, want, key, before):
    """(relative L2 error of TensorFlow's update `got[key] - before` against the reference's, and the
    same error of the reference's own update once its weights are stored in float32: the floor
    float32 storage alone sets, the weights being ~1e2..1e5 times the step)."""
    names = list(want[key])
    delta = lambda after: {n: np.asarray(after[n], np.float64) - np.asarray(before[n], np.float64) for n in names}  # noqa: E731
    reference = delta(want[key])
    return rel_all(delta(got[key]), reference), rel_all(delta({n: np.float32(want[key][n]) for n in names}), reference)


@pytest.mark.parametrize("family", FAMILIES)
def test_an_eager_step_matches_a_float64_pytorch_step_in_loss_gradients_and_update(cells, family):
    cell = cells[family]
    steps = cell["recipe"]["paritySteps"]
    got, want = run_tf(cell, "eager", steps), torch_reference(cell, steps)
    losses = [rel(g, w) for g, w in zip(got["losses"], want["losses"], strict=True)]
    assert set(got["grads"]) == set(want["grads"])
    grads = rel_all(got["grads"], want["grads"])
    assert set(got["after"]) == set(want["after"])
    first, first_floor = update_errors(got, want, "after", want["before"])
    # After the last step (momentum, and the decay inside it, at work).
    last, last_floor = update_errors(got, want, "last", want["before"])
    print(
        f"\n{family}: loss rel err per step {' '.join(f'{e:.1e}' for e in losses)}; gradients {grads[0]:.1e} (worst {grads[1]} {grads[2]:.1e});"
        f" update after step 1 {first[0]:.1e} (float32 storage alone {first_floor[0]:.1e}; worst {first[1]} {first[2]:.1e}),"
        f" after step {steps} {last[0]:.1e} (float32 storage alone {last_floor[0]:.1e})"
    )
    assert losses[0] < LOSS_BOUND
    # Later steps compound the first's float32 error; still far below what a wrong recipe gives.
    assert max(losses) < 10 * LOSS_BOUND
    assert grads[0] < GRAD_BOUND
    # Beyond float32 storage, an update's error is the gradients' (the first step's update is the rate
    # times gradient plus decay). The last step's floor rounds the reference once, TensorFlow rounds
    # at every step: measured 1.6 .. 2.5 times that floor.
    assert first[0] < 2 * first_floor[0] + UPDATE_EXCESS
    assert last[0] < 4 * last_floor[0] + UPDATE_EXCESS


@pytest.mark.parametrize("family", FAMILIES)
def test_tf_function_gives_eager_losses_and_gradients(cells, family):
    compare_modes(cells[family], "function")


def test_xla_gives_eager_losses_and_gradients(cells):
    # XLA compiles each of the two step variants on its first call: seconds on two cores, so one family.
    compare_modes(cells["rnn"], "xla")


def compare_modes(cell, mode):
    steps = cell["recipe"]["paritySteps"]
    eager, other = run_tf(cell, "eager", steps), run_tf(cell, mode, steps)
    assert other["trainer"].settings["mode"] == mode and other["trainer"].settings["jitCompile"] == (mode == "xla")
    errors = [rel(o, e) for o, e in zip(other["losses"], eager["losses"], strict=True)]
    grads = rel_all(other["grads"], eager["grads"])
    print(f"\n{cell['family']} {mode} vs eager: losses {' '.join(f'{e:.1e}' for e in errors)}, gradients {grads[0]:.1e}")
    assert max(errors) < 1e-5
    assert grads[0] < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_state_and_gradients_carry_the_keras_layout_files_names_and_shapes(cells, family):
    cell = cells[family]
    native = cell["nativeWeights"]
    t = trainer(cell, "eager")
    state = t.state()
    # The file exactly, in its order: file_weights inverts layer_weights.
    assert list(state) == list(native)
    for name, a in native.items():
        assert state[name].shape == a.shape and state[name].dtype == np.float32 and np.array_equal(state[name], a), name
    with t.session():
        _, grads = t.step(t.prepare(cell["inputs"], cell["labels"]), True)
    trainable = [n for n in native if not (family == "cnn" and n.endswith(("/2", "/3")))]
    assert list(grads) == trainable
    assert all(grads[n].shape == native[n].shape for n in trainable)
    assert set(t.state()) == set(native)
    settings = t.settings
    assert settings["gradients"] == "tf.GradientTape" and "SGD" in settings["optimizer"] and "SparseCategoricalCrossentropy" in settings["loss"]


def test_transformer_file_weights_inverts_layer_weights(cells):
    cell = cells["transformer"]
    p = cell["params"]
    family = tf_engine.FAMILIES["transformer"]
    model = tf_engine.build_model(family, p, BATCH, cell["nativeWeights"])
    layers = {layer.name: {i: v.numpy() for i, v in enumerate(layer.weights)} for layer in model.layers if layer.weights}
    back = family.file_weights(layers, p)
    assert set(back) == set(cell["nativeWeights"])
    for name, a in cell["nativeWeights"].items():
        assert back[name].shape == a.shape and np.array_equal(back[name], a), name

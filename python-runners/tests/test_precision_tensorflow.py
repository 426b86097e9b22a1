"""The TensorFlow engine's precisions (BuildRequest.precision; workloads/precision.ts), on real
TensorFlow with the weights and inputs the harness's own compiled code writes (training_files.mjs),
tiny presets, batch 8.

1. bf16 (Keras 'mixed_bfloat16' per model) in every mode its declaration allows, on every family:
   the observed evidence shows bfloat16 (matrix layers, the pre-cast logits of the real forward
   pass, the traced graph's products), the logits leave as float32, and they differ from fp32 by
   about bf16's rounding (measured and printed), within the bf16 gate, with the fp32 argmax.
2. A planted fallback (plant_precision_fallback: built without the policy) is seen as fp32.
3. The declaration's xla exclusion is what XLA does: its CPU compiler multiplies a bf16 model in f32.
4. Precisions the declaration does not allow are refused in one line; the policy does not leak.
5. CUDA: fp16, tf32 and fp32-with-TF32-off run only where TensorFlow sees a GPU (skipped here)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402
from test_protocol import FROM_WORKER, converse, jobs  # noqa: E402, F401

from fwbench_runner import tensorflow as tf_engine  # noqa: E402
from fwbench_runner.engine import BuildRequest  # noqa: E402
from fwbench_runner.manifest import ENGINES, MANIFEST_PATH, precision_problem  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402
from fwbench_runner.tensorflow import precision as precisions  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 8
SEED = 0
FAMILIES = ["cnn", "rnn", "transformer"]
DECLARED = ENGINES["tensorflow"]["precisions"]
#: The gates of workloads/precision.ts (relL2Tolerance, minArgmaxAgreement), from the manifest.
GATES = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["precision"]
BF16_MODES = DECLARED["bf16"]["modes"]
#: fp32 against itself in another mode is ~3e-7; a model that really computed in bf16 (8-bit
#: mantissa, unit roundoff 2^-8 = 3.9e-3) is orders of magnitude further away.
BF16_AT_LEAST = 1e-4
GPU = bool(tf.config.list_physical_devices("GPU"))
NO_GPU = "TensorFlow sees no GPU here (CPU-only build or no NVIDIA device): the CUDA precisions fp16 and tf32 run only on one"


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """{family: params, canonical and Keras-layout weights, inputs} as the harness writes them."""
    if not (REPO / "dist" / "workloads" / "training.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can write the files")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    spec = [{"family": f, "preset": "tiny", "seed": SEED, "batch": BATCH} for f in FAMILIES]
    out = subprocess.run(["node", str(RUNNERS / "tests" / "training_files.mjs"), json.dumps(spec)], env=env, capture_output=True, text=True, check=True)
    loaded = {}
    for line in out.stdout.splitlines():
        cell = json.loads(line)
        weights, native, inputs = (load_tensors(cell[key])[0] for key in ("weightsPath", "nativeWeightsPath", "inputsPath"))
        loaded[cell["family"]] = {"params": cell["params"], "weights": weights, "native": native, "inputs": inputs}
    return loaded


def request(cell, family, mode, precision="fp32", device="cpu", **kw):
    return BuildRequest(family, cell["params"], BATCH, cell["weights"], cell["native"], device, mode, 1, precision=precision, **kw)


def run(model, inputs):
    """The runner's order: prepare, compile (traced modes), the parity run, then precision_used."""
    feed = model.prepare(inputs)
    with model.session():
        if model.compiles:
            model.compile(feed)
        out = model.run(feed)
    return out, model.precision_used()


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def agreement(a, b):
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_computes_in_bfloat16_in_every_declared_mode_and_stays_within_the_gate(cells, family):
    cell = cells[family]
    gate = GATES["bf16"]
    report = []
    for mode in BF16_MODES:
        want, fp32_used = run(tf_engine.build(request(cell, family, mode)), cell["inputs"])
        model = tf_engine.build(request(cell, family, mode, "bf16"))
        got, used = run(model, cell["inputs"])
        assert used["used"] == "bf16", used
        evidence = used["evidence"]
        assert "compute dtype" in evidence and "variables" in evidence and "float32" in evidence.split("variables")[1]
        assert "logits bfloat16 before the float32 cast (float32 after)" in evidence, evidence
        if mode != "eager":
            assert "traced graph: MatMul/Einsum/Conv2D ops" in evidence and "float32" not in evidence.split("traced graph")[1], evidence
        assert got.dtype == np.float32 and got.shape == want.shape
        assert fp32_used["used"] == "fp32" and "bfloat16" not in fp32_used["evidence"]
        assert model.settings["dtypePolicy"] == "mixed_bfloat16" and model.settings["precision"] == "bf16"
        error, agree = rel(got, want), agreement(got, want)
        report.append(f"{mode} relL2 {error:.2e} argmax {agree:.2f}")
        assert BF16_AT_LEAST < error < gate["relL2Tolerance"], (mode, error)
        assert agree >= gate["minArgmaxAgreement"], (mode, agree)
    print(f"\n{family} tiny batch {BATCH}, bf16 vs fp32 (same mode): " + "; ".join(report))
    print(f"{family} evidence: {used['evidence']}")


def test_a_planted_fallback_builds_fp32_and_is_seen_as_fp32(cells):
    cell = cells["transformer"]
    want, _ = run(tf_engine.build(request(cell, "transformer", "function")), cell["inputs"])
    model = tf_engine.build(request(cell, "transformer", "function", "bf16", plant_precision_fallback=True))
    got, used = run(model, cell["inputs"])
    print(f"\nplanted fallback, asked bf16: {used}")
    assert used["used"] == "fp32"
    assert "bfloat16" not in used["evidence"] and "logits float32 (no cast layer)" in used["evidence"]
    # It really is the fp32 model: the fp32 logits, not bf16's.
    assert rel(got, want) < 1e-6


def test_observing_the_precision_traces_nothing_again(cells):
    cell = cells["rnn"]
    for mode in ("function", "function-relaxed", "xla"):
        precision = "fp32" if mode == "xla" else "bf16"
        model = tf_engine.build(request(cell, "rnn", mode, precision))
        run(model, cell["inputs"])
        assert model.compile_count() == 1, mode
        if mode == "xla":
            assert "XLA optimized HLO: matrix products" in model.precision_used()["evidence"]


def test_xla_on_cpu_multiplies_a_bf16_model_in_f32_which_is_why_the_declaration_excludes_it(cells):
    """The declaration's reason, shown: the same mixed_bfloat16 model under tf.function(jit_compile=True)
    traces bfloat16 products, but XLA's optimized HLO multiplies in f32; observing it refuses to call that bf16."""
    cell, family = cells["transformer"], "transformer"
    assert "xla" not in BF16_MODES and "XLA's CPU compiler" in DECLARED["bf16"]["limits"]
    model = tf_engine.build_model(tf_engine.FAMILIES[family], cell["params"], BATCH, cell["native"], dtype="mixed_bfloat16")
    fn = tf.function(lambda x: model(x, training=False), jit_compile=True)
    x = tf.constant(cell["inputs"]["tokens"])
    fn(x)
    graph = precisions.graph_matrix_dtypes(fn.get_concrete_function(x))
    products = precisions.hlo_product_dtypes(fn.experimental_get_compiler_ir(x)(stage="optimized_hlo"))
    print(f"\nxla, mixed_bfloat16 transformer on the CPU: traced graph {dict(graph)}, optimized HLO {dict(products)}")
    assert set(graph) == {"bfloat16"} and set(products) == {"float32"}
    with pytest.raises(RuntimeError, match="does not compute in one precision.*XLA optimized HLO: matrix products .* float32"):
        precisions.observe(model, "float32", "cpu", fn.get_concrete_function(x), fn.experimental_get_compiler_ir(x)(stage="optimized_hlo"))


def test_a_precision_the_declaration_does_not_allow_is_refused_in_one_line(cells):
    cell = cells["rnn"]

    def refused(precision, mode="function", device="cpu"):
        with pytest.raises(ValueError) as e:
            tf_engine.build(request(cell, "rnn", mode, precision, device))
        assert "\n" not in str(e.value)
        return str(e.value)

    assert refused("fp8") == "tensorflow cannot run fp8 for rnn in mode function on cpu: unknown precision 'fp8'; valid: fp32, bf16, fp16, tf32, int8"
    assert refused("fp16") == f"tensorflow cannot run fp16 for rnn in mode function on cpu: it runs fp16 on cuda only: {DECLARED['fp16']['limits']}"
    assert refused("tf32").startswith("tensorflow cannot run tf32 for rnn in mode function on cpu: it runs tf32 on cuda only: ")
    assert refused("int8") == f"tensorflow cannot run int8 for rnn in mode function on cpu: {DECLARED['int8']}"
    only = f"its bf16 works in modes {', '.join(BF16_MODES)} only: {DECLARED['bf16']['limits']}"
    assert refused("bf16", mode="xla") == f"tensorflow cannot run bf16 for rnn in mode xla on cpu: {only}"
    assert precision_problem("tensorflow", "bf16", "cpu", "rnn", "function") is None
    assert precision_problem("tensorflow", "fp32", "cuda", "cnn", "xla") is None


def test_the_policy_is_the_models_own_and_does_not_leak(cells):
    cell = cells["cnn"]
    bf16 = tf_engine.build(request(cell, "cnn", "eager", "bf16"))
    assert keras.config.dtype_policy().name == "float32"
    fp32 = tf_engine.build(request(cell, "cnn", "eager"))
    assert {layer.compute_dtype for layer in precisions.matrix_layers(fp32.model)} == {"float32"}
    assert {layer.compute_dtype for layer in precisions.matrix_layers(bf16.model)} == {"bfloat16"}
    # The last layer is the float32 cast; the variables stay float32.
    assert isinstance(bf16.model.layers[-1], precisions.Float32Logits)
    assert {v.dtype for v in bf16.model.weights} == {"float32"}


def test_a_bf16_stream_cell_masks_its_padding_in_bfloat16(cells):
    cell = cells["transformer"]
    tokens = cell["inputs"]["tokens"]
    lengths = np.array([tokens.shape[1], 3, 5, 2, tokens.shape[1], 4, 6, 1], dtype=np.int32)
    model = tf_engine.build(request(cell, "transformer", "function-signature", "bf16", stream=True))
    got, used = run(model, {"tokens": tokens, "lengths": lengths})
    assert used["used"] == "bf16" and got.shape == (BATCH, cell["params"]["classes"])
    # The fully real rows equal the fixed-shape bf16 model's (same kernels, the mask all true).
    fixed, _ = run(tf_engine.build(request(cell, "transformer", "function", "bf16")), cell["inputs"])
    full = lengths == tokens.shape[1]
    assert rel(got[full], fixed[full]) < 2e-2


def test_tf32_is_called_tf32_only_when_read_back_on_and_the_gpu_has_it_with_a_faked_gpu(cells, monkeypatch):
    """No GPU here: the CUDA branch of `observe` with a faked compute capability (the fake is only
    gpu_capability; TF32's setting is TensorFlow's own, set and read back)."""
    model = tf_engine.build(request(cells["rnn"], "rnn", "eager"))
    run(model, cells["rnn"]["inputs"])
    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        for capability, on, used in (((8, 0), True, "tf32"), ((8, 0), False, "fp32"), ((7, 0), True, "fp32")):
            monkeypatch.setattr(precisions, "gpu_capability", lambda capability=capability: capability)
            tf.config.experimental.enable_tensor_float_32_execution(on)
            seen = precisions.observe(model.model, "float32", "cuda")
            assert seen["used"] == used and f"TF32 execution {'enabled' if on else 'disabled'} (read back)" in seen["evidence"]
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(enabled)


def test_a_bf16_job_through_the_runner_reports_what_it_observed(jobs):  # noqa: F811
    job = jobs["tensorflow", "function", "rnn"]
    job = {**job, "cell": {**job["cell"], "precision": "bf16"}}
    msgs, code = converse(job, [{"type": "stop"}])
    assert code == 0, msgs[-1]
    for m in msgs:
        FROM_WORKER.validate(m)
    built = next(m for m in msgs if m["type"] == "built")
    parity = [m for m in msgs if m["type"] == "parity" and "values" in m]
    assert built["settings"]["precisionMechanism"] == DECLARED["bf16"]["mechanism"]
    assert parity and parity[0]["precision"]["used"] == "bf16" and "bfloat16" in parity[0]["precision"]["evidence"]


@pytest.mark.skipif(not GPU, reason=NO_GPU)
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_fp16_computes_in_float16_within_the_gate(cells, family):
    cell = cells[family]
    want, fp32_used = run(tf_engine.build(request(cell, family, "function", device="cuda")), cell["inputs"])
    assert fp32_used["used"] == "fp32" and "TF32 execution disabled (read back)" in fp32_used["evidence"]
    got, used = run(tf_engine.build(request(cell, family, "function", "fp16", "cuda")), cell["inputs"])
    print(f"\n{family} cuda fp16: relL2 {rel(got, want):.2e} argmax {agreement(got, want):.2f}; {used['evidence']}")
    assert used["used"] == "fp16" and "logits float16 before the float32 cast" in used["evidence"]
    assert rel(got, want) < GATES["fp16"]["relL2Tolerance"] and agreement(got, want) >= GATES["fp16"]["minArgmaxAgreement"]


@pytest.mark.skipif(not GPU, reason=NO_GPU)
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_tf32_turns_tf32_on_and_fp32_and_a_planted_fallback_turn_it_off(cells, family):
    cell = cells[family]
    if precisions.gpu_capability() < precisions.TF32_MIN_CAPABILITY:
        pytest.skip(f"this GPU (compute capability {precisions.gpu_capability()}) has no TF32")
    want, _ = run(tf_engine.build(request(cell, family, "function", device="cuda")), cell["inputs"])
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    got, used = run(tf_engine.build(request(cell, family, "function", "tf32", "cuda")), cell["inputs"])
    print(f"\n{family} cuda tf32: relL2 {rel(got, want):.2e}; {used['evidence']}")
    assert used["used"] == "tf32" and "TF32 execution enabled (read back)" in used["evidence"]
    assert rel(got, want) < GATES["tf32"]["relL2Tolerance"]
    _, planted = run(tf_engine.build(request(cell, family, "function", "tf32", "cuda", plant_precision_fallback=True)), cell["inputs"])
    assert planted["used"] == "fp32"

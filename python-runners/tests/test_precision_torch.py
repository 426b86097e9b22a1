"""The torch engine's reduced precisions (issue 20) on real PyTorch, on the canonical tiny workloads
the harness's own compiled code makes (precision_workloads.mjs), batch 8: bf16 by autocast and int8
by quantize_dynamic in every mode, each judged against the same model's fp32 logits; what
precision_used() reports is read from the framework's dtypes, so a planted silent fallback
(BuildRequest.plant_precision_fallback, FWBENCH_FAULT=precision-fallback@build in the real runner)
reports fp32; a precision the declaration does not allow is refused in one line. The CUDA paths
(fp16 autocast, TF32 switches, fp32 with TF32 off) run only where torch sees a GPU.

Figures are printed (pytest -s shows them): the relative L2 error of the logits against fp32 and
the argmax agreement, per family, precision and mode."""

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_protocol import converse  # noqa: E402

from fwbench_runner import torch as engine  # noqa: E402
from fwbench_runner.engine import BuildRequest, EngineUnavailable  # noqa: E402
from fwbench_runner.fault import maybe_fault, parse_fault  # noqa: E402
from fwbench_runner.manifest import ENGINES  # noqa: E402
from fwbench_runner.protocol import validators  # noqa: E402
from fwbench_runner.safetensors import load_tensors  # noqa: E402
from fwbench_runner.torch.precision import Precision, quantized_modules, tf32_flags  # noqa: E402

RUNNERS = Path(__file__).resolve().parents[1]
REPO = RUNNERS.parent
BATCH = 8
MODES = ENGINES["torch"]["modes"]
#: Each precision's declared way (harness/engines/torch.ts), as the manifest publishes it.
WAYS = ENGINES["torch"]["precisions"]
#: bf16 keeps 8 significant bits: its rounding (2^-9 relative) shows in the logits as ~1e-3..1e-2,
#: far above fp32's ~1e-7 and far below a broken model's O(1).
BF16_RANGE = (1e-4, 3e-2)
#: Dynamic int8 (per-tensor weights, 7-bit activations on x86) errs more: ~1e-2..1e-1 on the logits.
INT8_RANGE = (1e-3, 0.25)
NO_GPU = "torch sees no CUDA device here (a CPU-only machine): the CUDA precisions run where there is a GPU"
_, FROM_WORKER = validators()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{"family/tiny": {params, weightsPath, inputsPath, job}} for batch 8, written to a fresh cache."""
    if not (REPO / "dist" / "workloads" / "materialize.js").exists():
        pytest.fail("dist/ is missing: run `npm run build` so the harness's code can make the workloads")
    env = {**os.environ, "FWBENCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    out = subprocess.run(["node", str(RUNNERS / "tests" / "precision_workloads.mjs"), str(BATCH)], env=env, capture_output=True, text=True, check=True)
    return {key.split("/")[0]: w for key, w in json.loads(out.stdout).items()}


def build(made, family, mode="eager", precision="fp32", plant=False, device="cpu", stream=False):
    w = made[family]
    req = BuildRequest(family, w["params"], BATCH, load_tensors(w["weightsPath"])[0], None, device, mode, 1, stream=stream)
    req.precision, req.plant_precision_fallback = precision, plant
    return engine.build(req)


def logits(made, family, mode="eager", precision="fp32", plant=False, device="cpu"):
    """(logits as the protocol gets them, precision_used(), the model) of one parity run."""
    model = build(made, family, mode, precision, plant, device)
    feed = model.prepare(load_tensors(made[family]["inputsPath"])[0])
    with model.session():
        if model.compiles:
            model.compile(feed)
        out = model.run(feed)
        used = model.precision_used()
    return out, used, model


@pytest.fixture(scope="module")
def fp32(made):
    """Each family's fp32 eager logits: the reference of the reduced precisions."""
    return {family: logits(made, family)[0] for family in made}


def rel_l2(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def agreement(a, b):
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def layer_counts(evidence):
    """{(layer, dtype): (n, of)} from the probe's `Linear 8/8 bfloat16` phrases."""
    return {(k, d): (int(n), int(of)) for k, n, of, d in re.findall(r"(Linear|Conv2d|LSTM) (\d+)/(\d+) (\w+)", evidence)}


def bf16_lstm_runs_here():
    """Whether plain nn.LSTM runs under CPU bf16 autocast on this machine (asked of torch directly)."""
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(4, 4)(torch.zeros(1, 1, 4))
        return True
    except RuntimeError:
        return False


def report(family, precision, mode, out, ref, used):
    err, agree = rel_l2(out, ref), agreement(out, ref)
    print(f"{family} {precision} {mode}: relL2 vs fp32 {err:.2e}, argmax agreement {agree:.3f}; used {used['used']}: {used['evidence']}")
    return err


def test_fp32_reports_float32_logits_and_nothing_quantized(made, fp32):
    out, used, model = logits(made, "transformer")
    assert used == {"used": "fp32", "evidence": "logits float32 from the Encoder's parity run"}
    assert out.dtype == np.float32 and model.settings["precision"] == "fp32" and "precisionMechanism" not in model.settings


@pytest.mark.parametrize("family", ["cnn", "rnn", "transformer"])
@pytest.mark.parametrize("mode", ["eager", "torchscript"])
def test_bf16_autocast_computes_every_product_layer_in_bfloat16_with_an_error_of_bf16_rounding(made, fp32, family, mode):
    if family == "rnn" and not bf16_lstm_runs_here():
        # oneDNN's bf16 LSTM needs AVX-512: on an AVX2-only CPU the cell is skipped with this machine's reason.
        assert torch.backends.cpu.get_cpu_capability() != "AVX512"
        with pytest.raises(
            EngineUnavailable, match=r"^this CPU has no bfloat16 LSTM kernel: .*torch CPU capability AVX2\); it raised: could not create a primitive descriptor"
        ) as e:
            build(made, family, mode, "bf16")
        assert "AVX-512" in e.value.fix
        print(f"rnn bf16 {mode}: skipped here: {e.value}")
        return
    out, used, model = logits(made, family, mode, "bf16")
    assert out.dtype == np.float32  # the protocol's logits, cast after the evidence was read
    assert used["used"] == "bf16"
    assert used["evidence"].startswith("logits bfloat16 from the ")
    counts = layer_counts(used["evidence"])
    assert counts and all(d == "bfloat16" and n == of for (_, d), (n, of) in counts.items()), used["evidence"]
    expected = {"cnn": {"Conv2d", "Linear"}, "rnn": {"LSTM", "Linear"}, "transformer": {"Linear"}}[family]
    assert {k for k, _ in counts} == expected
    assert "torch.autocast('cpu', dtype=torch.bfloat16)" in model.settings["precisionMechanism"]
    err = report(family, "bf16", mode, out, fp32[family], used)
    assert BF16_RANGE[0] < err < BF16_RANGE[1]


@pytest.mark.parametrize("mode", [m for m in MODES if m.startswith("compile")])
def test_bf16_autocast_under_torch_compile(made, fp32, mode):
    out, used, model = logits(made, "transformer", mode, "bf16")
    assert used["used"] == "bf16" and "from the OptimizedModule's parity run" in used["evidence"]
    err = report("transformer", "bf16", mode, out, fp32["transformer"], used)
    assert BF16_RANGE[0] < err < BF16_RANGE[1]


@pytest.mark.parametrize("family", ["rnn", "transformer"])
@pytest.mark.parametrize("mode", ["eager", "torchscript"])
def test_int8_quantizes_every_linear_and_lstm_to_qint8_weights(made, fp32, family, mode):
    out, used, model = logits(made, family, mode, "int8")
    assert used["used"] == "int8"
    quantized = quantized_modules(model.module)
    # rnn: the LSTM and the classifier; transformer: per layer query, key, value, output and the two
    # feed-forward ones, then the pooler and the classifier.
    expected = {"rnn": ["LSTM", "Linear"], "transformer": ["Linear"] * (6 * made[family]["params"]["layers"] + 2)}
    assert sorted(type(m).__name__ for m in quantized) == sorted(expected[family])
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.LSTM)) for m in model.module.modules())  # nothing left in fp32
    assert f"{len(quantized)} of {len(quantized)} Linear/LSTM modules are torch.ao.nn.quantized.dynamic" in used["evidence"]
    assert "weights qint8" in used["evidence"]
    if mode == "torchscript":
        # The frozen graph the mode runs calls the quantized kernels (fbgemm / x86).
        assert "quantized::linear_dynamic" in used["evidence"]
        assert ("aten::quantized_lstm" in used["evidence"]) == (family == "rnn")
    assert model.settings["quantizedEngine"] in torch.backends.quantized.supported_engines
    err = report(family, "int8", mode, out, fp32[family], used)
    assert INT8_RANGE[0] < err < INT8_RANGE[1]


@pytest.mark.parametrize("mode", [m for m in MODES if m.startswith("compile")])
def test_int8_under_torch_compile_runs_the_quantized_modules_between_graph_breaks(made, fp32, mode):
    out, used, model = logits(made, "transformer", mode, "int8")
    assert used["used"] == "int8"
    # Dynamo cannot trace quantize_dynamic's packed weights: at least one graph break per quantized Linear.
    breaks = model.settings["compileGraphBreaks"]
    print(f"transformer int8 {mode}: {breaks} graph breaks, {model.compile_count()} graphs")
    assert breaks >= len(quantized_modules(model.module))
    err = report("transformer", "int8", mode, out, fp32["transformer"], used)
    assert INT8_RANGE[0] < err < INT8_RANGE[1]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_planted_fallback_computes_fp32_and_reports_fp32(made, fp32, precision):
    out, used, model = logits(made, "rnn", "eager", precision, plant=True)
    assert used["used"] == "fp32"
    assert "logits float32" in used["evidence"]
    assert rel_l2(out, fp32["rnn"]) < 1e-6  # exactly the fp32 model
    assert model.settings["precision"] == precision and "precision-fallback" in model.settings["precisionMechanism"]
    print(f"planted {precision} fallback: {used}")


def test_a_float32_lstm_under_a_bf16_classifier_is_not_called_bf16(made):
    """On the CPU autocast has no rule for nn.LSTM on a packed sequence (a shape stream's input):
    the logits come out bfloat16 from the classifier, but the probe sees the LSTM in float32."""
    w = made["rnn"]
    model = build(made, "rnn", stream=True)
    model.precision = Precision("bf16", torch.device("cpu"))
    tokens = load_tensors(w["inputsPath"])[0]["tokens"]
    feed = model.prepare({"tokens": tokens, "lengths": np.array([8, 5, 3, 8, 2, 7, 6, 4], np.int32)})
    with model.session():
        model.run(feed)
        used = model.precision_used()
    print(used)
    assert used["used"] == "fp32"
    assert used["evidence"].startswith("logits bfloat16")
    assert layer_counts(used["evidence"]) == {("LSTM", "float32"): (1, 1), ("Linear", "bfloat16"): (1, 1)}
    with pytest.raises(ValueError, match=r"^torch cannot run bf16 on an rnn shape stream on the CPU: autocast has no CPU rule for nn.LSTM on a packed"):
        build(made, "rnn", precision="bf16", stream=True)


def test_a_precision_the_declaration_does_not_allow_is_refused_in_one_line(made):
    cases = {
        (
            "cnn",
            "eager",
            "int8",
            "cpu",
        ): f"torch cannot run int8 for cnn in mode eager on cpu: its int8 applies to rnn, transformer only: {WAYS['int8']['limits']}",
        ("rnn", "eager", "fp16", "cpu"): f"torch cannot run fp16 for rnn in mode eager on cpu: it runs fp16 on cuda only: {WAYS['fp16']['limits']}",
        (
            "transformer",
            "eager",
            "tf32",
            "cpu",
        ): f"torch cannot run tf32 for transformer in mode eager on cpu: it runs tf32 on cuda only: {WAYS['tf32']['limits']}",
        (
            "transformer",
            "eager",
            "int4",
            "cpu",
        ): "torch cannot run int4 for transformer in mode eager on cpu: unknown precision 'int4'; valid: fp32, bf16, fp16, tf32, int8",
    }
    for (family, mode, precision, device), message in cases.items():
        with pytest.raises(ValueError) as e:
            build(made, family, mode, precision, device=device)
        assert str(e.value) == message and "\n" not in message


def test_the_fault_switch_plants_the_fallback_only_in_its_engines_build():
    fault = parse_fault("precision-fallback@build:torch")
    assert maybe_fault(fault, "build", "torch", 2, None) == "precision-fallback"
    assert maybe_fault(fault, "build", "tensorflow", 2, None) is None
    assert maybe_fault(fault, "load", "torch", 2, None) is None
    assert maybe_fault(parse_fault("precision-fallback@build"), "build", "tensorflow", 2, None) == "precision-fallback"


def parity_of(job, monkeypatch, fault=None):
    if fault:
        monkeypatch.setenv("FWBENCH_FAULT", fault)
    else:
        monkeypatch.delenv("FWBENCH_FAULT", raising=False)
    msgs, code = converse(job, [{"type": "stop"}])
    assert code == 0, msgs[-1]
    for m in msgs:
        FROM_WORKER.validate(m)
    [parity] = [m for m in msgs if m["type"] == "parity"]
    [built] = [m for m in msgs if m["type"] == "built"]
    return parity, built


def test_the_real_runner_reports_bf16_and_with_the_fault_planted_reports_the_fp32_it_computed(made, monkeypatch):
    job = made["transformer"]["job"]
    job = {**job, "cell": {**job["cell"], "precision": "bf16"}}
    parity, built = parity_of(job, monkeypatch)
    assert parity["precision"]["used"] == "bf16" and built["settings"]["precision"] == "bf16"
    planted, built = parity_of(job, monkeypatch, "precision-fallback@build:torch")
    print(f"asked bf16: {parity['precision']}; planted fallback: {planted['precision']}")
    assert planted["precision"]["used"] == "fp32" and "logits float32" in planted["precision"]["evidence"]
    assert built["settings"]["precision"] == "bf16"  # the cell still asked for bf16: only `used` tells
    assert parity["values"] != planted["values"]
    other, _ = parity_of(job, monkeypatch, "precision-fallback@build:tensorflow")
    assert other["precision"]["used"] == "bf16" and other["values"] == parity["values"]


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)


@cuda
@pytest.mark.parametrize("precision,dtype", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_cuda_autocast_computes_in_its_dtype(made, fp32, precision, dtype):
    out, used, model = logits(made, "transformer", "eager", precision, device="cuda")
    assert used["used"] == precision and used["evidence"].startswith(f"logits {dtype}")
    assert not any(tf32_flags())  # a reduced-precision cell keeps the fp32 rest IEEE
    err = report("transformer", precision, "eager cuda", out, fp32["transformer"], used)
    assert err < BF16_RANGE[1]


@cuda
def test_cuda_tf32_turns_both_switches_on_and_fp32_turns_them_off(made, fp32):
    out, used, model = logits(made, "transformer", "eager", "tf32", device="cuda")
    assert tf32_flags() == (True, True) and model.settings["tf32Matmul"] and model.settings["tf32Conv"]
    ampere = torch.cuda.get_device_capability() >= (8, 0)
    assert used["used"] == ("tf32" if ampere else "fp32") and "allow_tf32=True" in used["evidence"]
    report("transformer", "tf32", "eager cuda", out, fp32["transformer"], used)
    out, used, model = logits(made, "transformer", "eager", "fp32", device="cuda")
    assert tf32_flags() == (False, False) and not model.settings["tf32Matmul"] and not model.settings["tf32Conv"]
    assert used["used"] == "fp32" and "allow_tf32=False" in used["evidence"]
    assert rel_l2(out, fp32["transformer"]) < 1e-5


@cuda
def test_cuda_planted_fallback_leaves_tf32_off_and_reports_fp32(made):
    _, used, _ = logits(made, "transformer", "eager", "tf32", plant=True, device="cuda")
    assert tf32_flags() == (False, False) and used["used"] == "fp32"

"""TensorFlow engine: Keras models as a TensorFlow user writes them, one module per workload family
(cnn.py: NHWC functional ResNet in the keras.applications style; rnn.py: Embedding -> LSTM ->
Dense; transformer.py: a subclassed BERT-style encoder on keras MultiHeadAttention). Their weights
come ready in Keras layout: the orchestrator writes them with the same canonical -> Keras mapping
the TensorFlow.js engines use (harness/engines/keras-layout.ts), as tensors named
`<keras layer>/<index>` in `set_weights` order, so that mapping is described exactly once.

Modes: `eager` (calling the model), `function` (tf.function) and `xla`
(tf.function(jit_compile=True)); tracing and XLA compilation happen on the first call, which
`KerasModel.compile` makes on the parity inputs: timed as the cold start's compile segment, never
in the timed loop. Training cells: `build_trainer` (train.py)."""

import os

import keras
import numpy as np
import tensorflow as tf

from ..engine import BuiltModel, EngineUnavailable, devices_here, pick
from . import cnn, rnn, transformer

#: Workload family -> its module: `model(params, batch)` (the Keras model, variables created) and
#: `layer_weights(grouped, params)` (the Keras-layout file's weights as that model's layers take them).
FAMILIES = {"cnn": cnn, "rnn": rnn, "transformer": transformer}
#: Mode -> how the Keras call is wrapped (tf.function traces, and XLA compiles, on the first call).
MODES = {
    "eager": lambda call: call,
    "function": lambda call: tf.function(call, jit_compile=False),
    "xla": lambda call: tf.function(call, jit_compile=True),
}
GPU_FIX = "python-runners/.venv/bin/pip install -r python-runners/requirements-gpu.txt (tensorflow[and-cuda]) on a machine with an NVIDIA GPU and driver"


def group_keras_weights(native):
    """{layer: [arrays in set_weights order]} from tensors named `<layer>/<index>`."""
    grouped = {}
    for name, array in native.items():
        layer, index = name.rsplit("/", 1)
        grouped.setdefault(layer, {})[int(index)] = np.asarray(array)
    return {layer: [by_index[i] for i in range(len(by_index))] for layer, by_index in grouped.items()}


def load_keras_weights(model, grouped):
    """set_weights layer by layer; every model layer with weights must be covered, and vice versa."""
    for name, arrays in grouped.items():
        model.get_layer(name).set_weights(arrays)
    uncovered = [l.name for l in model.layers if l.weights and l.name not in grouped]
    if uncovered:
        raise ValueError(f"no Keras-layout weights for layers {uncovered}")


def build_model(family, p, batch, native):
    model = family.model(p, batch)
    load_keras_weights(model, family.layer_weights(group_keras_weights(native), p))
    return model


def cuda_status():
    if not tf.test.is_built_with_cuda():
        return False, f"tensorflow {tf.__version__} is a CPU-only build"
    if not tf.config.list_physical_devices("GPU"):
        return False, f"tensorflow {tf.__version__} sees no GPU"
    return True, str(tf.config.list_physical_devices("GPU")[0].name)


def probe():
    usable, cuda = cuda_status()
    details = {"keras": keras.__version__, "cuda": cuda, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)")}
    if not usable:
        details["cudaFix"] = GPU_FIX
    return {"version": tf.__version__, "devices": devices_here("tensorflow", usable), "details": details}


def host_inputs(inputs):
    """The batch as a TensorFlow user holds it: NHWC images or int32 ids, in host memory. Converting
    the harness' NCHW copy once keeps that layout change out of the timed loop."""
    with tf.device("/CPU:0"):
        if "images" in inputs:
            return tf.constant(np.ascontiguousarray(np.transpose(inputs["images"], (0, 2, 3, 1))))
        return tf.constant(inputs["tokens"])


class KerasModel(BuiltModel):
    def __init__(self, model, fn, mode, device, settings):
        self.model = model
        self.fn = fn
        self.compiles = mode != "eager"
        self.device = device
        self.settings = settings
        if device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def prepare(self, inputs):
        return host_inputs(inputs)

    def session(self):
        return tf.device("/GPU:0" if self.device == "cuda" else "/CPU:0")

    def compile(self, feed):
        self.run(feed)

    def run(self, feed):
        # .numpy() waits for the result and copies it to host memory: readback is part of the timed work.
        return self.fn(feed).numpy()

    def peak_device_bytes(self):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] if self.device == "cuda" else None


def init_runtime(req):
    """Thread pools (fixed when the runtime initialises: before any op) and the CUDA check."""
    tf.config.threading.set_intra_op_parallelism_threads(req.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if req.device == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise EngineUnavailable(why, GPU_FIX)


def place_model(req):
    """The family's Keras model with the request's Keras-layout weights, built on the request's
    device after the runtime's threads are set; checks every variable landed there. Returns (model,
    "CPU" or "GPU"). Shared by inference (`build`) and training (`train.build_trainer`)."""
    family = pick("tensorflow", "workload family", FAMILIES, req.family)
    if req.native_weights is None:
        raise ValueError("tensorflow needs the Keras-layout weights (job field nativeWeightsPath)")
    init_runtime(req)
    if req.device != "cuda":
        # Otherwise TensorFlow would silently place a CPU cell's ops on a visible GPU.
        tf.config.set_visible_devices([], "GPU")
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        model = build_model(family, req.params, req.batch_size, req.native_weights)
    placed = {v.value.device for v in model.weights}
    wanted = "GPU" if req.device == "cuda" else "CPU"
    if not all(wanted in d for d in placed):
        raise RuntimeError(f"model variables on {sorted(placed)}, expected all on {wanted}")
    return model, wanted


def runtime_settings(req, placed):
    """The settings a cell reports, read back from TensorFlow where it can tell (inference and training)."""
    return {
        "tensorflowVersion": tf.__version__,
        "kerasVersion": keras.__version__,
        "mode": req.mode,
        "device": req.device,
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "interopThreads": tf.config.threading.get_inter_op_parallelism_threads(),
        "requestedThreads": req.threads,
        "jitCompile": req.mode == "xla",
        # TF32 matters on Ampere+ GPUs (TensorFlow's default is on); oneDNN kernels on x86-64 CPUs.
        "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86-64 Linux builds)"),
        "nvidiaTf32Override": os.environ.get("NVIDIA_TF32_OVERRIDE", "unset"),
        "placement": f"all variables on {placed}",
    }


def build(req):
    wrap = pick("tensorflow", "mode", MODES, req.mode)
    model, placed = place_model(req)
    call = lambda x: model(x, training=False)  # noqa: E731
    return KerasModel(model, wrap(call), req.mode, req.device, runtime_settings(req, placed))


def build_trainer(req):
    """A Trainer for a training cell (train.py: the same model, trained in a custom training loop)."""
    from .train import build_trainer as build_keras_trainer

    return build_keras_trainer(req)


def peak(req):
    """GEMM via tf.linalg.matmul, copy via tf.multiply(x, 1) (tf.identity may share the buffer);
    each call ends with a small readback so asynchronous devices finish inside the timed call."""
    from ..peak import figures, median_ms

    init_runtime(req)
    rng = np.random.default_rng(0)
    n = req.gemm_n
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        a = tf.constant(rng.random((n, n), dtype=np.float32))
        b = tf.constant(rng.random((n, n), dtype=np.float32))
        gemm_ms = median_ms(lambda: tf.linalg.matmul(a, b)[0, 0].numpy(), req.max_ms)
        a = b = None  # frees the GEMM operands before the copy kernel
        x = tf.constant(rng.random(req.copy_elements, dtype=np.float32))
        one = tf.constant(1.0)
        copy_ms = median_ms(lambda: tf.multiply(x, one)[-1].numpy(), req.max_ms)
    return figures(
        req, gemm_ms, copy_ms, {"gemm": "tf.linalg.matmul", "copy": "tf.multiply(x, 1)", "threads": tf.config.threading.get_intra_op_parallelism_threads()}
    )

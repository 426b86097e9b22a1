"""TensorFlow engine: Keras models as a TensorFlow user writes them, one module per workload family
(cnn.py: NHWC functional ResNet in the keras.applications style; rnn.py: Embedding -> LSTM ->
Dense; transformer.py: a subclassed BERT-style encoder on keras MultiHeadAttention). Their weights
come ready in Keras layout: the orchestrator writes them with the same canonical -> Keras mapping
the TensorFlow.js engines use (harness/engines/keras-layout.ts), as tensors named
`<keras layer>/<index>` in `set_weights` order, so that mapping is described exactly once.

Modes: `eager` (calling the model), `function` (tf.function), `xla` (tf.function(jit_compile=True)),
`function-signature` (tf.function with an input_signature whose batch and length dims are None:
one trace for every shape) and `function-relaxed` (tf.function(reduce_retracing=True): TensorFlow
generalises the shapes it has seen into a wider trace); tracing and XLA compilation happen on the
first call, which `KerasModel.compile` makes on the parity inputs: timed as the cold start's
compile segment, never in the timed loop. A tf.function without a signature traces again for each
new input shape (and XLA compiles again): in a shape stream, `compile_count()` (the function's
experimental_get_tracing_count()) counts those traces. Shape streams (BuildRequest.stream): the
model takes (tokens [B, L], lengths [B]) and masks the padding (rnn.py, transformer.py).
Precisions (BuildRequest.precision): a Keras mixed-precision policy per model for bf16 and fp16,
TF32 switched on for tf32 and off for every other CUDA cell, and what the model really computes in
observed from its dtypes (precision.py). Training cells: `build_trainer` (train.py). Generation
cells (the decoder family, which only generates): `build_generator` (decoder.py, which says how
each mode keeps the cache)."""

import os

import keras
import numpy as np
import tensorflow as tf

from ..engine import BuiltModel, EngineUnavailable, devices_here, pick
from . import cnn, decoder, rnn, transformer
from . import precision as precisions

#: Workload family -> its module: `model(params, batch, stream=False)` (the Keras model, variables created) and
#: `layer_weights(grouped, params)` (the Keras-layout file's weights as that model's layers take them);
#: decoder.py instead builds generators from the canonical weights (`build_generator`).
FAMILIES = {"cnn": cnn, "rnn": rnn, "transformer": transformer, "decoder": decoder}
#: Mode -> the tf.function options it sets (None: no tf.function, the model is called eagerly).
#: `input_signature` is filled in per model (`input_signature`).
FUNCTION_OPTIONS = {
    "eager": None,
    "function": {"jit_compile": False},
    "xla": {"jit_compile": True},
    "function-signature": {"jit_compile": False, "input_signature": None},
    "function-relaxed": {"jit_compile": False, "reduce_retracing": True},
}


def function_options(mode, signature=None):
    """The mode's tf.function keyword arguments, the input signature filled in; None for eager."""
    options = FUNCTION_OPTIONS[mode]
    if options is None:
        return None
    if "input_signature" in options:
        if signature is None:
            raise ValueError(f"tensorflow mode '{mode}' needs the model's input signature")
        options = {**options, "input_signature": signature}
    return options


def wrap(mode, call, signature=None):
    """`call` as the mode runs it: as it is (eager) or a tf.function with the mode's options (it
    traces, and XLA compiles, on its first call for each input signature it has no trace for)."""
    options = function_options(mode, signature)
    return call if options is None else tf.function(call, **options)


#: Mode -> how a Keras call is wrapped (`wrap`); `signature` only matters to function-signature.
MODES = {mode: (lambda call, signature=None, mode=mode: wrap(mode, call, signature)) for mode in FUNCTION_OPTIONS}
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


def build_model(family, p, batch, native, stream=False, dtype=None):
    """The family's model with its weights; `dtype` is the Keras dtype policy of its layers (None: float32)."""
    model = family.model(p, batch, stream=stream, dtype=dtype)
    load_keras_weights(model, family.layer_weights(group_keras_weights(native), p))
    precisions.forget_build_time_calls(model)
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


def input_signature(family_name, p, stream):
    """The function-signature mode's input_signature: the model's inputs with None batch and, for
    token sequences, None length (a stream's tokens and lengths; a fixed cell's tokens or NHWC images)."""
    if stream:
        return [tf.TensorSpec([None, None], tf.int32, name="tokens"), tf.TensorSpec([None], tf.int32, name="lengths")]
    if family_name == "cnn":
        return [tf.TensorSpec([None, p["image"], p["image"], p["channels"]], tf.float32, name="images")]
    return [tf.TensorSpec([None, None], tf.int32, name="tokens")]


def describe_function(options):
    """How the settings name a mode's wrapping: `tf.function(...)` with its options, or eager."""
    if options is None:
        return "none (the Keras model called eagerly)"
    shown = []
    for key, value in options.items():
        if key == "input_signature":
            # Flattened: a generator's signature nests its cache tensors in a list.
            value = "[" + ", ".join(f"TensorSpec({list(s.shape)}, {s.dtype.name}, name={s.name!r})" for s in tf.nest.flatten(value)) + "]"
        shown.append(f"{key}={value}")
    return f"tf.function({', '.join(shown)})"


class KerasModel(BuiltModel):
    def __init__(self, model, fn, mode, device, settings, stream=False, observed=None):
        self.model = model
        self.fn = fn
        #: {"logits": dtype name} as the forward pass produced them (the call records it; see `build`).
        self.observed = observed if observed is not None else {}
        #: The inputs the mode traced on (`compile`), to find its traced graph again.
        self.traced_on = None
        self.compiles = mode != "eager"
        self.mode = mode
        self.device = device
        self.settings = settings
        self.stream = stream
        if device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def prepare(self, inputs):
        """The inputs the call takes, as tensors in host memory: (tokens or images,), or in a
        stream (tokens, lengths)."""
        x = host_inputs(inputs)
        if not self.stream:
            return (x,)
        with tf.device("/CPU:0"):
            return x, tf.constant(np.asarray(inputs["lengths"], dtype=np.int32))

    def session(self):
        return tf.device("/GPU:0" if self.device == "cuda" else "/CPU:0")

    def compile(self, feed):
        self.run(feed)
        self.traced_on = feed

    def run(self, feed):
        # .numpy() waits for the result and copies it to host memory: readback is part of the timed work.
        return self.fn(*feed).numpy()

    def compile_count(self):
        """Traces of the tf.function so far (each XLA compilation follows one); None when eager."""
        return self.fn.experimental_get_tracing_count() if self.compiles else None

    def peak_device_bytes(self):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] if self.device == "cuda" else None

    def precision_used(self):
        """What the model computed in, observed after the parity run (precision.observe): the matrix
        layers' compute dtypes, the logits' dtype before the float32 cast in that forward pass, the
        traced graph's matrix ops (tf.function modes) and, on CUDA, TF32 read back."""
        if "logits" not in self.observed:
            raise RuntimeError("tensorflow: precision_used before any forward pass")
        # The trace the compile step made (a cache hit: nothing is traced again).
        concrete = self.fn.get_concrete_function(*self.traced_on) if self.traced_on is not None else None
        # XLA rewrites the graph's ops: what its compiled program multiplies in is in the optimized HLO.
        hlo = self.fn.experimental_get_compiler_ir(*self.traced_on)(stage="optimized_hlo") if self.mode == "xla" else None
        return precisions.observe(self.model, self.observed["logits"], self.device, concrete, hlo)


def init_runtime(req):
    """Thread pools (fixed when the runtime initialises: before any op) and the CUDA check."""
    tf.config.threading.set_intra_op_parallelism_threads(req.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if req.device == "cuda":
        usable, why = cuda_status()
        if not usable:
            raise EngineUnavailable(why, GPU_FIX)


def start_runtime(req):
    """What every model and generator of a cell starts with: the precision checked, the runtime's
    threads, TF32 as the cell asks, and on the CPU no visible GPU (otherwise TensorFlow would
    silently place a CPU cell's ops on it)."""
    precisions.check(req)
    init_runtime(req)
    precisions.set_tf32(req)
    if req.device != "cuda":
        tf.config.set_visible_devices([], "GPU")


def place_model(req):
    """The family's Keras model with the request's Keras-layout weights, built on the request's
    device after the runtime's threads are set; checks every variable landed there. Returns (model,
    "CPU" or "GPU"). Shared by inference (`build`) and training (`train.build_trainer`). Its layers
    get the precision's Keras dtype policy (precision.py), this model's only."""
    family = pick("tensorflow", "workload family", FAMILIES, req.family)
    if family is decoder:
        raise ValueError(decoder.GENERATES_ONLY)
    if req.native_weights is None:
        raise ValueError("tensorflow needs the Keras-layout weights (job field nativeWeightsPath)")
    start_runtime(req)
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        model = build_model(family, req.params, req.batch_size, req.native_weights, req.stream, precisions.policy_for(req))
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
        "precision": req.precision,
        "precisionMechanism": precisions.mechanism(req.precision) or "none (float32)",
    }


def build(req):
    pick("tensorflow", "mode", MODES, req.mode)
    model, placed = place_model(req)
    observed = {}

    # Records the logits' dtype as the forward pass makes them: on every eager call (a dict store), at
    # trace time in a tf.function (the dtype of the graph that then runs).
    if req.stream:

        def call(tokens, lengths):
            logits = model((tokens, lengths), training=False)
            observed["logits"] = logits.dtype.name
            return logits
    else:

        def call(x):
            logits = model(x, training=False)
            observed["logits"] = logits.dtype.name
            return logits

    signature = input_signature(req.family, req.params, req.stream)
    options = function_options(req.mode, signature)
    settings = {
        **runtime_settings(req, placed),
        "tfFunction": describe_function(options),
        "inputSignature": options is not None and "input_signature" in options,
        "reduceRetracing": bool(options and options.get("reduce_retracing")),
        "shapes": "stream (tokens [B, L] and lengths [B], padding masked)" if req.stream else "fixed",
        # Read back from the built model: the policy its logits layer computes with.
        "dtypePolicy": precisions.matrix_layers(model)[-1].dtype_policy.name,
    }
    fn = wrap(req.mode, call, signature)
    return KerasModel(model, fn, req.mode, req.device, settings, req.stream, observed)


def build_generator(req):
    """A Generator for a generation cell (decoder.py): `eager` grows the cache; `function` and `xla`
    run tf.functions over a cache preallocated for promptLength + newTokens positions;
    `function-signature` and `function-relaxed` grow the cache under those tf.function options."""
    pick("tensorflow", "mode", MODES, req.mode)
    family = pick("tensorflow", "workload family", FAMILIES, req.family)
    if family is not decoder:
        raise ValueError(f"tensorflow: the {req.family} family does not generate text; the decoder family does")
    cache = (req.generation or {}).get("cache")
    if cache not in ("kv", "none"):
        raise ValueError(f"tensorflow: unknown generation cache {cache!r}; valid: kv, none")
    start_runtime(req)
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        model = decoder.Decoder(req.weights, req.params)
    placed = {v.value.device for v in model.variables}
    wanted = "GPU" if req.device == "cuda" else "CPU"
    if not all(wanted in d for d in placed):
        raise RuntimeError(f"decoder variables on {sorted(placed)}, expected all on {wanted}")
    # Flat values only (the protocol's settings record); the cell itself carries its generation.
    settings = runtime_settings(req, placed=wanted)
    if req.mode in decoder.FIXED_MODES:
        options = FUNCTION_OPTIONS[req.mode]
        gen = decoder.FixedGenerator(model, req.batch_size, req.generation, options, req.device, settings)
    else:
        gen = decoder.GrowingGenerator(model, req.batch_size, cache, lambda call, signature: wrap(req.mode, call, signature), req.device, settings)
        options = function_options(req.mode, gen.signature)
    settings.update(
        {
            "tfFunction": describe_function(options),
            "inputSignature": options is not None and "input_signature" in options,
            "reduceRetracing": bool(options and options.get("reduce_retracing")),
            "cache": decoder.CACHE_WORDS["fixed" if req.mode in decoder.FIXED_MODES else "growing"][cache],
        }
    )
    return gen


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

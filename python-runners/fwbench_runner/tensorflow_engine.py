"""TensorFlow engine: Keras models as a TensorFlow user writes them (NHWC functional ResNet in the
keras.applications style, Embedding -> LSTM -> Dense, and a subclassed BERT-style encoder on
keras MultiHeadAttention). Their weights come ready in Keras layout: the orchestrator writes them
with the same canonical -> Keras mapping the TensorFlow.js engines use
(harness/engines/keras-layout.ts), as tensors named `<keras layer>/<index>` in
`set_weights` order, so that mapping is described exactly once.

Modes: `eager` (calling the model), `function` (tf.function) and `xla`
(tf.function(jit_compile=True)); tracing and XLA compilation happen on the first call, which
`KerasModel.compile` makes on the parity inputs: timed as the cold start's compile segment, never
in the timed loop."""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .engine import BuiltModel, EngineUnavailable
from .resnet_layout import resnet_layout

MODES = ("eager", "function", "xla")
#: The canonical model's BatchNorm epsilon (Keras defaults to 1e-3).
BN_EPS = 1e-5
#: LayerNorm epsilon of the canonical encoder (BERT's).
LAYER_NORM_EPS = 1e-12
GPU_FIX = "python-runners/.venv/bin/pip install -r python-runners/requirements-gpu.txt (tensorflow[and-cuda]) on a machine with an NVIDIA GPU and driver"


def kname(canonical_prefix):
    """Keras layer name of a canonical prefix, as kerasName in keras-layout.ts."""
    return canonical_prefix.replace(".", "_")


def conv_bn(x, c):
    # TF's 'same' puts the extra pixel of an odd total padding at the end (stride 2 on even sides),
    # so it equals the canonical symmetric padding only at stride 1; elsewhere pad explicitly.
    same = c.pad > 0 and c.stride == 1 and 2 * c.pad == c.k - 1
    if c.pad > 0 and not same:
        x = layers.ZeroPadding2D(c.pad, name=f"{kname(c.name)}_pad")(x)
    x = layers.Conv2D(c.cout, c.k, strides=c.stride, padding="same" if same else "valid", use_bias=False, name=kname(c.name))(x)
    return layers.BatchNormalization(axis=-1, epsilon=BN_EPS, name=kname(c.bn))(x)


def resnet(p, batch):
    layout = resnet_layout(p)
    images = keras.Input((p["image"], p["image"], p["channels"]), batch_size=batch, name="images")
    x = layers.ReLU(name="conv1_relu")(conv_bn(images, layout.stem))
    # Zero padding equals PyTorch's -inf padding here: after ReLU every window has a value >= 0.
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for b in layout.blocks:
        y = x
        for i, c in enumerate(b.convs):
            y = conv_bn(y, c)
            if i < len(b.convs) - 1:
                y = layers.ReLU(name=f"{kname(c.bn)}_relu")(y)
        shortcut = conv_bn(x, b.downsample) if b.downsample else x
        x = layers.ReLU(name=f"{kname(b.prefix)}_out")(layers.Add(name=f"{kname(b.prefix)}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(images, layers.Dense(layout.classes, name="fc")(x), name="resnet")


def lstm_classifier(p, batch):
    tokens = keras.Input((p["seq"],), batch_size=batch, dtype="int32", name="tokens")
    x = layers.Embedding(p["vocab"], p["embed"], name="embedding")(tokens)
    for l in range(p["layers"]):
        # Keras' defaults (tanh, sigmoid recurrent activation) are the canonical LSTM's.
        x = layers.LSTM(p["hidden"], return_sequences=l < p["layers"] - 1, name=f"lstm_{l}")(x)
    return keras.Model(tokens, layers.Dense(p["classes"], name="fc")(x), name="lstm_classifier")


class Encoder(keras.Model):
    """BERT-style encoder; layer names are the Keras-layout names (MultiHeadAttention takes the
    four attention Dense layers of one encoder layer, reshaped)."""

    def __init__(self, p):
        super().__init__(name="encoder")
        norm = lambda name: layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=name)  # noqa: E731
        self.word = layers.Embedding(p["vocab"], p["hidden"], name="embeddings_word")
        self.position = layers.Embedding(p["seq"], p["hidden"], name="embeddings_position")
        self.embeddings_norm = norm("embeddings_norm")
        n, heads = p["layers"], p["heads"]
        self.attention = [layers.MultiHeadAttention(heads, p["hidden"] // heads, name=f"layers_{l}_attention") for l in range(n)]
        self.attention_norm = [norm(f"layers_{l}_attention_norm") for l in range(n)]
        self.intermediate = [layers.Dense(p["ffn"], name=f"layers_{l}_ffn_intermediate") for l in range(n)]
        self.ffn_output = [layers.Dense(p["hidden"], name=f"layers_{l}_ffn_output") for l in range(n)]
        self.ffn_norm = [norm(f"layers_{l}_ffn_norm") for l in range(n)]
        self.pooler = layers.Dense(p["hidden"], activation="tanh", name="pooler")
        self.classifier = layers.Dense(p["classes"], name="classifier")

    def call(self, tokens):
        x = self.embeddings_norm(self.word(tokens) + self.position(keras.ops.arange(tokens.shape[1])))
        for l, attention in enumerate(self.attention):
            x = self.attention_norm[l](x + attention(x, x))
            # Exact (erf) GELU as BERT defines it; keras.activations.gelu defaults to the tanh approximation.
            x = self.ffn_norm[l](x + self.ffn_output[l](keras.activations.gelu(self.intermediate[l](x), approximate=False)))
        return self.classifier(self.pooler(x[:, 0]))


def group_keras_weights(native):
    """{layer: [arrays in set_weights order]} from tensors named `<layer>/<index>`."""
    grouped = {}
    for name, array in native.items():
        layer, index = name.rsplit("/", 1)
        grouped.setdefault(layer, {})[int(index)] = np.asarray(array)
    return {layer: [by_index[i] for i in range(len(by_index))] for layer, by_index in grouped.items()}


def encoder_weights(grouped, p):
    """Folds each encoder layer's query/key/value/output Dense weights into its MultiHeadAttention's
    (kernels [H, heads, head_dim] and [heads, head_dim, H]: a reshape, the head split being contiguous)."""
    heads, hidden = p["heads"], p["hidden"]
    d = hidden // heads
    out = dict(grouped)
    for l in range(p["layers"]):
        prefix = f"layers_{l}_attention"
        mha = []
        for part in ("query", "key", "value"):
            kernel, bias = out.pop(f"{prefix}_{part}")
            mha += [kernel.reshape(hidden, heads, d), bias.reshape(heads, d)]
        kernel, bias = out.pop(f"{prefix}_output")
        out[prefix] = mha + [kernel.reshape(heads, d, hidden), bias]
    return out


def load_keras_weights(model, grouped):
    """set_weights layer by layer; every model layer with weights must be covered, and vice versa."""
    for name, arrays in grouped.items():
        model.get_layer(name).set_weights(arrays)
    uncovered = [l.name for l in model.layers if l.weights and l.name not in grouped]
    if uncovered:
        raise ValueError(f"no Keras-layout weights for layers {uncovered}")


def build_model(family, p, batch, native):
    grouped = group_keras_weights(native)
    if family == "cnn":
        model = resnet(p, batch)
    elif family == "rnn":
        model = lstm_classifier(p, batch)
    else:
        model = Encoder(p)
        model(np.zeros((batch, p["seq"]), dtype=np.int32))  # creates the variables
        grouped = encoder_weights(grouped, p)
    load_keras_weights(model, grouped)
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
    return {"version": tf.__version__, "devices": ["cpu", "cuda"] if usable else ["cpu"], "details": details}


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
        # A TensorFlow user holds NHWC images and int32 ids in host memory; converting the harness'
        # NCHW copy once keeps that layout change out of the timed loop.
        with tf.device("/CPU:0"):
            if "images" in inputs:
                return tf.constant(np.ascontiguousarray(np.transpose(inputs["images"], (0, 2, 3, 1))))
            return tf.constant(inputs["tokens"])

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


def build(req):
    if req.mode not in MODES:
        raise ValueError(f"tensorflow: unknown mode '{req.mode}'; valid modes: {', '.join(MODES)}")
    if req.native_weights is None:
        raise ValueError("tensorflow needs the Keras-layout weights (job field nativeWeightsPath)")
    init_runtime(req)
    if req.device != "cuda":
        # Otherwise TensorFlow would silently place a CPU cell's ops on a visible GPU.
        tf.config.set_visible_devices([], "GPU")
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        model = build_model(req.family, req.params, req.batch_size, req.native_weights)
    placed = {v.value.device for v in model.weights}
    wanted = "GPU" if req.device == "cuda" else "CPU"
    if not all(wanted in d for d in placed):
        raise RuntimeError(f"model variables on {sorted(placed)}, expected all on {wanted}")
    call = lambda x: model(x, training=False)  # noqa: E731
    fn = call if req.mode == "eager" else tf.function(call, jit_compile=req.mode == "xla")
    settings = {
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
        "placement": f"all variables on {wanted}",
    }
    return KerasModel(model, fn, req.mode, req.device, settings)


def peak(req):
    """GEMM via tf.linalg.matmul, copy via tf.multiply(x, 1) (tf.identity may share the buffer);
    each call ends with a small readback so asynchronous devices finish inside the timed call."""
    from .peak import figures, median_ms

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

"""The precision axis in the TensorFlow engine (workloads/precision.ts; the mechanisms are declared in
harness/engines/tensorflow.ts `precisions` and read here from the manifest).

- bf16 / fp16: a Keras mixed-precision dtype policy ('mixed_bfloat16' / 'mixed_float16') given to
  every layer of the one model as it is built (each family's `model(..., dtype=policy)`), never set
  globally, so nothing else built in the process inherits it: variables stay float32, layers compute
  in the reduced type, and the logits go through `Float32Logits`, the float32 layer at the end that
  Keras' mixed-precision guide puts there.
- tf32: tf.config.experimental.enable_tensor_float_32_execution(True) on CUDA. TensorFlow turns TF32
  on by default on Ampere and newer GPUs, so every other CUDA cell turns it off: fp32 is fp32.

What a model computes in is then observed, never inferred from what was asked (`observe`): the
compute dtype of its matrix layers (Dense, EinsumDense, Conv2D, LSTM, Embedding), the dtype of the
logits before the float32 cast as the real forward pass produced them, the dtypes of the matrix
ops in the traced graph (tf.function modes), and for tf32 the setting read back from TensorFlow."""

import collections
import re

import keras
import tensorflow as tf

from ..engine import EngineUnavailable, check_precision
from ..manifest import ENGINES

#: Precision -> the Keras dtype policy its model is built with (None: the default, float32).
POLICIES = {"fp32": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16", "tf32": None, "int8": None}
#: A layer's compute dtype -> the precision it is.
DTYPE_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
#: The layers whose compute dtype says what the model's products run in.
MATRIX_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv2D, keras.layers.LSTM, keras.layers.Embedding)
#: Matrix-product ops of a traced graph (their attr T is the dtype the product runs in).
MATRIX_OPS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D"}
#: XLA's element types -> TensorFlow's dtype names.
HLO_TYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "f64": "float64"}
#: A matrix product in optimized HLO: a dot or convolution instruction, or a custom call into a GEMM
#: or convolution library (cuBLAS, cuDNN, oneDNN); group 1 is its (first) result element type.
HLO_PRODUCT = re.compile(r"= \(?(\w+)\[[^=]*?\b(?:dot|convolution)\(|= \(?(\w+)\[[^=]*?custom-call\(.*custom_call_target=\"[^\"]*(?:gemm|conv|matmul)[^\"]*\"")
#: TF32 needs tensor cores of compute capability 8.0 (Ampere) or newer.
TF32_MIN_CAPABILITY = (8, 0)


class Float32Logits(keras.layers.Layer):
    """The logits cast to float32: the last layer of a mixed-precision model (float32 policy), as
    Keras' mixed-precision guide ends one, so the softmax and whatever reads the logits see float32.
    It records the dtype it is given (`seen`: in eager mode on every call, in a tf.function when it
    traces), which is the dtype the model's last product really produced."""

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        # Keras would cast the input to float32 before `call`, hiding the dtype we want to see.
        self._convert_input_args = False
        self.seen = None

    def call(self, logits):
        self.seen = tf.as_dtype(logits.dtype).name
        return tf.cast(logits, tf.float32)

    def compute_output_shape(self, shape):
        return shape


def policy_for(req):
    """The Keras dtype policy the request's model is built with: the precision's, except under the
    planted fallback (test only), which builds without it."""
    return None if req.plant_precision_fallback else POLICIES[req.precision]


def check(req):
    """Refuses, in one line, a precision the engine's declaration does not allow for this cell."""
    check_precision("tensorflow", req)


def mechanism(precision):
    """The declared mechanism (the settings name it), or None for fp32."""
    way = ENGINES["tensorflow"]["precisions"].get(precision)
    return way["mechanism"] if isinstance(way, dict) else None


def gpu_capability():
    """The first GPU's compute capability (major, minor), or None when TensorFlow does not say."""
    gpus = tf.config.list_physical_devices("GPU")
    capability = gpus and tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(capability) if capability else None


def set_tf32(req):
    """On CUDA, TF32 on for a tf32 cell and off for every other (TensorFlow's default is on, which
    would make an fp32 cell's products TF32 on Ampere and newer); a tf32 cell on an older GPU is
    skipped. Before any op runs (the setting is read when kernels are chosen)."""
    if req.device != "cuda":
        return
    want = req.precision == "tf32" and not req.plant_precision_fallback
    if want:
        capability = gpu_capability()
        if capability is not None and capability < TF32_MIN_CAPABILITY:
            raise EngineUnavailable(
                f"TF32 needs an NVIDIA GPU of compute capability 8.0 (Ampere) or newer; this one is {capability[0]}.{capability[1]}",
                "run tf32 cells on an Ampere or newer GPU",
            )
    tf.config.experimental.enable_tensor_float_32_execution(want)


def matrix_layers(model):
    """The model's matrix layers, nested ones included (MultiHeadAttention's EinsumDense, LSTM's)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, MATRIX_LAYERS)]


def logits_cast(model):
    """The model's Float32Logits layer, or None (a float32 model has none)."""
    return next((layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, Float32Logits)), None)


def forget_build_time_calls(model):
    """Clears what Float32Logits saw while Keras built the model symbolically, so that `seen` can
    only come from a real forward pass."""
    cast = logits_cast(model)
    if cast is not None:
        cast.seen = None


def graph_matrix_dtypes(concrete):
    """{dtype: count} of the matrix-product ops in a traced function's graph and the functions it
    calls (an LSTM's loop body is one)."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    return collections.Counter(tf.as_dtype(node.attr["T"].type).name for node in nodes if node.op in MATRIX_OPS and "T" in node.attr)


def hlo_product_dtypes(hlo):
    """{dtype: count} of the matrix products XLA really emits, from a function's optimized HLO text
    (`experimental_get_compiler_ir(...)(stage="optimized_hlo")`): what runs after XLA's own
    rewrites, e.g. its CPU compiler's, which turns a bf16 dot into converts around an f32 one."""
    found = (m.group(1) or m.group(2) for m in HLO_PRODUCT.finditer(hlo))
    return collections.Counter(HLO_TYPES.get(t, t) for t in found)


def counted(counter):
    return ", ".join(f"{n} {dtype}" for dtype, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def observe(model, logits_dtype, device, concrete=None, hlo=None):
    """What the model computes in, from TensorFlow's own dtypes: {"used", "evidence"}.

    `logits_dtype` is the model's output dtype as the forward pass produced it; `concrete` the
    traced function (tf.function modes; None when eager); `hlo` its optimized HLO (xla). The precision is the one every matrix
    layer computes in and the forward pass's pre-cast logits show; for float32 on CUDA it is tf32
    when TF32 is on, read back from TensorFlow, on a GPU that has it. Layers, logits and graph that
    disagree are an error, not a precision."""
    layers = matrix_layers(model)
    compute = collections.Counter(layer.compute_dtype for layer in layers)
    variables = collections.Counter(v.dtype for layer in layers for v in layer.weights)
    cast = logits_cast(model)
    if cast is not None:
        if cast.seen is None:
            raise RuntimeError("tensorflow: no forward pass has run through the model's float32 logits cast yet, nothing to observe")
        pre_cast, tensor = cast.seen, f"logits {cast.seen} before the float32 cast ({logits_dtype} after)"
    else:
        pre_cast, tensor = logits_dtype, f"logits {logits_dtype} (no cast layer)"
    parts = [
        f"matrix layers (Dense, EinsumDense, Conv2D, LSTM, Embedding): compute dtype {counted(compute)}, variables {counted(variables)}",
        f"forward pass: {tensor}",
    ]
    seen = set(compute) | {pre_cast}
    if concrete is not None:
        ops = graph_matrix_dtypes(concrete)
        parts.append(f"traced graph: MatMul/Einsum/Conv2D ops {counted(ops) or 'none found'}")
        seen |= set(ops)
    if hlo is not None:
        products = hlo_product_dtypes(hlo)
        parts.append(f"XLA optimized HLO: matrix products {counted(products) or 'none found'}")
        seen |= set(products)
    if len(seen) != 1 or pre_cast not in DTYPE_PRECISION:
        raise RuntimeError(f"tensorflow: the model does not compute in one precision: {'; '.join(parts)}")
    used = DTYPE_PRECISION[pre_cast]
    if used == "fp32" and device == "cuda":
        enabled = tf.config.experimental.tensor_float_32_execution_enabled()
        capability = gpu_capability()
        has_tf32 = capability is not None and capability >= TF32_MIN_CAPABILITY
        parts.append(f"TF32 execution {'enabled' if enabled else 'disabled'} (read back), GPU compute capability {capability}")
        used = "tf32" if enabled and has_tf32 else "fp32"
    return {"used": used, "evidence": "; ".join(parts)}

"""BERT-style encoder in Keras: a subclassed model on keras MultiHeadAttention.

Fixed shape: called on tokens [batch, seq], no mask. Shape stream (`stream=True`): called on
(tokens [B, L], lengths [B]) with any B and L <= seq; positions are 0..L-1 (the position embedding
taken at the runtime length) and each attention layer gets the padding mask
`tf.sequence_mask(lengths, L)` as its `attention_mask` over keys: Keras sets the scores of masked
keys to a large negative number before the softmax (as the canonical -1e9 bias does, their weights
are exactly 0), so a real token never attends to the right padding and the first token's pooled
output, hence the logits, are the unpadded row's."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .precision import Float32Logits

#: LayerNorm epsilon of the canonical encoder (BERT's).
LAYER_NORM_EPS = 1e-12


class Encoder(keras.Model):
    """BERT-style encoder; layer names are the Keras-layout names (MultiHeadAttention takes the
    four attention Dense layers of one encoder layer, reshaped). `dtype`: the Keras dtype policy of
    every layer (None: float32); a mixed one ends the model with the float32 logits cast."""

    def __init__(self, p, dtype=None):
        super().__init__(name="encoder", dtype=dtype)
        norm = lambda name: layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=name, dtype=dtype)  # noqa: E731
        self.word = layers.Embedding(p["vocab"], p["hidden"], name="embeddings_word", dtype=dtype)
        self.position = layers.Embedding(p["seq"], p["hidden"], name="embeddings_position", dtype=dtype)
        self.embeddings_norm = norm("embeddings_norm")
        n, heads = p["layers"], p["heads"]
        self.attention = [layers.MultiHeadAttention(heads, p["hidden"] // heads, name=f"layers_{l}_attention", dtype=dtype) for l in range(n)]
        self.attention_norm = [norm(f"layers_{l}_attention_norm") for l in range(n)]
        self.intermediate = [layers.Dense(p["ffn"], name=f"layers_{l}_ffn_intermediate", dtype=dtype) for l in range(n)]
        self.ffn_output = [layers.Dense(p["hidden"], name=f"layers_{l}_ffn_output", dtype=dtype) for l in range(n)]
        self.ffn_norm = [norm(f"layers_{l}_ffn_norm") for l in range(n)]
        self.pooler = layers.Dense(p["hidden"], activation="tanh", name="pooler", dtype=dtype)
        self.classifier = layers.Dense(p["classes"], name="classifier", dtype=dtype)
        self.logits_float32 = None if dtype is None else Float32Logits(name="logits_float32")

    def call(self, inputs):
        """`tokens`, or (tokens, lengths) in a shape stream."""
        tokens, lengths = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        # The runtime length (a traced function may have an unknown one).
        length = tf.shape(tokens)[1]
        x = self.embeddings_norm(self.word(tokens) + self.position(tf.range(length)))
        # [B, 1, L]: one row of key positions per batch row, the same for every query.
        mask = None if lengths is None else tf.sequence_mask(lengths, length)[:, None, :]
        for l, attention in enumerate(self.attention):
            x = self.attention_norm[l](x + attention(x, x, attention_mask=mask))
            # Exact (erf) GELU as BERT defines it; keras.activations.gelu defaults to the tanh approximation.
            x = self.ffn_norm[l](x + self.ffn_output[l](keras.activations.gelu(self.intermediate[l](x), approximate=False)))
        logits = self.classifier(self.pooler(x[:, 0]))
        return logits if self.logits_float32 is None else self.logits_float32(logits)


def model(p, batch, stream=False, dtype=None):
    encoder = Encoder(p, dtype)
    tokens = np.zeros((batch, p["seq"]), dtype=np.int32)
    # Creates the variables.
    encoder((tokens, np.full(batch, p["seq"], dtype=np.int32)) if stream else tokens)
    return encoder


def layer_weights(grouped, p):
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


#: MultiHeadAttention's weights in `layer.weights` order: (file layer suffix, kernel or bias) per index.
MHA_PARTS = [(part, kind) for part in ("query", "key", "value", "output") for kind in ("kernel", "bias")]


def file_weights(layers, p):
    """The exact inverse of layer_weights: {layer: {index: array}} of the model's layers (index in
    `layer.weights`; a subset is fine, e.g. only the trainable ones) -> {`<layer>/<index>`: array}
    in the Keras-layout file's naming and shapes. Each MultiHeadAttention goes back to its four
    Dense layers (kernels [H, H], biases [H]: reshapes, the head split being contiguous)."""
    hidden = p["hidden"]
    attention = {f"layers_{l}_attention" for l in range(p["layers"])}
    out = {}
    for layer, arrays in layers.items():
        for i, a in arrays.items():
            if layer in attention:
                part, kind = MHA_PARTS[i]
                shape = (hidden, hidden) if kind == "kernel" else (hidden,)
                out[f"{layer}_{part}/{0 if kind == 'kernel' else 1}"] = np.reshape(a, shape)
            else:
                out[f"{layer}/{i}"] = a
    return out

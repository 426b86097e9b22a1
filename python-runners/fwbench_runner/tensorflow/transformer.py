"""BERT-style encoder in Keras: a subclassed model on keras MultiHeadAttention."""

import keras
import numpy as np
from keras import layers

#: LayerNorm epsilon of the canonical encoder (BERT's).
LAYER_NORM_EPS = 1e-12


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


def model(p, batch):
    encoder = Encoder(p)
    encoder(np.zeros((batch, p["seq"]), dtype=np.int32))  # creates the variables
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

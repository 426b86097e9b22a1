"""LSTM classifier in Keras: Embedding -> LSTM (stacked) -> Dense.

Fixed shape: a functional model on [batch, seq] tokens. Shape stream (`stream=True`): the same
layers on tokens [B, L] (any B, any L) plus lengths [B]; a mask from `tf.sequence_mask(lengths, L)`
goes to every LSTM layer, Keras' own variable-length support: at a masked step an LSTM keeps its
state (and output) unchanged, so each layer's sequence equals the unpadded row's at real steps, the
next layer skips the same steps, and the last layer returns the state of the row's last real step."""

import keras
import tensorflow as tf
from keras import layers

from .precision import Float32Logits


class SequenceMask(layers.Layer):
    """True at a row's real steps: tf.sequence_mask(lengths, L) with L the tokens' runtime length."""

    def call(self, tokens, lengths):
        return tf.sequence_mask(lengths, tf.shape(tokens)[1])

    def compute_output_shape(self, tokens_shape, lengths_shape):
        return tokens_shape


def model(p, batch, stream=False, dtype=None):
    """`dtype`: the Keras dtype policy of every layer (None: float32); a mixed one ends the model
    with the float32 logits cast."""
    if stream:
        tokens = keras.Input((None,), dtype="int32", name="tokens")
        lengths = keras.Input((), dtype="int32", name="lengths")
        mask = SequenceMask(name="sequence_mask")(tokens, lengths)
    else:
        tokens = keras.Input((p["seq"],), batch_size=batch, dtype="int32", name="tokens")
        mask = None
    x = layers.Embedding(p["vocab"], p["embed"], name="embedding", dtype=dtype)(tokens)
    for l in range(p["layers"]):
        # Keras' defaults (tanh, sigmoid recurrent activation) are the canonical LSTM's.
        x = layers.LSTM(p["hidden"], return_sequences=l < p["layers"] - 1, name=f"lstm_{l}", dtype=dtype)(x, mask=mask)
    inputs = [tokens, lengths] if stream else tokens
    logits = layers.Dense(p["classes"], name="fc", dtype=dtype)(x)
    return keras.Model(inputs, logits if dtype is None else Float32Logits(name="logits_float32")(logits), name="lstm_classifier")


def layer_weights(grouped, p):
    """Every layer's weights as the Keras-layout file holds them."""
    return grouped


def file_weights(layers, p):
    """The inverse of layer_weights: {layer: {index: array}} of the model's layers (index in
    `layer.weights`) -> {`<layer>/<index>`: array} as the Keras-layout file names them (here the
    same layers, so only the naming)."""
    return {f"{layer}/{i}": a for layer, arrays in layers.items() for i, a in arrays.items()}

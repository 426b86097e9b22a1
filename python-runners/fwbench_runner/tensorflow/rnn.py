"""LSTM classifier in Keras: Embedding -> LSTM (stacked) -> Dense."""

import keras
from keras import layers


def model(p, batch):
    tokens = keras.Input((p["seq"],), batch_size=batch, dtype="int32", name="tokens")
    x = layers.Embedding(p["vocab"], p["embed"], name="embedding")(tokens)
    for l in range(p["layers"]):
        # Keras' defaults (tanh, sigmoid recurrent activation) are the canonical LSTM's.
        x = layers.LSTM(p["hidden"], return_sequences=l < p["layers"] - 1, name=f"lstm_{l}")(x)
    return keras.Model(tokens, layers.Dense(p["classes"], name="fc")(x), name="lstm_classifier")


def layer_weights(grouped, p):
    """Every layer's weights as the Keras-layout file holds them."""
    return grouped


def file_weights(layers, p):
    """The inverse of layer_weights: {layer: {index: array}} of the model's layers (index in
    `layer.weights`) -> {`<layer>/<index>`: array} as the Keras-layout file names them (here the
    same layers, so only the naming)."""
    return {f"{layer}/{i}": a for layer, arrays in layers.items() for i, a in arrays.items()}

"""ResNet in Keras, NHWC, functional, in the keras.applications style; layer names are the
Keras-layout names (kerasName in harness/engines/keras-layout.ts)."""

import keras
from keras import layers

from ..resnet_layout import resnet_layout
from .precision import Float32Logits

#: The canonical model's BatchNorm epsilon (Keras defaults to 1e-3).
BN_EPS = 1e-5


def kname(canonical_prefix):
    """Keras layer name of a canonical prefix, as kerasName in keras-layout.ts."""
    return canonical_prefix.replace(".", "_")


def conv_bn(x, c, dtype):
    # TF's 'same' puts the extra pixel of an odd total padding at the end (stride 2 on even sides),
    # so it equals the canonical symmetric padding only at stride 1; elsewhere pad explicitly.
    same = c.pad > 0 and c.stride == 1 and 2 * c.pad == c.k - 1
    if c.pad > 0 and not same:
        x = layers.ZeroPadding2D(c.pad, name=f"{kname(c.name)}_pad", dtype=dtype)(x)
    x = layers.Conv2D(c.cout, c.k, strides=c.stride, padding="same" if same else "valid", use_bias=False, name=kname(c.name), dtype=dtype)(x)
    return layers.BatchNormalization(axis=-1, epsilon=BN_EPS, name=kname(c.bn), dtype=dtype)(x)


def model(p, batch, stream=False, dtype=None):
    """`dtype`: the Keras dtype policy of every layer (None: float32); a mixed one ends the model
    with the float32 logits cast."""
    if stream:
        raise ValueError("the cnn family has no shape stream: it has no sequence length to vary")
    layout = resnet_layout(p)
    images = keras.Input((p["image"], p["image"], p["channels"]), batch_size=batch, name="images")
    x = layers.ReLU(name="conv1_relu", dtype=dtype)(conv_bn(images, layout.stem, dtype))
    # Zero padding equals PyTorch's -inf padding here: after ReLU every window has a value >= 0.
    x = layers.ZeroPadding2D(1, name="pool1_pad", dtype=dtype)(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1", dtype=dtype)(x)
    for b in layout.blocks:
        y = x
        for i, c in enumerate(b.convs):
            y = conv_bn(y, c, dtype)
            if i < len(b.convs) - 1:
                y = layers.ReLU(name=f"{kname(c.bn)}_relu", dtype=dtype)(y)
        shortcut = conv_bn(x, b.downsample, dtype) if b.downsample else x
        x = layers.ReLU(name=f"{kname(b.prefix)}_out", dtype=dtype)(layers.Add(name=f"{kname(b.prefix)}_add", dtype=dtype)([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="avgpool", dtype=dtype)(x)
    logits = layers.Dense(layout.classes, name="fc", dtype=dtype)(x)
    return keras.Model(images, logits if dtype is None else Float32Logits(name="logits_float32")(logits), name="resnet")


def layer_weights(grouped, p):
    """Every layer's weights as the Keras-layout file holds them."""
    return grouped


def file_weights(layers, p):
    """The inverse of layer_weights: {layer: {index: array}} of the model's layers (index in
    `layer.weights`) -> {`<layer>/<index>`: array} as the Keras-layout file names them (here the
    same layers, so only the naming)."""
    return {f"{layer}/{i}": a for layer, arrays in layers.items() for i, a in arrays.items()}

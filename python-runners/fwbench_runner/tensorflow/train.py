"""Training in the TensorFlow engine: the inference model (same Keras model, same Keras-layout
weights, same device, threads and placement) trained with a custom training loop as a TensorFlow
user writes one: tf.GradientTape around `model(x, training=True)` and the loss, then the optimizer's
`apply_gradients`, the whole step in one Python function that the mode wraps (eager: called as it
is; function: tf.function; xla: tf.function(jit_compile=True)).

The recipe (workloads/training.ts TRAINING, read from the job) maps onto Keras like this:

- Loss: keras.losses.SparseCategoricalCrossentropy(from_logits=True), the mean over the batch of
  the cross-entropy of the logits against the int32 labels.
- Optimizer: keras.optimizers.SGD(learning_rate, momentum), whose update is
  `v <- momentum * v - lr * g; w <- w + v` with v starting at zero. The recipe's (PyTorch's
  torch.optim.SGD) is `buf <- g` at the first step, else `momentum * buf + g`; `w <- w - lr * buf`.
  With a fixed rate, v = -lr * buf at every step (step 1: v = -lr * g = -lr * buf; then
  v' = momentum * (-lr * buf) - lr * g = -lr * (momentum * buf + g) = -lr * buf'), so both move the
  weights identically.
- Weight decay: Keras' `weight_decay` is decoupled (it shrinks the weights beside the update), not
  the recipe's coupled L2, so SGD gets none and the step adds weightDecay * w to every gradient
  before apply_gradients, as torch.optim.SGD(weight_decay=...) does.
- BatchNormalization: batch statistics in training, running ones updated with Keras' momentum
  1 - batchNormMomentum (Keras weighs the old value by `momentum`, PyTorch the new one); epsilon
  stays the canonical 1e-5. Keras updates the running variance with the biased batch variance.

Tensor names: `state()` and the gradients use the Keras-layout file's names and shapes
(`<keras layer>/<index>` in set_weights order): each family's `file_weights` is the inverse of its
`layer_weights` (the transformer folds MultiHeadAttention back into its four Dense layers)."""

import keras
import numpy as np
import tensorflow as tf

from ..engine import Trainer, pick
from . import FAMILIES, MODES, host_inputs, place_model, runtime_settings


def weight_index(model):
    """{id(variable): (layer name, index in layer.weights)} for every variable of the model's layers."""
    return {id(v): (layer.name, i) for layer in model.layers for i, v in enumerate(layer.weights)}


class KerasTrainer(Trainer):
    def __init__(self, model, family, req, settings):
        recipe = req.recipe
        self.model = model
        self.family = family
        self.params = req.params
        self.device = req.device
        self.settings = settings
        #: The file's tensor names, in its order (state() and the gradients follow it).
        self.names = list(req.native_weights)
        self.index = weight_index(model)
        variables = model.trainable_variables
        self.variables = variables
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 1.0 - recipe["batchNormMomentum"]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        optimizer = keras.optimizers.SGD(learning_rate=recipe["learningRate"], momentum=recipe["momentum"])
        # The momentum slots exist before the first (possibly traced) step, as after a user's compile().
        optimizer.build(variables)
        self.optimizer = optimizer
        decay = recipe["weightDecay"]

        def forward_backward(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            # Embedding gradients come as IndexedSlices; coupled weight decay touches every row.
            return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

        def update(grads):
            optimizer.apply_gradients(zip([g + decay * v for g, v in zip(grads, variables, strict=True)], variables, strict=True))

        def train_step(x, y):
            loss, grads = forward_backward(x, y)
            update(grads)
            return loss

        def train_step_with_grads(x, y):
            loss, grads = forward_backward(x, y)
            update(grads)
            return loss, grads

        wrap = pick("tensorflow", "mode", MODES, req.mode)
        # Two functions, so the timed steps return (and, under XLA, materialise) nothing but the
        # loss. Each is traced / compiled on its own first call: the first parity step (with
        # gradients) and the second (without; a job has at least two), so the timed loop never is.
        self.train_step = wrap(train_step)
        self.train_step_with_grads = wrap(train_step_with_grads)
        if req.device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def session(self):
        return tf.device("/GPU:0" if self.device == "cuda" else "/CPU:0")

    def prepare(self, inputs, labels):
        labels = labels["labels"] if isinstance(labels, dict) else labels
        with tf.device("/CPU:0"):
            return host_inputs(inputs), tf.constant(np.asarray(labels, dtype=np.int32))

    def step(self, feed, want_grads):
        x, y = feed
        if not want_grads:
            # .numpy() waits for the step and copies the loss to host memory: the one readback.
            return float(self.train_step(x, y).numpy()), None
        loss, grads = self.train_step_with_grads(x, y)
        return float(loss.numpy()), self.file_named(zip(self.variables, grads, strict=True))

    def file_named(self, pairs):
        """{file name: ndarray} of (variable, value) pairs, in the file's order."""
        layers = {}
        for v, value in pairs:
            layer, i = self.index[id(v)]
            layers.setdefault(layer, {})[i] = np.asarray(value)
        named = self.family.file_weights(layers, self.params)
        unknown = set(named) - set(self.names)
        if unknown:
            raise RuntimeError(f"tensors {sorted(unknown)} are not in the Keras-layout file")
        return {name: named[name] for name in self.names if name in named}

    def state(self):
        state = self.file_named((v, v.numpy()) for v in self.model.weights)
        if len(state) != len(self.names):
            raise RuntimeError(f"state lacks {sorted(set(self.names) - set(state))}")
        return state

    def peak_device_bytes(self):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] if self.device == "cuda" else None


def build_trainer(req):
    family = pick("tensorflow", "workload family", FAMILIES, req.family)
    pick("tensorflow", "mode", MODES, req.mode)
    if req.recipe is None:
        raise ValueError("tensorflow training needs the job's training recipe")
    model, placed = place_model(req)
    settings = {
        **runtime_settings(req, placed),
        "optimizer": (
            f"keras.optimizers.SGD(learning_rate={req.recipe['learningRate']}, momentum={req.recipe['momentum']})"
            f" + coupled L2 {req.recipe['weightDecay']} * w added to each gradient"
        ),
        "loss": "keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
        "gradients": "tf.GradientTape",
        "batchNormMomentum": f"Keras momentum {1.0 - req.recipe['batchNormMomentum']:g}",
    }
    with tf.device("/GPU:0" if req.device == "cuda" else "/CPU:0"):
        return KerasTrainer(model, family, req, settings)

"""GPT-2-style decoder in Keras layers and tf ops, and its greedy generators (workloads/decoder.ts,
workloads/generate.ts). The decoder family only generates (`--tasks generate`): it has no Keras
layout of its own (harness/engines/keras-layout.ts), so `Decoder` builds its layers from the
canonical weights directly. Keras' MultiHeadAttention has no key/value cache, so attention is
written with tf ops, as TensorFlow users write a cached GPT-2 (Hugging Face's TFGPT2, KerasNLP's
CachedMultiHeadAttention).

How each mode keeps the cache (`build_generator`):
- `eager`: a growing cache, each layer's keys and values `tf.concat`-ed with the new position's.
- `function` / `xla`: `tf.function` (jit_compile for xla) over a cache preallocated for
  promptLength + newTokens positions: one tf.Variable [batch, heads, P+N, head_dim] per layer's keys
  and values, written in place at the step's positions (`cache[:, :, start:start+T].assign`; under
  xla by XLA's DynamicUpdateSlice, keras.ops.slice_update's op, which takes `start` at run time), the
  attention masked to the positions up to the query's own. The position is a tensor input, so there
  is one trace (and XLA compilation) for the prefill's shape and one for a decode step's, however
  many steps follow.
- `function-signature` / `function-relaxed`: the growing cache under tf.function with an
  input_signature whose cache-length dims are None, or with reduce_retracing=True.
Without a cache (`none`), every step runs the whole sequence so far; function and xla keep one graph
shape by running a [batch, P+N] token buffer padded on the right and taking the logits at the
current position (causal attention makes the padding invisible to it).

Every step ends in the framework: the argmax of the step's logits is taken in TensorFlow, on the
model's device, and only the chosen ids are read back to the host (the logits when asked)."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tensorflow.compiler.tf2xla.python.xla import dynamic_update_slice

from ..engine import Generator

#: workloads/decoder.ts DECODER_NORM_EPS.
LAYER_NORM_EPS = 1e-5
#: The modes that keep one graph shape per kind of step (FixedGenerator); the others grow the cache (GrowingGenerator).
FIXED_MODES = ("function", "xla")
#: Why build() / build_trainer() refuse this family (the orchestrator never sends such a cell).
GENERATES_ONLY = "tensorflow: the decoder family generates text (--tasks generate); it has no inference or training cells"


class Decoder:
    """The decoder's Keras layers with the canonical weights set, and its forward pass over new
    tokens at given positions. `remember(layer, keys, values)` is how a mode keeps a cache: it takes
    the new positions' keys and values [batch, heads, T, head_dim] and returns those attended to,
    every position from 0 ([batch, heads, S, head_dim]); positions a query may not see (later than
    its own, or not written yet) are masked."""

    def __init__(self, weights, p):
        self.heads, self.hidden = p["heads"], p["hidden"]
        self.head_dim = self.hidden // self.heads
        self.layers = p["layers"]
        self.word = self.embedding("embeddings_word", weights["embeddings.word"])
        self.position = self.embedding("embeddings_position", weights["embeddings.position"])
        self.norm1, self.norm2, self.query, self.key, self.value, self.output, self.intermediate, self.ffn_output = ([] for _ in range(8))
        for l in range(self.layers):
            prefix = f"layers.{l}"
            self.norm1.append(self.norm(f"{prefix}.norm1", weights))
            for part in ("query", "key", "value", "output"):
                getattr(self, part).append(self.dense(f"{prefix}.attention.{part}", weights))
            self.norm2.append(self.norm(f"{prefix}.norm2", weights))
            self.intermediate.append(self.dense(f"{prefix}.ffn.intermediate", weights))
            self.ffn_output.append(self.dense(f"{prefix}.ffn.output", weights))
        self.final_norm = self.norm("final_norm", weights)
        # Tied (GPT-2): the logits are the final states against the word embedding itself.
        self.lm_head = self.dense("lm_head", weights, bias=False) if p["head"] == "untied" else None

    @staticmethod
    def embedding(name, table):
        layer = layers.Embedding(*table.shape, name=name)
        layer.build()
        layer.set_weights([table])
        return layer

    @staticmethod
    def dense(name, weights, bias=True):
        """A Dense layer of the canonical linear `name` (weight [out, in]: the kernel is its transpose)."""
        weight = weights[f"{name}.weight"]
        layer = layers.Dense(weight.shape[0], use_bias=bias, name=name.replace(".", "_"))
        layer.build((None, weight.shape[1]))
        layer.set_weights([weight.T] + ([weights[f"{name}.bias"]] if bias else []))
        return layer

    @staticmethod
    def norm(name, weights):
        weight = weights[f"{name}.weight"]
        layer = layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=name.replace(".", "_"))
        layer.build((None, weight.shape[0]))
        layer.set_weights([weight, weights[f"{name}.bias"]])
        return layer

    @property
    def variables(self):
        everything = [self.word, self.position, self.final_norm, *self.norm1, *self.norm2]
        everything += [*self.query, *self.key, *self.value, *self.output, *self.intermediate, *self.ffn_output]
        return [v for layer in everything + ([self.lm_head] if self.lm_head else []) for v in layer.weights]

    def split_heads(self, x):
        """[B, T, hidden] -> [B, heads, T, head_dim] (contiguous head split)."""
        shape = tf.shape(x)
        return tf.transpose(tf.reshape(x, [shape[0], shape[1], self.heads, self.head_dim]), [0, 2, 1, 3])

    def merge_heads(self, x):
        shape = tf.shape(x)
        return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [shape[0], shape[2], self.hidden])

    def states(self, tokens, start, remember):
        """Final hidden states [B, T, hidden] (before the final norm) of `tokens` [B, T] at positions
        start..start+T-1, each layer's keys and values kept by `remember`."""
        positions = start + tf.range(tf.shape(tokens)[1])
        x = self.word(tokens) + self.position(positions)
        for l in range(self.layers):
            h = self.norm1[l](x)
            q, k, v = (self.split_heads(proj[l](h)) for proj in (self.query, self.key, self.value))
            keys, values = remember(l, k, v)
            scores = tf.matmul(q, keys, transpose_b=True) / math.sqrt(self.head_dim)
            # [T, S]: a query sees the keys at its own position and before (causal); the rest (the
            # future, or a preallocated cache's positions not written yet) get exactly zero weight.
            visible = tf.range(tf.shape(keys)[2])[None, :] <= positions[:, None]
            scores = tf.where(visible, scores, -np.inf)
            x = x + self.output[l](self.merge_heads(tf.matmul(tf.nn.softmax(scores), values)))
            h = self.norm2[l](x)
            # GELU (erf), as GPT-2's canonical math; keras.activations.gelu defaults to the tanh approximation.
            x = x + self.ffn_output[l](keras.activations.gelu(self.intermediate[l](h), approximate=False))
        return x

    def logits(self, last):
        """Logits [B, vocab] of final hidden states [B, hidden]: the LM head at one position only."""
        h = self.final_norm(last)
        return self.lm_head(h) if self.lm_head is not None else tf.matmul(h, self.word.embeddings, transpose_b=True)


def choose(logits):
    """The greedy step, in TensorFlow: each row's argmax as the next input tokens [B, 1] (int32)."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)[:, None]


def no_cache(l, k, v):
    """`remember` of a full forward pass: the keys and values of the positions just computed."""
    return k, v


def read_back(step, want_logits):
    """The chosen ids read back to the host (int32 [B]) and the logits when asked (float32 [B, V])."""
    tokens, logits = step
    return tokens.numpy()[:, 0], logits.numpy() if want_logits else None


class TensorFlowGenerator(Generator):
    """What every mode's generator shares: the device scope, the prepared prompts, the counters.
    `functions` are the tf.function objects it calls (empty when eager)."""

    def __init__(self, decoder, device, settings, functions):
        self.decoder = decoder
        self.device = device
        self.settings = settings
        self.functions = functions
        if device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def session(self):
        return tf.device("/GPU:0" if self.device == "cuda" else "/CPU:0")

    def prepare(self, tokens):
        """The prompts as a TensorFlow user holds them: an int32 tensor in host memory."""
        with tf.device("/CPU:0"):
            return tf.constant(np.asarray(tokens, dtype=np.int32))

    def compile_count(self):
        """Traces so far of the generator's tf.functions, summed (each XLA compilation follows one); None when eager."""
        return sum(f.experimental_get_tracing_count() for f in self.functions) if self.functions else None

    def peak_device_bytes(self):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] if self.device == "cuda" else None


class GrowingGenerator(TensorFlowGenerator):
    """The cache (kv) or the sequence (none) grows by a position every step: eager, and the
    tf.function modes whose shape options decide what a new cache length costs. `wrap(call,
    signature)` turns the step into what the mode runs (the call itself when eager)."""

    def __init__(self, decoder, batch, cache, wrap, device, settings):
        d = decoder
        self.cache = cache
        if cache == "kv":

            def step(tokens, past):
                """Logits and next tokens of `tokens` [B, T] after the cached positions `past`
                (each layer's keys then values, [B, heads, S, head_dim]); the grown cache."""
                grown = []

                def remember(l, k, v):
                    keys, values = (tf.concat([past[2 * l + i], new], axis=2) for i, new in enumerate((k, v)))
                    grown.extend((keys, values))
                    return keys, values

                logits = d.logits(d.states(tokens, tf.shape(past[0])[2], remember)[:, -1])
                return choose(logits), logits, grown

            # Batch and cache length None: one trace for the prefill (an empty cache) and every decode step.
            cache_specs = [tf.TensorSpec([None, d.heads, None, d.head_dim], tf.float32, name=f"cache_{l // 2}_{'kv'[l % 2]}") for l in range(2 * d.layers)]
            signature = [tf.TensorSpec([None, None], tf.int32, name="tokens"), cache_specs]
            with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
                self.empty = [tf.zeros([batch, d.heads, 0, d.head_dim]) for _ in range(2 * d.layers)]
        else:

            def step(tokens):
                """Logits and next tokens after the whole sequence `tokens` [B, S]; the sequence grown by them."""
                logits = d.logits(d.states(tokens, 0, no_cache)[:, -1])
                chosen = choose(logits)
                return chosen, logits, tf.concat([tokens, chosen], axis=1)

            signature = [tf.TensorSpec([None, None], tf.int32, name="tokens")]
        self.signature = signature
        self.step = wrap(step, signature)
        super().__init__(decoder, device, settings, [] if self.step is step else [self.step])
        self.state = None

    def run(self, *args):
        chosen, logits, self.state = self.step(*args)
        self.chosen = chosen
        return chosen, logits

    def prefill(self, feed, want_logits):
        return read_back(self.run(feed, self.empty) if self.cache == "kv" else self.run(feed), want_logits)

    def decode(self, want_logits):
        return read_back(self.run(self.chosen, self.state) if self.cache == "kv" else self.run(self.state), want_logits)


class FixedGenerator(TensorFlowGenerator):
    """One graph shape per kind of step (function, xla): the kv cache preallocated for
    promptLength + newTokens positions as tf.Variables written in place, or (none) a token buffer of
    that length padded on the right. The position is a tensor input, never a Python value, so a
    decode step's trace serves every decode step."""

    def __init__(self, decoder, batch, generation, options, device, settings):
        d = decoder
        self.cache = generation["cache"]
        self.batch, self.prompt_length = batch, generation["promptLength"]
        length = generation["promptLength"] + generation["newTokens"]
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            self.zero = tf.constant(0, tf.int32)
            if self.cache == "kv":
                shape = [batch, d.heads, length, d.head_dim]
                self.kv = [tf.Variable(tf.zeros(shape), trainable=False, name=f"cache_{l // 2}_{'kv'[l % 2]}") for l in range(2 * d.layers)]
        xla = bool(options.get("jit_compile"))
        if self.cache == "kv":

            def step(tokens, start):
                """Writes the keys and values of `tokens` [B, T] at positions start..start+T-1 into
                the cache and attends over all of it, masked; the logits at the last new position,
                the next tokens and the position after them."""
                count = tf.shape(tokens)[1]

                def remember(l, k, v):
                    for cache, new in zip(self.kv[2 * l : 2 * l + 2], (k, v), strict=True):
                        if xla:
                            # keras.ops.slice_update's op: XLA's DynamicUpdateSlice takes the start
                            # as a runtime value. A strided-slice assign makes XLA treat `start` as a
                            # compile-time constant and compile once per position, which the tracing
                            # count does not show (docs/generation.md).
                            cache.assign(dynamic_update_slice(cache, new, tf.stack([self.zero, self.zero, start, self.zero])))
                        else:
                            # tf.function runs the strided-slice assign in place, with no copy of the cache.
                            cache[:, :, start : start + count, :].assign(new)
                    return self.kv[2 * l].value(), self.kv[2 * l + 1].value()

                logits = d.logits(d.states(tokens, start, remember)[:, -1])
                return choose(logits), logits, start + count

            self.prefill_fn = self.decode_fn = tf.function(step, **options)
            functions = [self.prefill_fn]
        else:
            pad = generation["newTokens"]

            def step(buffer, index):
                """The full causal forward over the padded buffer [B, P+N], the logits at `index`
                (the last real position), the next tokens written at index + 1."""
                logits = d.logits(tf.gather(d.states(buffer, 0, no_cache), index, axis=1))
                chosen = choose(logits)
                at = tf.stack([tf.range(tf.shape(buffer)[0]), tf.fill([tf.shape(buffer)[0]], index + 1)], axis=1)
                return chosen, logits, tf.tensor_scatter_nd_update(buffer, at, chosen[:, 0]), index + 1

            self.prefill_fn = tf.function(lambda prompt: step(tf.pad(prompt, [[0, 0], [0, pad]]), self.prompt_length - 1), **options)
            self.decode_fn = tf.function(step, **options)
            functions = [self.prefill_fn, self.decode_fn]
        super().__init__(decoder, device, settings, functions)
        self.state = None

    def prefill(self, feed, want_logits):
        if tuple(feed.shape) != (self.batch, self.prompt_length):
            raise ValueError(f"tensorflow: prompts of shape {list(feed.shape)}; this generator was built for [{self.batch}, {self.prompt_length}]")
        if self.cache == "kv":
            self.chosen, logits, self.state = self.prefill_fn(feed, self.zero)
        else:
            self.chosen, logits, *self.state = self.prefill_fn(feed)
        return read_back((self.chosen, logits), want_logits)

    def decode(self, want_logits):
        if self.cache == "kv":
            self.chosen, logits, self.state = self.decode_fn(self.chosen, self.state)
        else:
            self.chosen, logits, *self.state = self.decode_fn(*self.state)
        return read_back((self.chosen, logits), want_logits)


#: How each cache is kept, as the settings say it ({layout: {cache: words}}).
CACHE_WORDS = {
    "growing": {
        "kv": "growing: each layer's keys and values tf.concat-ed with the new position's every step",
        "none": "none: the whole sequence so far recomputed every step, its last position's logits",
    },
    "fixed": {
        "kv": (
            "preallocated: a tf.Variable [batch, heads, promptLength+newTokens, head_dim] per layer's keys and values,"
            " written at the step's positions (a strided-slice assign; DynamicUpdateSlice under xla),"
            " attention masked to positions <= the query's"
        ),
        "none": (
            "none: a [batch, promptLength+newTokens] token buffer padded on the right, the whole buffer recomputed"
            " every step (causal), the logits at the current position"
        ),
    },
}

"""GPT-2-style decoder in PyTorch (workloads/decoder.ts), written as PyTorch's generation code
writes one (Hugging Face's GPT-2, gpt-fast): nn.Embedding, pre-LayerNorm blocks on nn.Linear and
F.scaled_dot_product_attention, and a key/value cache the caller holds, in one of two shapes:

- growing (`past`, a tuple of (keys, values) per layer, each [batch, heads, length, d]): a step
  concatenates its own keys and values (torch.cat) and returns the longer cache, as Hugging Face's
  `past_key_values` do. Positions follow from the cache's length.
- static (`StaticCache`): each layer's keys and values preallocated for every position a
  generation can reach, [batch, heads, positions, d]; a step writes its rows at its positions
  (index_copy_, the positions a tensor) and attends over the whole buffer with a mask that keeps
  the keys at or before each query's position. The shapes never change, so a torch.compile'd step
  keeps one graph per input length (the prefill's, a decode step's) whatever the position.

Without a cache (`use_cache=False`) a call runs the causal forward over the whole sequence it is
given. `step` is the unit a generation loop calls (and torch.compile compiles): the forward, the
logits of one position and their argmax, all on the model's device."""

import torch
import torch.nn.functional as F
from torch import nn

#: workloads/decoder.ts DECODER_NORM_EPS (GPT-2's).
LAYER_NORM_EPS = 1e-5


class StaticCache:
    """Keys and values of every layer, preallocated [batch, heads, positions, d] and written in place.
    Rows beyond the current position hold zeros or an earlier generation's values; the attention
    mask hides them, so a new generation needs no clearing."""

    def __init__(self, p, batch, positions, device):
        heads = p["heads"]
        shape = (batch, heads, positions, p["hidden"] // heads)
        self.layers = [(torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in range(p["layers"])]

    def nbytes(self):
        """The bytes of every layer's keys and values."""
        return sum(k.nelement() * k.element_size() * 2 for k, _ in self.layers)


class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(hidden, hidden) for _ in range(4))

    def forward(self, x, positions, past, static):
        """Causal self-attention of `x` [batch, length, hidden] at `positions` [length]. `past`:
        None (no earlier positions) or this layer's (keys, values): the growing cache's, or when
        `static` the StaticCache's buffers, written in place. Returns (output, this layer's cache)."""
        batch, length, hidden = x.shape
        # Contiguous head split, as the canonical layout defines it: head h owns features h*d..h*d+d-1.
        split = lambda t: t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if past is None:
            # The whole sequence at once (a prefill, or no cache): SDPA's own causal mask.
            context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            present = (k, v)
        elif static:
            keys, values = past
            keys.index_copy_(2, positions, k)
            values.index_copy_(2, positions, v)
            # Every cached position up to the query's own: earlier rows of this generation, never later or stale ones.
            visible = torch.arange(keys.shape[2], device=x.device)[None, :] <= positions[:, None]
            context = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
            present = past
        else:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            # One new token sees every cached key; several (a prompt continued) see up to their own position.
            visible = None if length == 1 else torch.arange(k.shape[2], device=x.device)[None, :] <= positions[:, None]
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
            present = (k, v)
        return self.output(context.transpose(1, 2).reshape(batch, length, hidden)), present


class FeedForward(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)

    def forward(self, x):
        # Exact (erf) GELU, F.gelu's default, as the canonical decoder defines it.
        return self.output(F.gelu(self.intermediate(x)))


class DecoderLayer(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.norm1 = nn.LayerNorm(p["hidden"], eps=LAYER_NORM_EPS)
        self.attention = Attention(p["hidden"], p["heads"])
        self.norm2 = nn.LayerNorm(p["hidden"], eps=LAYER_NORM_EPS)
        self.ffn = FeedForward(p["hidden"], p["ffn"])

    def forward(self, x, positions, past, static):
        attended, present = self.attention(self.norm1(x), positions, past, static)
        x = x + attended
        return x + self.ffn(self.norm2(x)), present


class Embeddings(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.word = nn.Embedding(p["vocab"], p["hidden"])
        self.position = nn.Embedding(p["ctx"], p["hidden"])

    def forward(self, tokens, positions):
        return self.word(tokens) + self.position(positions)


class Decoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embeddings = Embeddings(p)
        self.layers = nn.ModuleList(DecoderLayer(p) for _ in range(p["layers"]))
        self.final_norm = nn.LayerNorm(p["hidden"], eps=LAYER_NORM_EPS)
        # Tied (GPT-2): the head is the word embedding itself, read in forward, so no second copy is loaded.
        self.lm_head = nn.Linear(p["hidden"], p["vocab"], bias=False) if p["head"] == "untied" else None

    def forward(self, tokens, past=None, positions=None, at=None, use_cache=True):
        """Logits [batch, vocab] of one position of `tokens` [batch, length] (the last, or the index
        tensor `at` [1]) and the cache including these tokens (None without `use_cache`).
        `past`: None, the growing cache (a tuple of (keys, values) per layer) or a StaticCache,
        whose positions [length] (a tensor) say where the tokens go."""
        static = isinstance(past, StaticCache)
        if static:
            layers = past.layers
        else:
            layers = [None] * len(self.layers) if past is None else past
            if positions is None:
                start = 0 if past is None else past[0][0].shape[2]
                positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.embeddings(tokens, positions)
        present = []
        for layer, layer_past in zip(self.layers, layers, strict=True):
            x, kv = layer(x, positions, layer_past, static)
            present.append(kv)
        # The LM head on the one position a step needs (as generation code does), not on every row.
        x = self.final_norm(x[:, -1] if at is None else x.index_select(1, at).squeeze(1))
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.embeddings.word.weight)
        if not use_cache:
            return logits, None
        if static:
            return logits, past
        # Contiguous (a no-op after torch.cat; a copy of the prefill's transposed views): a cache whose
        # strides changed between the first decode step and the next would make torch.compile recompile.
        return logits, tuple((k.contiguous(), v.contiguous()) for k, v in present)

    def step(self, tokens, past=None, positions=None, at=None, use_cache=True):
        """One generation step on the device: (logits [batch, vocab], greedy tokens [batch], cache)."""
        logits, present = self(tokens, past, positions, at, use_cache)
        return logits, logits.argmax(-1), present


def model(params):
    return Decoder(params)


def parameter_name(canonical):
    """PyTorch's name of a canonical weight: nn.Embedding keeps its table in `.weight`."""
    return f"{canonical}.weight" if canonical in ("embeddings.word", "embeddings.position") else canonical

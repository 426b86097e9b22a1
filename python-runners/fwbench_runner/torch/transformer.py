"""BERT-style encoder in PyTorch, on nn.Linear and F.scaled_dot_product_attention.

In a shape stream (`lengths` given, rows padded on the right) the positions are 0..L-1 for the
batch's length L, and padded keys are masked as BERT's attention mask does: an additive bias of
-1e9 on their scores (`attn_mask` of F.scaled_dot_product_attention), so no token attends to
padding. Every size is read from the input tensors, so a TorchScript trace does not bake a length in."""

import torch
import torch.nn.functional as F
from torch import nn

#: LayerNorm epsilon of the canonical encoder (BERT's).
LAYER_NORM_EPS = 1e-12


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(hidden, hidden) for _ in range(4))
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x, mask=None):
        batch, seq, hidden = x.shape
        # Contiguous head split, as the canonical layout defines it: head h owns features h*d..h*d+d-1.
        split = lambda t: t.view(batch, seq, self.heads, hidden // self.heads).transpose(1, 2)  # noqa: E731
        context = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=mask)
        return self.norm(x + self.output(context.transpose(1, 2).reshape(batch, seq, hidden)))


class FeedForward(nn.Module):
    def __init__(self, hidden, inner):
        super().__init__()
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def forward(self, x):
        # Exact (erf) GELU, F.gelu's default, as BERT defines it.
        return self.norm(x + self.output(F.gelu(self.intermediate(x))))


class EncoderLayer(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.attention = SelfAttention(p["hidden"], p["heads"])
        self.ffn = FeedForward(p["hidden"], p["ffn"])

    def forward(self, x, mask=None):
        return self.ffn(self.attention(x, mask))


class Embeddings(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.word = nn.Embedding(p["vocab"], p["hidden"])
        self.position = nn.Embedding(p["seq"], p["hidden"])
        self.norm = nn.LayerNorm(p["hidden"], eps=LAYER_NORM_EPS)
        self.register_buffer("positions", torch.arange(p["seq"]), persistent=False)

    def forward(self, tokens):
        return self.norm(self.word(tokens) + self.position(self.positions[: tokens.shape[1]]))


class Encoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embeddings = Embeddings(p)
        self.layers = nn.ModuleList(EncoderLayer(p) for _ in range(p["layers"]))
        self.pooler = nn.Linear(p["hidden"], p["hidden"])
        self.classifier = nn.Linear(p["hidden"], p["classes"])

    def forward(self, tokens, lengths=None):
        x = self.embeddings(tokens)
        mask = None if lengths is None else padding_bias(tokens, lengths)
        for layer in self.layers:
            x = layer(x, mask)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def padding_bias(tokens, lengths):
    """The additive attention mask [batch, 1, 1, L] (broadcast over heads and queries): 0 on a row's
    real keys, -1e9 on the padding at or beyond its length."""
    padded = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]
    return torch.zeros(padded.shape, dtype=torch.float32, device=tokens.device).masked_fill(padded, -1e9)[:, None, None, :]


def model(params):
    return Encoder(params)


def parameter_name(canonical):
    """PyTorch's name of a canonical weight: nn.Embedding keeps its table in `.weight`."""
    return f"{canonical}.weight" if canonical in ("embeddings.word", "embeddings.position") else canonical

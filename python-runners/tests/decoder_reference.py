"""The decoder family's math (workloads/decoder.ts) in float64 numpy, with no cache: every step
recomputes the whole sequence. The generation tests of the Python engines check their generators'
token ids and logits against it, so a cache that drops or misplaces a position cannot pass."""

import math

import numpy as np

#: workloads/decoder.ts DECODER_NORM_EPS.
EPS = 1e-5


def _norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w + b


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def forward(weights, params, tokens):
    """Logits [batch, length, vocab] (float64) of every position of int tokens [batch, length]."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    heads, hidden = params["heads"], params["hidden"]
    d = hidden // heads
    batch, length = tokens.shape
    x = w["embeddings.word"][tokens] + w["embeddings.position"][:length]
    causal = np.triu(np.full((length, length), -np.inf), 1)
    for layer in range(params["layers"]):
        p = f"layers.{layer}"
        h = _norm(x, w[f"{p}.norm1.weight"], w[f"{p}.norm1.bias"])

        def proj(name, v, p=p):
            return v @ w[f"{p}.attention.{name}.weight"].T + w[f"{p}.attention.{name}.bias"]

        q, k, v = (proj(n, h).reshape(batch, length, heads, d).transpose(0, 2, 1, 3) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + causal
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attention = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + proj("output", attention.transpose(0, 2, 1, 3).reshape(batch, length, hidden))
        h = _norm(x, w[f"{p}.norm2.weight"], w[f"{p}.norm2.bias"])
        inner = _gelu(h @ w[f"{p}.ffn.intermediate.weight"].T + w[f"{p}.ffn.intermediate.bias"])
        x = x + inner @ w[f"{p}.ffn.output.weight"].T + w[f"{p}.ffn.output.bias"]
    x = _norm(x, w["final_norm.weight"], w["final_norm.bias"])
    return x @ w.get("lm_head.weight", w["embeddings.word"]).T


def generate(weights, params, prompt, new_tokens):
    """Greedy generation without a cache: (token ids [batch, new_tokens], logits [new_tokens, batch, vocab])."""
    seq = np.asarray(prompt, dtype=np.int64)
    chosen, logits = [], []
    for _ in range(new_tokens):
        last = forward(weights, params, seq)[:, -1]
        nxt = last.argmax(-1)
        chosen.append(nxt)
        logits.append(last)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    return np.stack(chosen, axis=1), np.stack(logits)


def main(argv):
    """`python decoder_reference.py WEIGHTS PROMPT PARAMS_JSON NEW_TOKENS OUT`: the reference
    generation of a prompt file (`tokens` int32 [batch, promptLength]) written to OUT as `tokens`
    int32 [batch, NEW_TOKENS] and `logits` float32 [NEW_TOKENS, batch, vocab], for the Node tests."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fwbench_runner.safetensors import load_tensors, save_tensors

    weights_path, prompt_path, params_json, new_tokens, out = argv
    tokens, logits = generate(load_tensors(weights_path)[0], json.loads(params_json), load_tensors(prompt_path)[0]["tokens"], int(new_tokens))
    save_tensors(out, {"tokens": tokens.astype(np.int32), "logits": logits.astype(np.float32)})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

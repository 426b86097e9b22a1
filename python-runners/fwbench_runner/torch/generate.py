"""Greedy generation with the PyTorch decoder (decoder.py), the loop a PyTorch user writes around
the model: each step calls `Decoder.step` (the forward, the logits of one position and their
argmax, on the device), keeps the chosen tokens on the device to feed the next step, and reads
only the tokens back (the logits too when asked).

The mode decides how the cache is held and what torch.compile sees:
- eager, compile (dynamic=None), compile-dynamic (dynamic=True): a growing cache, each step's keys
  and values appended with torch.cat (Hugging Face's `past_key_values`). Under `compile` the
  first decode step compiles a graph for its cache length, the next one recompiles with that
  length symbolic; `compile-dynamic` starts symbolic.
- compile-static (dynamic=False): a StaticCache preallocated for promptLength + newTokens
  positions, written with index_copy_ at the step's positions, a device tensor the loop advances
  in place (gpt-fast's `input_pos`): one graph for the prefill and one for a decode step, whatever
  the position.
Cache `none` recomputes the whole sequence at every step and takes the last position's logits:
the sequence grows by torch.cat of the chosen tokens, except under compile-static, which keeps
one graph shape by running a fixed [batch, promptLength + newTokens] buffer padded on the right
(zeros) and taking the logits at the current position (a device tensor): causal attention makes
the padding invisible, and the prefill and every decode step share one graph."""

import numpy as np
import torch

from ..engine import Generator
from .decoder import StaticCache


class TorchGenerator(Generator):
    def __init__(self, model, step, device, settings, params, batch, generation, compiles, static):
        self.model = model
        self.step = step
        self.device = device
        self.settings = settings
        self.compiles = compiles
        self.cuda = device.type == "cuda"
        self.prompt_length = generation["promptLength"]
        self.kv = generation["cache"] == "kv"
        #: A static cache (kv) or a fixed padded sequence (none), so the step's shapes never change.
        self.static = static
        positions = self.prompt_length + generation["newTokens"]
        if self.static and self.kv:
            self.cache = StaticCache(params, batch, positions, device)
            settings["staticCacheBytes"] = self.cache.nbytes()
            self.prefill_positions = torch.arange(self.prompt_length, device=device)
            #: The position of the token a decode step feeds, advanced on the device after each step.
            self.position = torch.zeros(1, dtype=torch.int64, device=device)
        elif self.static:
            self.buffer = torch.zeros(batch, positions, dtype=torch.int64, device=device)
            #: The position whose logits the step takes (the last token written to the buffer).
            self.at = torch.zeros(1, dtype=torch.int64, device=device)
        self.past = self.sequence = self.last = None
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def session(self):
        return torch.inference_mode()

    def prepare(self, tokens):
        # PyTorch users hold token ids as int64; the prompt goes to the device inside the prefill (part of its time).
        return torch.from_numpy(np.array(tokens, dtype=np.int64))

    def prefill(self, feed, want_logits):
        # Copied even on the CPU: made inside inference_mode like every later step's tokens, so
        # torch.compile's guards see the same kind of tensor at every step (no recompile for it).
        prompt = feed.to(self.device, copy=True)
        # The earlier generation's cache goes before this one's is built, so it never counts twice in the peak.
        self.past = self.sequence = None
        if self.kv and self.static:
            logits, chosen, _ = self.step(prompt, self.cache, self.prefill_positions)
            self.position.fill_(self.prompt_length)
        elif self.kv:
            logits, chosen, self.past = self.step(prompt)
        elif self.static:
            self.buffer.zero_()
            self.buffer[:, : self.prompt_length].copy_(prompt)
            self.at.fill_(self.prompt_length - 1)
            logits, chosen, _ = self.step(self.buffer, at=self.at, use_cache=False)
        else:
            self.sequence = prompt
            logits, chosen, _ = self.step(prompt, use_cache=False)
        self.last = chosen
        return self.read_back(logits, chosen, want_logits)

    def decode(self, want_logits):
        fed = self.last[:, None]
        if self.kv and self.static:
            logits, chosen, _ = self.step(fed, self.cache, self.position)
            self.position += 1
        elif self.kv:
            logits, chosen, self.past = self.step(fed, self.past)
        elif self.static:
            self.at += 1
            self.buffer.index_copy_(1, self.at, fed)
            logits, chosen, _ = self.step(self.buffer, at=self.at, use_cache=False)
        else:
            self.sequence = torch.cat([self.sequence, fed], dim=1)
            logits, chosen, _ = self.step(self.sequence, use_cache=False)
        self.last = chosen
        return self.read_back(logits, chosen, want_logits)

    def read_back(self, logits, chosen, want_logits):
        # .cpu() waits for the step's kernels and the copy: the tokens are on the host when it returns.
        tokens = chosen.cpu().numpy().astype(np.int32)
        return tokens, logits.cpu().numpy() if want_logits else None

    def compile_count(self):
        from . import compiled_graphs

        return compiled_graphs() if self.compiles else None

    def peak_device_bytes(self):
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else None

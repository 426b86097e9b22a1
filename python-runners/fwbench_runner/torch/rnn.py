"""LSTM classifier in PyTorch: nn.Embedding -> nn.LSTM (batch_first) -> nn.Linear on the last step.

In a shape stream (`lengths` given, rows padded on the right) the classifier reads each row's last
real step through PyTorch's own variable-length support: the embedded batch is packed with
`nn.utils.rnn.pack_padded_sequence(..., enforce_sorted=False)`, so the LSTM stops every row at its
length, and its top layer's final hidden state h_n[-1] is the output of the row's last real step.
Packing gives the unpadded rows' logits in every mode (python-runners/tests/test_shapes_torch.py):
eager; torchscript, whose trace on one batch serves every length (the packing is traced as ops on
`lengths`); and torch.compile, where Dynamo does not trace into pack_padded_sequence (torch.nn is
on its skip list: a graph break) any more than into nn.LSTM at a fixed shape (allow_rnn is off):
the LSTM runs eagerly in every torch.compile mode, the graphs around it are compiled, and its
unique_graphs count has one graph per new length for dynamic=False (up to Dynamo's recompile limit)."""

import re

from torch import nn


class LstmClassifier(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embedding = nn.Embedding(p["vocab"], p["embed"])
        self.lstm = nn.LSTM(p["embed"], p["hidden"], num_layers=p["layers"], batch_first=True)
        self.fc = nn.Linear(p["hidden"], p["classes"])

    def forward(self, tokens, lengths=None):
        x = self.embedding(tokens)
        if lengths is None:
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])
        # pack_padded_sequence wants the lengths on the CPU.
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.fc(h_n[-1])


def model(params):
    return LstmClassifier(params)


def parameter_name(canonical):
    """PyTorch's name of a canonical weight: nn.LSTM keeps its layers' weights flat (`weight_ih_l0`)."""
    m = re.fullmatch(r"lstm\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)", canonical)
    return f"lstm.{m.group(2)}_l{m.group(1)}" if m else canonical

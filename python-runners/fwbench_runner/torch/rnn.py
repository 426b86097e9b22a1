"""LSTM classifier in PyTorch: nn.Embedding -> nn.LSTM (batch_first) -> nn.Linear on the last step."""

import re

from torch import nn


class LstmClassifier(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.embedding = nn.Embedding(p["vocab"], p["embed"])
        self.lstm = nn.LSTM(p["embed"], p["hidden"], num_layers=p["layers"], batch_first=True)
        self.fc = nn.Linear(p["hidden"], p["classes"])

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return self.fc(out[:, -1])


def model(params):
    return LstmClassifier(params)


def parameter_name(canonical):
    """PyTorch's name of a canonical weight: nn.LSTM keeps its layers' weights flat (`weight_ih_l0`)."""
    m = re.fullmatch(r"lstm\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)", canonical)
    return f"lstm.{m.group(2)}_l{m.group(1)}" if m else canonical

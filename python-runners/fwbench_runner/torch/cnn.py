"""ResNet in PyTorch, torchvision style (NCHW): the blocks' attribute names are the canonical
weight names, so the canonical weights load as they are. Written as torchvision's ResNet,
BasicBlock and Bottleneck are: ReLU in place (`nn.ReLU(inplace=True)`) and the residual added in
place (`out += identity`), which saves one activation-sized buffer per ReLU and per block, in
inference and (more) in training."""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..resnet_layout import resnet_layout

#: The canonical model's BatchNorm epsilon (PyTorch's default).
BN_EPS = 1e-5


def conv(c):
    return nn.Conv2d(c.cin, c.cout, c.k, stride=c.stride, padding=c.pad, bias=False)


class ResidualBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) block; attribute names are the canonical ones."""

    def __init__(self, block):
        super().__init__()
        self.depth = len(block.convs)
        for i, c in enumerate(block.convs, start=1):
            setattr(self, f"conv{i}", conv(c))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c.cout, eps=BN_EPS))
        d = block.downsample
        self.downsample = nn.Sequential(OrderedDict(conv=conv(d), bn=nn.BatchNorm2d(d.cout, eps=BN_EPS))) if d else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = x
        for i in range(1, self.depth + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.depth:
                out = self.relu(out)
        # In place, as torchvision: `out` is the last BatchNorm's fresh output, which nothing else reads.
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, params):
        super().__init__()
        layout = resnet_layout(params)
        self.conv1 = conv(layout.stem)
        self.bn1 = nn.BatchNorm2d(layout.stem.cout, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for stage in range(1, 5):
            blocks = [ResidualBlock(b) for b in layout.blocks if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(layout.features, layout.classes)

    def forward(self, images):
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def model(params):
    return ResNet(params)


def parameter_name(canonical):
    """PyTorch's name of a canonical weight: the same."""
    return canonical

"""ResNet geometry from workload parameters, mirroring resnetLayout in workloads/cnn.ts (the
definition; the parity check against the reference catches any drift). Framework-free so both
the PyTorch and the Keras builders read the same blocks."""

from dataclasses import dataclass, field

EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass
class Conv:
    #: Canonical prefix of the kernel (`<name>.weight`) and of the BatchNorm after it.
    name: str
    bn: str
    cin: int
    cout: int
    k: int
    stride: int

    @property
    def pad(self):
        return self.k // 2


@dataclass
class Block:
    prefix: str
    convs: list
    downsample: Conv | None = None


@dataclass
class Layout:
    channels: int
    stem: Conv
    blocks: list = field(default_factory=list)
    features: int = 0
    classes: int = 0


def resnet_layout(p):
    width, block = p["width"], p["block"]
    expansion = EXPANSION[block]
    layout = Layout(channels=p["channels"], stem=Conv("conv1", "bn1", p["channels"], width, 7, 2), classes=p["classes"])
    in_planes = width
    for stage, depth in enumerate(p["depths"]):
        planes = width * 2**stage
        for b in range(depth):
            stride = 2 if b == 0 and stage > 0 else 1
            prefix = f"layer{stage + 1}.{b}"
            out_planes = planes * expansion
            if block == "basic":
                convs = [Conv(f"{prefix}.conv1", f"{prefix}.bn1", in_planes, planes, 3, stride), Conv(f"{prefix}.conv2", f"{prefix}.bn2", planes, planes, 3, 1)]
            else:
                convs = [
                    Conv(f"{prefix}.conv1", f"{prefix}.bn1", in_planes, planes, 1, 1),
                    Conv(f"{prefix}.conv2", f"{prefix}.bn2", planes, planes, 3, stride),
                    Conv(f"{prefix}.conv3", f"{prefix}.bn3", planes, out_planes, 1, 1),
                ]
            projection = stride != 1 or in_planes != out_planes
            downsample = Conv(f"{prefix}.downsample.conv", f"{prefix}.downsample.bn", in_planes, out_planes, 1, stride) if projection else None
            layout.blocks.append(Block(prefix, convs, downsample))
            in_planes = out_planes
    layout.features = in_planes
    return layout

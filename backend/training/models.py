"""Model zoo: ``mlp``, ``vgg``, CIFAR-style ``resnet`` and torchvision classifiers (``tv:<name>``).

Every model's probe-able layers are its ReLU modules, except that no ReLU sits at the output
(SCIENCE.md section 2): the hooks in :mod:`backend.training.snapshots` record each ReLU's input,
i.e. the pre-activation, read after batch norm when BN precedes the ReLU. Layers are named by
their module path (``fc1.relu``, ``conv2_1.relu``, ``stage2.block1.relu2``), which is stable and
readable. A ReLU module called more than once per forward pass (torchvision's ResNet blocks reuse
one) gives one probe per call: ``layer1.0.relu`` and ``layer1.0.relu_1``, as torch.fx names them.
Models do no I/O.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from backend.config import ModelConfig
from backend.errors import ConfigError


class Dropout(nn.Module):
    """Dropout whose masks come from a CPU generator, so CPU and GPU runs draw the same masks.

    The trainer reseeds :attr:`generator` at every epoch, which also makes resumed runs exact.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep.to(x.device, x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LinearUnit(nn.ReLU):
    """The no-ReLU ablation (SCIENCE.md finding 8): passes its input through unchanged.

    It subclasses ``nn.ReLU`` only so that the slot stays a probe-able layer (``fc1.relu``) and a
    run with it can be compared unit by unit with its ReLU twin; it applies no non-linearity.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input


class MLP(nn.Module):
    """[input Dropout] -> ``depth`` hidden blocks Linear -> [BN] -> ReLU -> [Dropout], then a linear classifier.

    ``activation="linear"`` replaces the ReLUs by :class:`LinearUnit`; ``bias=False`` drops every
    bias (the thesis's SynthClust MLP); hidden layers followed by batch norm never have one.
    """

    def __init__(self, in_features: int, num_classes: int, *, depth: int, width: int, batch_norm: bool,
                 dropout: float, activation: str = "relu", bias: bool = True, input_dropout: float = 0.0) -> None:
        super().__init__()
        self.input_dropout = Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        d_in = in_features
        for i in range(1, depth + 1):
            block: OrderedDict[str, nn.Module] = OrderedDict(linear=nn.Linear(d_in, width, bias=bias and not batch_norm))
            if batch_norm:
                block["bn"] = nn.BatchNorm1d(width)
            block["relu"] = nn.ReLU() if activation == "relu" else LinearUnit()
            if dropout > 0:
                block["dropout"] = Dropout(dropout)
            blocks[f"fc{i}"] = nn.Sequential(block)
            d_in = width
        for name, module in blocks.items():  # top-level blocks keep layer names short: fc1.relu
            self.add_module(name, module)
        self.blocks = list(blocks)
        self.classifier = nn.Linear(d_in, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(x.flatten(1))
        for name in self.blocks:
            x = getattr(self, name)(x)
        return self.classifier(x)  # (B, num_classes)


def _conv_bn_relu(c_in: int, c_out: int, batch_norm: bool) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv=nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm))
    if batch_norm:
        layers["bn"] = nn.BatchNorm2d(c_out)
    layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


class VGG(nn.Module):
    """VGG-style CNN: ``stages`` x ``convs_per_stage`` 3x3 convs with 2x2 max pooling between stages,
    ``round(32 * 2^s * width_factor)`` channels in stage s, global max pooling, dropout, linear classifier.
    """

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, *, stages: int, convs_per_stage: int,
                 width_factor: float, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        c_in, h, w = in_shape
        if min(h, w) < 2 ** (stages - 1):
            raise ConfigError(
                f"model.stages must be at most {int(math.log2(min(h, w))) + 1} for {h}x{w} inputs "
                f"(each stage halves the image); got {stages}."
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for s in range(1, stages + 1):
            c_out = max(1, round(32 * 2 ** (s - 1) * width_factor))
            for j in range(1, convs_per_stage + 1):
                layers[f"conv{s}_{j}"] = _conv_bn_relu(c_in, c_out, batch_norm)
                c_in = c_out
            if s < stages:
                layers[f"pool{s}"] = nn.MaxPool2d(2)
        for name, layer in layers.items():  # top-level blocks keep layer names short: conv1_1.relu
            self.add_module(name, layer)
        self.blocks = list(layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.blocks:
            x = getattr(self, name)(x)
        z = self.pool(x).flatten(1)  # (B, C)
        return self.classifier(self.dropout(z))


class BasicBlock(nn.Module):
    """conv-BN-ReLU (``relu1``), conv-BN, + shortcut, ReLU after the addition (``relu2``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016): depth 6n+2, three stages of n blocks, 16/32/64 channels
    times ``width_factor``, global average pooling, linear classifier."""

    stage1: nn.Sequential  # added by name (add_module) in __init__
    stage2: nn.Sequential
    stage3: nn.Sequential

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, *, depth: int, width_factor: float) -> None:
        super().__init__()
        n = (depth - 2) // 6
        widths = [max(1, round(c * width_factor)) for c in (16, 32, 64)]
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_shape[0], widths[0], 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(),
        ))
        c_in = widths[0]
        for s, c_out in enumerate(widths, start=1):
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(1, n + 1):
                stride = 2 if (s > 1 and b == 1) else 1
                blocks[f"block{b}"] = BasicBlock(c_in, c_out, stride)
                c_in = c_out
            self.add_module(f"stage{s}", nn.Sequential(blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))  # (B, 64w, H/4, W/4)
        return self.classifier(self.pool(x).flatten(1))


def build_model(cfg: ModelConfig, in_shape: tuple[int, ...], num_classes: int, *, seed: int) -> nn.Module:
    """Build the model named by ``cfg.name`` with seeded initialisation, on the CPU.

    ``in_shape`` is (C, H, W) for images or (D,) for vectors. Initialising on the CPU from ``seed``
    gives the same initial weights whatever device trains the model.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.name == "mlp":
            return MLP(math.prod(in_shape), num_classes, depth=cfg.depth, width=cfg.width,
                       batch_norm=cfg.batch_norm, dropout=cfg.dropout, activation=cfg.activation, bias=cfg.bias,
                       input_dropout=cfg.input_dropout)
        _require_image(cfg.name, in_shape)
        if cfg.name == "vgg":
            return VGG(in_shape, num_classes, stages=cfg.stages, convs_per_stage=cfg.convs_per_stage,
                       width_factor=cfg.width_factor, batch_norm=cfg.batch_norm, dropout=cfg.dropout)
        if cfg.name == "resnet":
            return ResNet(in_shape, num_classes, depth=cfg.depth, width_factor=cfg.width_factor)
        if cfg.name.startswith("tv:"):
            return torchvision_model(cfg.name[3:], num_classes)
    raise ConfigError(f"model.name must be one of mlp, vgg, resnet, tv:<name>; got {cfg.name!r}.")


def _require_image(name: str, in_shape: tuple[int, ...]) -> None:
    if len(in_shape) != 3:
        raise ConfigError(f"model.name {name!r} needs image inputs (C, H, W); this data set gives vectors of shape "
                          f"{in_shape}. Use model.name=\"mlp\".")


def torchvision_model(name: str, num_classes: int) -> nn.Module:
    """A torchvision classification model by name, randomly initialised, with ``num_classes`` outputs."""
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        import difflib

        close = difflib.get_close_matches(name, available, n=3)
        hint = f" Did you mean {', '.join('tv:' + c for c in close)}?" if close else ""
        raise ConfigError(f"model.name 'tv:{name}' is not a torchvision classification model.{hint}")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    for module in model.modules():  # in-place ReLUs would overwrite the pre-activations we record
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model

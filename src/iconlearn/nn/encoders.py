"""Image encoders for contrastive pretraining from pixels.

* :class:`SmallResNet`: the CIFAR-style ResNet (3 x 3 stem, no max-pool; He et al. 2016, as used
  by SimCLR on CIFAR and by the Kernel-InfoNCE experiments with ResNet-18/50) with configurable
  width and depth, for 28 x 28 and 32 x 32 images. ``SmallResNet(blocks=(2, 2, 2, 2), width=64)``
  is ResNet-18.
* :class:`ProjectionHead`: SimCLR's MLP projector g(h) (Linear-BN-ReLU ... Linear), also used as
  MoCo v3's predictor.
* :class:`ContrastiveModel`: backbone + projector (+ optional predictor). Any ``nn.Module`` that
  maps images to (B x D) features can be the backbone; :func:`feature_dim` finds D.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["SmallResNet", "BasicBlock", "ProjectionHead", "ContrastiveModel", "feature_dim", "make_norm"]

_NORMS = ("batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm2d, GroupNorm (8 groups or fewer), or identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {_NORMS}, got {kind!r}")


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with a residual connection (ResNet-18/34 block)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), make_norm(norm, c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """CIFAR-style ResNet: 3 x 3 stem (stride 1, or 2 to work at half resolution on a CPU budget), stages of :class:`BasicBlock` (the first at stride 1, the
    next ones halving the resolution and doubling the width), global average pooling.

    Output: (B x width * 2^(stages-1)) features (:attr:`out_dim`).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, blocks: Sequence[int] = (1, 1, 1, 1), norm: str = "batch",
                 stem_stride: int = 1):
        super().__init__()
        if int(in_channels) < 1 or int(width) < 1:
            raise ValueError(f"in_channels and width must be positive, got {in_channels} and {width}")
        if len(blocks) == 0 or any(int(b) < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty list of positive block counts per stage, got {list(blocks)}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        if int(stem_stride) not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, int(stem_stride), 1, bias=False), make_norm(norm, width), nn.ReLU())
        layers, c = [], width
        for s, n in enumerate(blocks):
            c_out = width * 2**s
            for b in range(int(n)):
                layers.append(BasicBlock(c, c_out, 2 if (s > 0 and b == 0) else 1, norm))
                c = c_out
        self.layers = nn.Sequential(*layers)
        self.out_dim = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x)).mean((2, 3))


class ProjectionHead(nn.Sequential):
    """MLP ``in_dim -> hidden (-> hidden ...) -> out_dim`` with BatchNorm + ReLU between layers
    (SimCLR's projector g; MoCo v3's predictor). ``layers`` counts the Linear layers (>= 1)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128, layers: int = 2, batch_norm: bool = True):
        if int(layers) < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(int(layers) - 1):
            mods += [nn.Linear(d, hidden_dim, bias=not batch_norm)]
            if batch_norm:
                mods.append(nn.BatchNorm1d(hidden_dim))
            mods.append(nn.ReLU())
            d = hidden_dim
        mods.append(nn.Linear(d, out_dim))
        super().__init__(*mods)
        self.out_dim = out_dim


@torch.no_grad()
def feature_dim(backbone: nn.Module, input_shape: Sequence[int]) -> int:
    """The width D of ``backbone``'s (B x D) output on inputs of shape (C, H, W)."""
    was = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters(), None)
        x = torch.zeros(2, *input_shape, device=param.device if param is not None else "cpu",
                        dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
        out = backbone(x)
    finally:
        backbone.train(was)
    if not isinstance(out, Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the backbone must map (B x C x H x W) images to (B x D) features, got output {shape}")
    return int(out.shape[1])


class ContrastiveModel(nn.Module):
    """Backbone f, projector g and an optional predictor (MoCo v3 / BYOL).

    ``model(x)`` -> projections g(f(x)); ``model.features(x)`` -> f(x), the representation that is
    evaluated; ``model.predict(z)`` -> the predictor's output (identity without one).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.backbone(x))

    def predict(self, z: Tensor) -> Tensor:
        return z if self.predictor is None else self.predictor(z)

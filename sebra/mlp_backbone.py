"""LfF's Colored MNIST network as a timm model, so ``backbone="mlp_cmnist"`` works wherever a timm name does.

timm has no plain MLP; LfF (and every Colored MNIST result built on its code) trains ``Linear(3*28*28, 100) -> ReLU
-> Linear(100, 100) -> ReLU -> Linear(100, 100) -> ReLU -> Linear(100, 10)``. Registered here with timm's
``register_model``, it is created by ``timm.create_model("mlp_cmnist", num_classes=0)`` as a feature extractor with
``num_features = 100``; :class:`~sebra.backbones.Classifier` adds the last linear layer (the head).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models import register_model
from torch import nn
from typing_extensions import override

__all__ = ["MLP", "mlp_cmnist", "mlp_cmnist_div255"]


class MLP(nn.Module):
    """Flatten, then ``len(hidden)`` ReLU layers; ``num_classes > 0`` adds a linear classifier (timm's convention).

    Args:
        in_features: flattened input size (``3 * 28 * 28 = 2352`` for Colored MNIST).
        hidden: widths of the hidden layers; the last is ``num_features``.
        num_classes: 0 for a feature extractor (what sebra asks timm for).
        input_scale: the input is multiplied by this before the first layer (1: inputs in [0, 1]).
    """

    def __init__(
        self,
        in_features: int,
        hidden: tuple[int, ...] = (100, 100, 100),
        num_classes: int = 0,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.in_features = in_features
        self.input_scale = float(input_scale)
        self.features = nn.Sequential(*layers)
        self.num_features = width
        self.num_classes = num_classes
        self.head = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` (or already flat ``[B, in_features]``) -> ``[B, num_features]``."""
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"mlp_cmnist expects {self.in_features} input values per sample (3x28x28), got {x.shape[1]}; "
                "keep image_size at 28 (or null)"
            )
        return self.features(x * self.input_scale if self.input_scale != 1.0 else x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier (identity when ``num_classes == 0``)."""
        return self.head(x)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def mlp_cmnist(pretrained: bool = False, **kwargs: Any) -> MLP:
    """LfF's Colored MNIST MLP: 2352 -> 100 -> 100 -> 100 with ReLU (no pretrained weights exist).

    Keyword arguments timm passes (``num_classes``, ``in_chans``, ``img_size``) shape it; the rest (pretrained
    configs, cache folder) are ignored.
    """
    if pretrained:
        raise RuntimeError("mlp_cmnist has no pretrained weights; use pretrained=False")
    in_chans = int(kwargs.get("in_chans", 3))
    size = kwargs.get("img_size", 28)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return MLP(in_chans * h * w, (100, 100, 100), num_classes=int(kwargs.get("num_classes", 0)))


@register_model
def mlp_cmnist_div255(pretrained: bool = False, **kwargs: Any) -> MLP:
    """:func:`mlp_cmnist` as LfF's code runs it: its data pipeline already scales images to [0, 1]
    (``ToTensor``), and its MLP's ``forward`` divides by 255 once more, so the first layer sees inputs in
    [0, 1/255]. The published Colored MNIST tables (LfF, DFA and the papers that copy them) come from that code; this
    model reproduces the scale, to test whether it explains their weaker ERM (BENCHMARKS.md §8)."""
    model = mlp_cmnist(pretrained, **kwargs)
    model.input_scale = 1.0 / 255.0
    return model

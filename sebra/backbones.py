"""A timm backbone plus a linear head: the network every sebra method trains."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

__all__ = ["Classifier", "create_backbone"]


def create_backbone(name: str, *, pretrained: bool = False, weights_file: str | None = None,
                    in_chans: int = 3) -> nn.Module:
    """``timm.create_model(name, num_classes=0)``: a feature extractor with ``num_features`` outputs.

    Args:
        name: any timm model name (``resnet50``, ``resnet18``, ``test_resnet``, ...).
        pretrained: load ImageNet weights. Offline, pass ``weights_file`` (a local ``.safetensors``/``.pth``);
            timm loads it and drops the classifier.
        weights_file: local weights for ``pretrained=True``.
    """
    kwargs: dict = {"num_classes": 0, "in_chans": in_chans}
    if weights_file is not None:
        if not Path(weights_file).exists():
            raise FileNotFoundError(f"weights_file {weights_file} does not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if pretrained and weights_file is None:
            raise RuntimeError(
                f"could not load pretrained weights for {name!r} (no internet?): pass weights_file=<local file> "
                f"or pretrained=False. Cause: {e}"
            ) from e
        raise


class Classifier(nn.Module):
    """Backbone features ``f(x)`` and a linear head ``h``; ``forward`` returns logits."""

    def __init__(self, backbone: str, num_classes: int, *, pretrained: bool = False,
                 weights_file: str | None = None, in_chans: int = 3) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, weights_file=weights_file, in_chans=in_chans)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

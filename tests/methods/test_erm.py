"""ERMModule: its arguments are checked when it is built, not when the fit first needs them."""

from __future__ import annotations

import pytest

from sebra.methods import ERMModule, GroupDROModule, JTTModule


@pytest.mark.parametrize("cls", [ERMModule, GroupDROModule, JTTModule])
def test_lr_schedule_is_checked_in_init(cls) -> None:
    with pytest.raises(
        ValueError, match=f"{cls.__name__}: lr_schedule must be one of none, cosine, got 'step'"
    ):
        cls(lr_schedule="step")
    assert cls(lr_schedule="cosine").hparams.lr_schedule == "cosine"


def test_cosine_schedule_over_the_epochs(tiny_dm, make_trainer) -> None:
    model = ERMModule(backbone="test_resnet", epochs=2, lr=0.1, lr_schedule="cosine")
    make_trainer().fit(model, datamodule=tiny_dm)
    assert model.optimizers().param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cos(pi) after 2 of 2
    assert model.hparams.sampling == "uniform"
    with pytest.raises(ValueError, match="sampling must be"):
        ERMModule(sampling="balanced")

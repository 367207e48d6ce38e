"""JTT: the error set is the MISCLASSIFIED samples (a peer once upweighted the correct ones), and one-fit training."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from sebra.methods.erm import ERMModule
from sebra.methods.jtt import JTTModule, error_set_from_predictions, upsampling_weights


def test_error_set_holds_the_misclassified_dataset_indices() -> None:
    indices = torch.tensor([40, 11, 27, 3, 90])
    labels = torch.tensor([0, 1, 1, 0, 2])
    preds = torch.tensor([0, 0, 1, 2, 2])  # rows 1 and 3 are wrong
    assert error_set_from_predictions(preds, labels, indices).tolist() == [
        3,
        11,
    ]  # indices, sorted; not positions
    logits = torch.nn.functional.one_hot(preds, 3).float()
    assert error_set_from_predictions(logits, labels, indices).tolist() == [3, 11]
    with pytest.raises(ValueError, match="expected"):
        error_set_from_predictions(preds, labels[:2], indices)


def test_upsampling_weights() -> None:
    w = upsampling_weights(torch.tensor([False, True, False, True]), 6.0)
    assert w.tolist() == [1.0, 6.0, 1.0, 6.0] and w.dtype == torch.float64


class ShortcutNet(nn.Module):
    """Predicts the class from the strong shortcut (channel 1 brightness = bg) only: wrong exactly when bg != label."""

    def __init__(self, follow: str = "bg") -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.follow = follow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.follow == "bg":
            s = x[:, 1].mean(dim=(1, 2)) - 0.67  # normalised: bg 0 ~ -0.6, bg 1 ~ +2.0
        else:  # the core signal: top half of channel 0 (label 0 ~ -0.6, label 1 ~ +1.5)
            s = x[:, 0, :4].mean(dim=(1, 2)) - 0.45
        return torch.stack([-s, s], dim=1) * 10 + 0 * self.dummy


def _jtt_with(net: nn.Module, dm, upweight: float = 10.0) -> JTTModule:
    dm.setup("fit")
    model = JTTModule(backbone="test_resnet", id_epochs=1, epochs=1, upweight=upweight, seed=3, num_classes=2)
    model.configure_model()
    model.id_net = net
    return model


def test_identify_upweights_the_misclassified_not_the_correct(tiny_dm) -> None:
    model = _jtt_with(ShortcutNet("bg"), tiny_dm)
    scores = model.identify(tiny_dm)
    train = tiny_dm.train_dataset
    table = train.table
    wrong = set(
        table.loc[table["bg"] != table["label"], "index"].tolist()
    )  # what the shortcut net gets wrong
    assert len(wrong) == 6 and set(model.error_set.tolist()) == wrong
    assert set(scores.loc[scores["error"], "index"]) == wrong
    assert (scores.loc[scores["error"], "p_y"] < 0.5).all() and (
        scores.loc[~scores["error"], "p_y"] > 0.5
    ).all()

    # The retraining sampler: weight upweight on exactly the error-set positions, 1 on the correct ones.
    model.stage = "retrain"
    loader = model.train_loader(tiny_dm)
    weights = loader.sampler.weights
    is_err = torch.tensor([int(i) in wrong for i in train.indices])
    assert weights[is_err].tolist() == [10.0] * 6 and weights[~is_err].tolist() == [1.0] * 10
    assert loader.sampler.num_samples == len(train)
    # And the draws follow: errors hold 60 / (60 + 10) of the weight; drawn 20 epochs of N=16.
    drawn = torch.cat([batch["index"] for _ in range(20) for batch in loader])
    frac = torch.isin(drawn, model.error_set).float().mean().item()
    assert frac > 0.75  # uniform draws would give 6/16 = 0.375; upweighting the correct ones ~0.06


def test_retraining_draws_are_seeded(tiny_dm) -> None:
    def draws() -> list[int]:
        model = _jtt_with(ShortcutNet("bg"), tiny_dm)
        model.identify(tiny_dm)
        model.stage = "retrain"
        return torch.cat([b["index"] for b in model.train_loader(tiny_dm)]).tolist()

    assert draws() == draws()


def test_a_perfect_identifier_gives_an_empty_error_set_and_a_warning(tiny_dm) -> None:
    model = _jtt_with(ShortcutNet("label"), tiny_dm)
    with pytest.warns(UserWarning, match="error set is empty"):
        model.identify(tiny_dm)
    assert model.error_set.numel() == 0
    assert model.sampling_weights(tiny_dm.train_dataset).tolist() == [1.0] * 16


def test_one_fit_identifies_then_retrains_a_fresh_network(tiny_dm, make_trainer) -> None:
    model = JTTModule(backbone="test_resnet", id_epochs=1, epochs=2, upweight=5, seed=0)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    assert model.stage == "done" and trainer.current_epoch == 3
    assert model.id_net is not model.net
    assert not all(
        torch.equal(a, b) for a, b in zip(model.id_net.state_dict().values(), model.net.state_dict().values())
    )
    # error set on disk == in memory
    on_disk = pd.read_csv(f"{trainer.log_dir}/jtt_error_set.csv")
    assert on_disk["index"].tolist() == model.error_set.tolist()
    assert (on_disk["pred"] != on_disk["label"]).all()
    scores = pd.read_csv(f"{trainer.log_dir}/jtt_scores.csv")
    assert len(scores) == 16 and set(scores["index"]) == set(tiny_dm.train_dataset.indices.tolist())
    # selection only in the retraining epochs (1, 2): no validation metric for epoch 0, no checkpoint from it
    logged = pd.read_csv(f"{trainer.log_dir}/metrics.csv")
    assert sorted(logged.dropna(subset=["val_wga"])["epoch"].unique().tolist()) == [1, 2]
    best = trainer.checkpoint_callback.best_model_path
    assert best and "best-0-" not in best
    trainer.test(model, datamodule=tiny_dm, ckpt_path="best", verbose=False)
    assert model.stage == "retrain"  # restored from the retraining checkpoint: the retrained net is tested
    assert "test_wga" in model.test_results


def test_networks_are_seeded_the_identifier_as_erm_the_retrained_one_fresh() -> None:
    def weights(module: torch.nn.Module) -> list[torch.Tensor]:
        return [t.clone() for t in module.state_dict().values()]

    jtt = JTTModule(backbone="test_resnet", seed=3, num_classes=2)
    torch.manual_seed(123)  # the global RNG must not matter
    jtt.configure_model()
    erm = ERMModule(backbone="test_resnet", seed=3, num_classes=2)
    erm.configure_model()
    assert all(torch.equal(a, b) for a, b in zip(weights(jtt.id_net), weights(erm.net)))
    assert not all(torch.equal(a, b) for a, b in zip(weights(jtt.id_net), weights(jtt.net)))


def test_bad_arguments_and_too_few_epochs(tiny_dm, make_trainer) -> None:
    with pytest.raises(ValueError, match="upweight must be >= 1"):
        JTTModule(upweight=0.5)
    with pytest.raises(ValueError, match="id_epochs must be >= 1"):
        JTTModule(id_epochs=0)
    with pytest.raises(ValueError, match="max_epochs=2.*id_epochs \\+ epochs = 3"):
        make_trainer(max_epochs=2).fit(
            JTTModule(backbone="test_resnet", id_epochs=1, epochs=2), datamodule=tiny_dm
        )

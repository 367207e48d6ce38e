"""The NaN guard: a fit stops at the first non-finite loss or score, in one line naming the phase and step, and writes
no ranking from NaN scores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_data import TINY_SEBRA, TinyDataModule
from trainers import quiet_trainer

from sebra import SebraModule
from sebra.export import save_rankings
from sebra.methods import ERMModule, JTTModule
from sebra.methods.finite import NonFiniteError, NonFiniteScores
from sebra.scoring import score_loader


class NaNAtThirdBatch(ERMModule):
    """ERM whose loss turns NaN at the third batch of the first epoch (a learning rate that diverged)."""

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        loss = super().loss(logits, batch)
        return loss * float("nan") if self.global_step == 2 else loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.weights_after = {k: v.detach().clone() for k, v in self.net.state_dict().items()}


def test_nan_loss_stops_the_fit_before_the_step_naming_phase_batch_and_causes(tmp_path: Path) -> None:
    model = NaNAtThirdBatch(backbone="test_resnet", epochs=2, lr=0.01)
    trainer = quiet_trainer(tmp_path, enable_checkpointing=False)
    with pytest.raises(NonFiniteError) as err:
        trainer.fit(model, datamodule=TinyDataModule(batch_size=4))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        "NaNAtThirdBatch: the training loss is nan at NaNAtThirdBatch epoch 1, batch 3; stopped before"
    )
    assert "lr=0.01" in msg and "std 0" in msg
    # the NaN never reached the weights: the optimizer did not step on it
    assert all(torch.isfinite(v).all() for v in model.net.state_dict().values() if v.is_floating_point())
    assert trainer.global_step == 2


def test_diverged_stage1_stops_with_the_ranking_step_and_writes_no_ranking(tmp_path: Path) -> None:
    model = SebraModule(**{**TINY_SEBRA, "rank_lr": 1e12, "rank_optimizer": "sgd"})
    trainer = quiet_trainer(tmp_path, enable_checkpointing=False)
    with pytest.raises(NonFiniteError) as err:
        trainer.fit(model, datamodule=TinyDataModule(batch_size=4))
    msg = str(err.value)
    assert msg.startswith("SebraModule: ") and "Stage 1 ranking step 1" in msg and "rank_lr=1e+12" in msg
    assert "\n" not in msg
    assert model.rankings is None and not list(tmp_path.rglob("rankings.csv"))


def test_jtt_identification_with_nan_scores_names_the_phase(tmp_path: Path) -> None:
    class NaNScores(JTTModule):
        def end_first_phase_epoch(self) -> None:
            with torch.no_grad():
                for p in self.id_net.parameters():
                    p.fill_(float("nan"))
            super().end_first_phase_epoch()

    model = NaNScores(backbone="test_resnet", id_epochs=1, epochs=1)
    with pytest.raises(
        NonFiniteScores,
        match=r"^NaNScores: scoring: the true-class probability is nan for 16 of 16 samples .* at JTT identification epoch 1 \(likely causes",
    ):
        quiet_trainer(tmp_path, enable_checkpointing=False).fit(
            model, datamodule=TinyDataModule(batch_size=8)
        )
    assert not list(tmp_path.rglob("jtt_*.csv"))


def test_score_loader_refuses_non_finite_scores() -> None:
    net = torch.nn.Linear(4, 2)
    with torch.no_grad():
        net.bias[0] = float("inf")
    batches = [{"image": torch.zeros(3, 4), "label": torch.tensor([0, 1, 1])}]
    with pytest.raises(
        NonFiniteScores, match=r"^scoring: the true-class probability is nan for 3 of 3 samples"
    ):
        score_loader(net, batches, device=torch.device("cpu"))


@pytest.mark.parametrize(
    ("p_y", "match"),
    [
        ([float("nan")] * 3, "every p_y is NaN"),
        ([0.5, float("inf"), 0.2], "p_y is inf for dataset index 11"),
    ],
)
def test_save_rankings_refuses_non_finite_scores_and_writes_nothing(tmp_path: Path, p_y, match) -> None:
    df = pd.DataFrame({"index": [10, 11, 12], "label": [0, 0, 1], "rank": [1, 2, 1], "position": [1, 2, 1]})
    df["p_y"] = p_y
    path = tmp_path / "rankings.csv"
    with pytest.raises(ValueError, match=rf"^{path}: not written: {match}"):
        save_rankings(df, path)
    assert list(tmp_path.iterdir()) == []
    df["p_y"] = [0.9, float("nan"), 0.2]  # one sample never scored (sampled scoring): still written
    assert save_rankings(df, path).is_file()

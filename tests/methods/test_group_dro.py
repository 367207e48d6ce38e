"""GroupDRO: the group-weight update against hand computations, and a tiny fit of GroupDROModule."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from tiny_data import TinyDataModule, tiny_splits

from sebra.datasets.base import ImageDataset
from sebra.methods.group_dro import GroupDROLoss, GroupDROModule


def test_update_matches_hand_computation_over_two_batches() -> None:
    dro = GroupDROLoss(num_groups=3, eta=0.5)
    assert torch.allclose(dro.q, torch.full((3,), 1 / 3))

    # Batch 1: group 0 losses 1, 3 (mean 2); group 2 losses 2, 4 (mean 3); group 1 absent.
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0], requires_grad=True)
    out = dro(losses, torch.tensor([0, 0, 2, 2]))
    w = [
        math.exp(0.5 * 2),
        1.0,
        math.exp(0.5 * 3),
    ]  # q_g * exp(eta * loss_g) for present groups, q_1 unchanged
    q1 = [x / sum(w) for x in w]
    assert dro.q.tolist() == pytest.approx(q1, rel=1e-6)
    assert out.item() == pytest.approx(q1[0] * 2 + q1[2] * 3, rel=1e-6)  # the UPDATED q weighs the loss
    # d out / d loss_i = q_g / (samples of g in the batch): q carries no gradient
    out.backward()
    assert losses.grad.tolist() == pytest.approx([q1[0] / 2, q1[0] / 2, q1[2] / 2, q1[2] / 2], rel=1e-6)

    # Batch 2: only group 1, loss 5: q_1 grows by exp(2.5), the others only through renormalisation.
    out2 = dro(torch.tensor([5.0]), torch.tensor([1]))
    w2 = [q1[0], q1[1] * math.exp(0.5 * 5), q1[2]]
    q2 = [x / sum(w2) for x in w2]
    assert dro.q.tolist() == pytest.approx(q2, rel=1e-6)
    assert out2.item() == pytest.approx(q2[1] * 5, rel=1e-6)


def test_adjustment_adds_c_over_sqrt_n_to_the_exponent() -> None:
    dro = GroupDROLoss(num_groups=2, eta=1.0, adjustment=2.0, group_counts=[4, 16])
    assert dro.adjust.tolist() == pytest.approx([1.0, 0.5])  # 2/sqrt(4), 2/sqrt(16)
    out = dro(torch.tensor([1.0, 1.0]), torch.tensor([0, 1]))
    w = [math.exp(1.0 + 1.0), math.exp(1.0 + 0.5)]
    q = [x / sum(w) for x in w]
    assert dro.q.tolist() == pytest.approx(q, rel=1e-6)
    assert out.item() == pytest.approx(
        q[0] * 1 + q[1] * 1, rel=1e-6
    )  # the adjustment is not part of the loss


def test_eval_mode_leaves_q_alone_and_q_is_a_saved_buffer() -> None:
    dro = GroupDROLoss(num_groups=2, eta=1.0).eval()
    out = dro(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    assert dro.q.tolist() == [0.5, 0.5]
    assert out.item() == pytest.approx(2.0)
    assert set(dro.state_dict()) == {"q", "adjust"}


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="group ids must lie in 0..1"):
        GroupDROLoss(2)(torch.tensor([1.0]), torch.tensor([-1]))
    with pytest.raises(ValueError, match="needs group_counts"):
        GroupDROLoss(2, adjustment=1.0)
    with pytest.raises(ValueError, match="group 1 has no training samples"):
        GroupDROLoss(2, adjustment=1.0, group_counts=[3, 0])
    with pytest.raises(ValueError, match="expected losses"):
        GroupDROLoss(2)(torch.tensor([[1.0]]), torch.tensor([0]))


def test_group_dro_module_fits_and_updates_q(tiny_dm, make_trainer) -> None:
    model = GroupDROModule(backbone="test_resnet", epochs=2, eta=0.5, seed=0)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    q = model.dro.q
    assert q.shape == (8,) and q.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(q, torch.full((8,), 1 / 8))  # the weights moved
    assert model.hparams.eta == 0.5 and model.hparams.sampling == "uniform"
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert "dro.q" in ckpt["state_dict"]
    trainer.test(model, datamodule=tiny_dm, ckpt_path="best", verbose=False)
    assert 0.0 <= model.test_results["test_wga"] <= 1.0
    logged = pd.read_csv(f"{trainer.log_dir}/metrics.csv")
    assert "dro_q7" in logged.columns


class _NoGroups(TinyDataModule):
    def build_splits(self) -> dict[str, ImageDataset]:
        splits = tiny_splits()
        train = splits["train"]
        table = train.table.assign(group=-1)
        splits["train"] = ImageDataset(table, images=train._images, bias=train.bias, name="tiny-nogroups")
        return splits


def test_group_dro_module_needs_training_groups(make_trainer) -> None:
    model = GroupDROModule(backbone="test_resnet", epochs=1)
    with pytest.raises(ValueError, match="'tiny-nogroups' has samples without a group label"):
        make_trainer().fit(model, datamodule=_NoGroups())

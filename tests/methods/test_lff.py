"""LfF: the GCE and relative-difficulty weights against written-out formulas, the per-sample loss EMA against LfF's
update rule, and a fit on the tiny data that resumes and tests."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sebra.methods import METHODS
from sebra.methods.lff import LfFModule, SampleLossEMA, generalized_ce, relative_difficulty


def test_gce_matches_formula_and_gradient() -> None:
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    q = 0.7
    loss = generalized_ce(logits, y, q)
    p = F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(loss, -torch.log(p) * p.detach() ** q * q)
    # its gradient is q times that of the GCE (1 - p^q) / q
    (g,) = torch.autograd.grad(loss.sum(), logits)
    logits2 = logits.detach().clone().requires_grad_(True)
    p2 = F.softmax(logits2, 1).gather(1, y[:, None]).squeeze(1)
    (g2,) = torch.autograd.grad(((1 - p2**q) / q).sum(), logits2)
    torch.testing.assert_close(g, q * g2)


def test_relative_difficulty() -> None:
    w = relative_difficulty(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0, 0.5]), atol=1e-6, rtol=0)


def test_ema_follows_lff_rule_and_class_max() -> None:
    indices = torch.tensor([10, 11, 12, 13])
    labels = torch.tensor([0, 0, 1, 1])
    ema = SampleLossEMA(indices, labels, num_classes=2, alpha=0.7)
    ema.update(torch.tensor([2.0, 4.0]), torch.tensor([10, 12]))  # first value taken as is
    assert ema.loss[10] == 2.0 and ema.loss[12] == 4.0 and ema.loss[11] == 0.0
    ema.update(torch.tensor([1.0]), torch.tensor([10]))
    assert ema.loss[10].item() == pytest.approx(0.7 * 2.0 + 0.3 * 1.0)
    torch.testing.assert_close(ema.class_max(), torch.tensor([1.7, 4.0]))
    norm = ema.normalized(torch.tensor([10, 12, 13]), torch.tensor([0, 1, 1]))
    torch.testing.assert_close(norm, torch.tensor([1.0, 1.0, 0.0]))


def test_refuses_bad_q() -> None:
    with pytest.raises(ValueError, match="LfFModule: q must be"):
        LfFModule(backbone="test_resnet", q=0.0)


def test_registered() -> None:
    assert METHODS["lff"] is LfFModule


def test_fit_weights_resume_and_test(tiny_dm, make_trainer, tmp_path) -> None:
    model = LfFModule(backbone="test_resnet", epochs=2, lr=1e-2, selection="last", seed=3)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    train = tiny_dm.train_dataset
    assert bool((model.ema_b.seen[train.indices] == 1).all())  # every training sample averaged
    assert bool((model.ema_b.labels[train.indices] == train.labels).all())
    # the two networks differ (seed, seed + 1) and the debiased one is ERM's initialisation
    assert not torch.equal(model.net.head.weight, model.bias_net.head.weight)
    last = trainer.checkpoint_callbacks[-1].last_model_path
    state = torch.load(last, weights_only=True)["state_dict"]
    torch.testing.assert_close(state["ema_d.loss"], model.ema_d.loss)
    loaded = LfFModule.load_from_checkpoint(last, weights_only=True, num_classes=tiny_dm.num_classes)
    torch.testing.assert_close(loaded.ema_b.loss, model.ema_b.loss)
    trainer.test(model, datamodule=tiny_dm, ckpt_path=last, verbose=False)
    assert 0.0 <= model.test_results["test_acc"] <= 1.0
    assert not math.isnan(model.test_results["test_wga"])

"""Optimizers by name and the two-phase methods' per-epoch cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch

from sebra.methods._optim import cosine_lr, make_optimizer


def test_make_optimizer_by_name() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer("SGD", params, lr=0.1, momentum=0.5, weight_decay=0.01)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.5
    assert isinstance(make_optimizer("adamw", params, lr=0.1), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw"):
        make_optimizer("lbfgs", params, lr=0.1)


def test_cosine_lr_follows_the_initial_rate_over_the_phase() -> None:
    opt = make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(2))], lr=0.2)
    seen = []
    for epoch in range(1, 5):
        cosine_lr(opt, epoch, 4)
        seen.append(opt.param_groups[0]["lr"])
    assert opt.param_groups[0]["initial_lr"] == 0.2  # recorded by the first call, never moved
    assert seen == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) for e in range(1, 5)], rel=1e-6)
    assert seen[-1] == pytest.approx(0.0, abs=1e-9)

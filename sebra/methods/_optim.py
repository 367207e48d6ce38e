"""Optimizers by name and the per-epoch cosine schedule of the two-phase methods."""

from __future__ import annotations

from typing import get_args

import torch

from sebra.methods._args import Optimizer

__all__ = ["OPTIMIZERS", "cosine_lr", "make_optimizer"]

OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)


def make_optimizer(
    name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``sgd`` / ``adam`` / ``adamw`` by name, so configs stay flat."""
    name = str(name).lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def cosine_lr(optimizer: torch.optim.Optimizer, epoch: int, total: int) -> None:
    """Set each parameter group's learning rate to ``0.5 * initial_lr * (1 + cos(pi * epoch / total))``.

    JTT and Sebra step one optimizer per phase by hand (manual optimization), so the schedule of a phase is applied
    at the end of each of its epochs (``epoch`` done of ``total``) rather than by a Lightning scheduler; the first
    call records ``initial_lr``, which checkpoints keep with the optimizer state.
    """
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
        g["lr"] = (
            0.5 * g["initial_lr"] * (1 + torch.cos(torch.tensor(torch.pi * epoch / max(1, total))).item())
        )

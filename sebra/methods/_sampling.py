"""The seeded training loaders of ERM, GroupDRO and JTT: shuffled, or drawn with replacement by weight."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

__all__ = ["shuffled_loader", "weighted_loader"]


def shuffled_loader(dm: Any, generator: torch.Generator) -> DataLoader:
    """``dm``'s training split, shuffled by ``generator`` (the module's, saved in its checkpoints)."""
    return dm.loader(dm.train_dataset, batch_size=dm.batch_size, shuffle=True, generator=generator)


def weighted_loader(dm: Any, weights: torch.Tensor, generator: torch.Generator) -> DataLoader:
    """As many draws from ``dm``'s training split as it has samples, with replacement, position ``i`` drawn with
    weight ``weights[i]`` (from ``generator``)."""
    train = dm.train_dataset
    sampler = WeightedRandomSampler(weights, len(train), replacement=True, generator=generator)
    return dm.loader(train, batch_size=dm.batch_size, sampler=sampler)

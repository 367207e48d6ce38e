"""Sharding of the loaders under data parallelism: fixed index lists and padded evaluation shards.

Evaluation splits are split by stride into equal-length shards whose padding rows carry ``valid=False`` (the methods
leave them out of the metrics, so the synced metrics equal a single-process evaluation). Every sampler is a
:class:`~torch.utils.data.DistributedSampler` subclass, so Lightning does not shard it a second time.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["EvalShard", "ShardSampler", "shard_positions"]


class ShardSampler(DistributedSampler):
    """Yields a fixed list of indices: this process's share, already sharded (and padded) by the caller.

    A :class:`~torch.utils.data.DistributedSampler` subclass only so that Lightning leaves it in place instead of
    sharding the loader a second time; none of the parent's machinery is used.
    """

    def __init__(self, indices, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = [int(i) for i in torch.as_tensor(indices).reshape(-1).tolist()]
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self.seed, self.shuffle, self.drop_last = 0, 0, False, False
        self.num_samples = len(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


def shard_positions(n: int, num_replicas: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Strided share ``rank, rank + k, ...`` of ``0..n-1``, padded to ``ceil(n / k)``; returns ``(positions, valid)``.

    Padding repeats the share's first position (or 0) with ``valid=False``, so every process runs the same number of
    batches (DDP synchronises buffers on every forward) and no sample is counted twice.
    """
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must lie in 0..{num_replicas - 1}, got {rank}")
    pos = torch.arange(n)[rank::num_replicas]
    size = -(-n // num_replicas)
    pad = size - len(pos)
    fill = pos[:1] if len(pos) else torch.zeros(1, dtype=torch.long)
    positions = torch.cat([pos, fill.repeat(pad)])
    valid = torch.cat([torch.ones(len(pos), dtype=torch.bool), torch.zeros(pad, dtype=torch.bool)])
    return positions, valid


class EvalShard(Dataset):
    """One process's padded share of an evaluation split; each item gets ``valid`` (False on padding rows)."""

    def __init__(self, base: Dataset, positions: torch.Tensor, valid: torch.Tensor) -> None:
        self.base, self.positions, self.valid = base, positions, valid

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[int(self.positions[i])])
        item["valid"] = bool(self.valid[i])
        return item

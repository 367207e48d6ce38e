"""Which samples a ranking grid shows: per class, the extremes and one strip per rank bucket.

Kept apart from drawing so the choice can be checked against the ranking table alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sebra.export import check_rankings

__all__ = ["RankBucket", "extreme_indices", "rank_bucket_indices"]


@dataclass(frozen=True)
class RankBucket:
    """Samples of one class whose rank falls in ``ranks`` (one rank value, or a run of them when there are many).

    Attributes:
        ranks: the rank values the bucket covers, ascending (``(-1,)`` for never-eliminated in official mode).
        n: how many samples of the class the bucket holds.
        indices: the dataset indices chosen to show, in tile order (ascending ``position``).
    """

    ranks: tuple[int, ...]
    n: int
    indices: list[int]

    @property
    def caption(self) -> str:
        """``rank 3``, ``ranks 3-5`` or ``rank -1 (never)``."""
        if self.ranks == (-1,):
            return "rank -1 (never)"
        if len(self.ranks) == 1:
            return f"rank {self.ranks[0]}"
        return f"ranks {self.ranks[0]}-{self.ranks[-1]}"


def _class_rows(rankings: pd.DataFrame, label: int) -> pd.DataFrame:
    rows = rankings[rankings["label"] == label]
    if rows.empty:
        present = sorted(rankings["label"].unique().tolist())
        raise ValueError(f"rankings hold no sample of class {label}; classes present: {present}")
    return rows.sort_values(["position", "index"], kind="stable")


def extreme_indices(rankings: pd.DataFrame, label: int, k: int = 8) -> tuple[list[int], list[int]]:
    """The ``k`` most and ``k`` least spurious samples of one class.

    Args:
        rankings: the ranking table (see :mod:`sebra.export`).
        label: the class.
        k: tiles per side. A class with fewer than ``2k`` samples is split in two disjoint halves (the most
            spurious side gets the odd one), so no sample is shown twice.

    Returns:
        ``(most, least)`` dataset indices: ``most`` by ascending ``position`` (1, 2, ...), ``least`` by
        descending ``position`` (n, n-1, ...), i.e. each starts from its extreme.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_rankings(rankings)
    ids = _class_rows(rankings, label)["index"].astype("int64").tolist()
    n = len(ids)
    n_most = k if n >= 2 * k else math.ceil(n / 2)
    n_least = k if n >= 2 * k else n - n_most
    return ids[:n_most], ids[::-1][:n_least]


def _rank_key(r: int) -> tuple[int, int]:
    return (1, 0) if r < 0 else (0, r)  # never-eliminated (-1) after every real step


def rank_bucket_indices(
    rankings: pd.DataFrame, label: int, per_bucket: int = 4, max_buckets: int = 12
) -> list[RankBucket]:
    """A few samples of one class per rank value, for a strip per rank.

    Args:
        rankings: the ranking table.
        label: the class.
        per_bucket: samples shown per bucket, spread evenly over the bucket in ``position`` order (the first and
            last included), so a bucket of many ranks shows its range.
        max_buckets: when the class has more distinct ranks, consecutive ranks are merged into this many buckets
            of about equal numbers of rank values (rank -1, if present, always stays its own bucket).

    Returns:
        Buckets in rank order, rank -1 (never eliminated, official mode) last.
    """
    if per_bucket < 1 or max_buckets < 1:
        raise ValueError(f"per_bucket and max_buckets must be at least 1, got {per_bucket} and {max_buckets}")
    check_rankings(rankings)
    rows = _class_rows(rankings, label)
    ranks = sorted({int(r) for r in rows["rank"]}, key=_rank_key)
    never = [r for r in ranks if r < 0]
    real = [r for r in ranks if r >= 0]
    n_real = max(max_buckets - len(never), 1)
    chunks = (
        [[int(r) for r in c] for c in np.array_split(np.asarray(real), min(n_real, len(real)))]
        if real
        else []
    )
    chunks += [[r] for r in never]
    out = []
    for chunk in chunks:
        sel = rows[rows["rank"].isin(chunk)]
        m = len(sel)
        take = np.unique(np.linspace(0, m - 1, min(per_bucket, m)).round().astype(np.int64))
        out.append(
            RankBucket(tuple(int(r) for r in chunk), m, sel["index"].iloc[take].astype("int64").tolist())
        )
    return out

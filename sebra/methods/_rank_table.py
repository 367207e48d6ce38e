"""A given ranking table, read once and checked against the training split, and its per-class rank bins per
training position: what every mitigation that consumes a ranking needs, and all it may know of the ranker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sebra.export import check_ranking_values, check_rankings, load_rankings
from sebra.methods._args import require
from sebra.methods.sebra_stage2 import check_given_rankings, stage2_bins
from sebra.ranking import first_wave

__all__ = ["first_wave", "given_rankings", "position_bins"]


def given_rankings(rankings: str | Path | pd.DataFrame, owner: str) -> pd.DataFrame:
    """The table itself (checked: columns and values) or the ``rankings.csv`` at that path (checked on load)."""
    if isinstance(rankings, pd.DataFrame):
        check_rankings(rankings, f"{owner}(rankings=...)")
        check_ranking_values(rankings, f"{owner}(rankings=...)")
        return rankings
    return load_rankings(rankings)


def position_bins(rankings: pd.DataFrame, train: Any, bins: int, owner: str) -> torch.Tensor:
    """``[len(train)]`` per-class rank bin of each training position, ``0`` (most spurious) .. ``bins - 1``.

    The bins are the per-class equal-size bins of the ranked order that Stage 2 pairs on
    (:func:`~sebra.methods.sebra_stage2.stage2_bins`), so they mean the same for any ranker's table: a table with
    one sample per rank (ERM confidence) and one with two levels (JTT's error set) both give ``bins`` equal parts.

    Raises:
        ValueError: ``bins`` is not an integer >= 2, or the table does not rank exactly ``train`` (naming the first
            offending row).
    """
    require(owner, "bins", bins, integer=True, low=2)
    table = check_given_rankings(rankings, train, owner)
    binned = pd.Series(stage2_bins(table, bins) - 1, index=table["index"].to_numpy())
    return torch.from_numpy(np.array(binned.loc[train.indices.numpy()].to_numpy(dtype=np.int64)))

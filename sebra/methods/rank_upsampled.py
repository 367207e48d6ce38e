"""Rank-upsampled ERM: JTT's retraining step with the ranking table in place of JTT's own error set.

JTT (Liu et al., ICML 2021) draws the samples its identification network got wrong ``upweight`` times as often as
the rest. Here the table decides instead, on a graded scale rather than two levels: each class's ranked order is cut
into ``bins`` equal parts (the bins Stage 2 pairs on) and part ``b`` (``0`` = most spurious) is drawn with weight
``upweight ** (b / (bins - 1))``, so the least spurious part is drawn ``upweight`` times as often as the most
spurious one. It reads only the table and the data module: it does not know which ranker made the table.

``weighting="first_wave"`` balances instead: each class's first elimination wave (the samples with the class's
lowest ``rank``: what the ranker's network learned first) and the rest of the class are drawn equally often. The
shortcut that made the wave is then no longer predictive in the draws, so a network trained on them learns the
*next* shortcut first: what a ranking blind to a slower shortcut needs a second look at (issue 17's "peel" trial,
``benchmarks/peel_trial.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from typing_extensions import override

from sebra.methods._args import check_choices, require
from sebra.methods._rank_table import first_wave, given_rankings, position_bins
from sebra.methods._sampling import weighted_loader
from sebra.methods.erm import ERMModule
from sebra.methods.sebra_stage2 import check_given_rankings
from sebra.ranking import first_wave_weights as balanced_weights

__all__ = ["RankUpsampledModule", "bin_weights", "first_wave_weights"]

Weighting = Literal["bins", "first_wave"]


def bin_weights(bins: torch.Tensor, num_bins: int, upweight: float) -> torch.Tensor:
    """Draw weight per sample from its rank bin: geometric from 1 (bin 0) to ``upweight`` (bin ``num_bins - 1``)."""
    return torch.as_tensor(upweight, dtype=torch.float64) ** (bins.double() / (num_bins - 1))


def first_wave_weights(rankings: pd.DataFrame, train: Any, owner: str) -> torch.Tensor:
    """``[len(train)]`` draw weight per training position: within each class, the first wave (rank equal to the
    class's lowest rank) and the rest get equal total weight, and each class keeps its share of the draws
    (:func:`sebra.ranking.first_wave_weights`). A class whose samples all share one rank is drawn uniformly."""
    table = check_given_rankings(rankings, train, owner)
    first = pd.Series(first_wave(table).to_numpy(), index=table["index"].to_numpy()).loc[
        train.indices.numpy()
    ]
    return balanced_weights(train.labels, torch.from_numpy(np.array(first.to_numpy(dtype=bool))))


class RankUpsampledModule(ERMModule):
    """ERM trained from scratch on draws weighted by the ranking (no group labels).

    Args:
        rankings: the ranking table (DataFrame or a ``rankings.csv`` path) of the training split.
        bins: per-class equal-size bins of the ranked order (>= 2).
        upweight: draw weight of the least spurious bin relative to the most spurious one (JTT's lambda_up for
            its two levels; geometric in between).
        weighting: ``"bins"`` (the upweighting above) or ``"first_wave"`` (each class's first wave and the rest
            drawn equally often; ``bins`` and ``upweight`` unused).
        **kwargs: :class:`~sebra.methods.erm.ERMModule`'s arguments (network, optimizer, epochs, selection,
            seed); ``sampling`` must stay ``uniform``: the ranking replaces it.
    """

    def __init__(
        self,
        rankings: str | Path | pd.DataFrame,
        bins: int = 10,
        upweight: float = 20.0,
        weighting: Weighting = "bins",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("sampling", "uniform") != "uniform":
            raise ValueError(
                f"RankUpsampledModule: sampling must be 'uniform' (the ranking sets the draws), got "
                f"{kwargs['sampling']!r}"
            )
        super().__init__(**kwargs)
        require(type(self).__name__, "bins", bins, integer=True, low=2)
        require(type(self).__name__, "upweight", upweight, low=1)
        check_choices(type(self), {"weighting": weighting})
        self.given_rankings = given_rankings(rankings, type(self).__name__)
        self.draw_weights: torch.Tensor | None = None  # per training position

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit" or self.draw_weights is not None:
            return
        if self.hparams.weighting == "first_wave":
            self.draw_weights = first_wave_weights(
                self.given_rankings, self.datamodule.train_dataset, "RankUpsampledModule"
            )
        else:
            bins = position_bins(
                self.given_rankings, self.datamodule.train_dataset, self.hparams.bins, "RankUpsampledModule"
            )
            self.draw_weights = bin_weights(bins, self.hparams.bins, self.hparams.upweight)

    @override
    def train_loader(self, dm: Any) -> DataLoader:
        """Seeded draws with replacement, weighted by rank bin."""
        return weighted_loader(dm, self.draw_weights, self.sample_generator)

"""GroupDRO on pseudo-groups made of rank bins: the worst-group objective without group labels.

GroupDRO (Sagawa et al., ICLR 2020) needs a group per training sample. Here a sample's group is its class and the
part of its class's ranked order it falls in (``bins`` equal parts, the bins Stage 2 pairs on): group
``label * bins + bin``. If the ranking puts bias-conflicting samples last, the last bins' loss stays high under ERM
and GroupDRO's weights move to them. It reads only the table and the data module: it does not know which ranker
made the table, and it never reads the data set's group labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from typing_extensions import override

from sebra.methods._rank_table import given_rankings, position_bins
from sebra.methods.group_dro import GroupDROLoss, GroupDROModule

__all__ = ["RankGroupDROModule"]


class RankGroupDROModule(GroupDROModule):
    """GroupDRO whose groups are (class, rank bin) from a ranking table.

    Args:
        rankings: the ranking table (DataFrame or a ``rankings.csv`` path) of the training split.
        bins: per-class equal-size bins of the ranked order (>= 2); ``num_classes * bins`` pseudo-groups.
        **kwargs: :class:`~sebra.methods.group_dro.GroupDROModule`'s arguments; ``sampling`` must stay
            ``uniform`` (``group_balanced`` draws by the true groups, and equal-size bins are balanced already).
    """

    def __init__(self, rankings: str | Path | pd.DataFrame, bins: int = 10, **kwargs: Any) -> None:
        if kwargs.get("sampling", "uniform") != "uniform":
            raise ValueError(
                f"RankGroupDROModule: sampling must be 'uniform' (group_balanced would read the true groups), "
                f"got {kwargs['sampling']!r}"
            )
        super().__init__(**kwargs)
        self.given_rankings = given_rankings(rankings, type(self).__name__)
        self.pseudo_groups: torch.Tensor | None = None  # indexed by dataset index

    @override
    def setup(self, stage: str) -> None:
        super(GroupDROModule, self).setup(stage)  # skips GroupDROModule.setup: that one reads the true groups
        if self.dro is not None and self.pseudo_groups is not None:
            return
        dm = self.datamodule
        if not hasattr(dm, "train_dataset"):
            dm.setup("fit")
        train = dm.train_dataset
        bins = self.hparams.bins
        groups = train.labels.long() * bins + position_bins(
            self.given_rankings, train, bins, type(self).__name__
        )
        lookup = torch.full((int(train.indices.max()) + 1,), -1, dtype=torch.long)
        lookup[train.indices] = groups
        self.pseudo_groups = lookup
        if self.dro is None:
            num_groups = int(dm.num_classes) * bins
            self.dro = GroupDROLoss(
                num_groups,
                eta=self.hparams.eta,
                adjustment=self.hparams.adjustment,
                group_counts=torch.bincount(groups, minlength=num_groups),
            )

    @override
    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The group-DRO objective over the batch, grouped by (class, rank bin)."""
        losses = F.cross_entropy(logits, batch["label"], reduction="none")
        return self.dro(losses, self.pseudo_groups[batch["index"].cpu()].to(losses.device))

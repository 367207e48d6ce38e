"""Sebra's Stage 2 as a component (:class:`PairMitigation`, composed by :class:`~sebra.methods.sebra.SebraModule`):
a given ranking table checked against the training data, the epoch's (anchor, positive, negative) pairs mined from
its ranks, and the mitigation loss."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from sebra.contrastive import PairTable, RankContrastiveLoss, mine_rank_pairs
from sebra.methods._args import check_args, check_choices
from sebra.utils.rng import GeneratorPickling

__all__ = [
    "CEOn",
    "FeaturePass",
    "PairDataset",
    "PairMitigation",
    "Pairs",
    "check_given_rankings",
    "stage2_bins",
]

CEOn = Literal["positive", "anchor", "both"]
Pairs = Literal["paper", "official"]
FeaturePass = Literal["official", "shared"]


def stage2_bins(rankings: pd.DataFrame, bins: int) -> np.ndarray:
    """Per-class equal-size bins ``1..bins`` of the ranked order: ``ceil(position / n_class * bins)``."""
    n = rankings.groupby("label")["position"].transform("max").to_numpy()
    return np.ceil(rankings["position"].to_numpy() / n * bins).astype(np.int64).clip(1, bins)


def check_given_rankings(df: pd.DataFrame, train: Any, owner: str) -> pd.DataFrame:
    """``df`` when it ranks exactly the training split ``train``: every row a training sample (by dataset index),
    every training sample present, each with its label. Raises ``ValueError`` naming the first offending row."""
    ids = np.asarray(df["index"].to_numpy(), dtype=np.int64)
    unknown = ~np.isin(ids, train.indices.numpy())
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ValueError(
            f"{owner}(rankings=...): row {i} (dataset index {ids[i]}) is not a training sample of "
            f"{train.name!r}, nor are {int(unknown.sum()) - 1} other row(s); expected one row per training sample "
            f"(the rankings of this data set's training split, {len(train)} samples)"
        )
    missing = set(train.indices.tolist()) - set(df["index"].tolist())
    if missing:
        raise ValueError(
            f"rankings lack {len(missing)} training samples (dataset index {min(missing)} first)"
        )
    by_index = df.set_index("index").loc[train.indices.numpy()]
    bad = by_index["label"].to_numpy() != train.labels.numpy()
    if bad.any():
        idx = int(train.indices[torch.as_tensor(bad)][0])
        raise ValueError(f"rankings give dataset index {idx} another label than the training data")
    return df


class PairDataset(Dataset):
    """Serves one epoch of (anchor, positive, negative) rows; each image gets its own augmentation draw."""

    def __init__(
        self, base: Dataset, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> None:
        self.base, self.anchor, self.positive, self.negative = base, anchor, positive, negative

    def __len__(self) -> int:
        return len(self.anchor)

    def __getitem__(self, i: int) -> dict:
        return {
            "anchor": self.base[int(self.anchor[i])],
            "positive": self.base[int(self.positive[i])],
            "negative": self.base[int(self.negative[i])],
        }


class PairMitigation(GeneratorPickling):
    """Sebra's Stage 2 as a component: the epoch's (anchor, positive, negative) pairs mined from a ranking table, and
    the rank-aware contrastive loss (plus the cross-entropy term) of a batch of them.

    It reads only the ranking table and the training split it ranks, never the ranker that made the table (Sebra's
    Stage 1, ERM confidence, a user's own ``rankings.csv``: the same table, the same pairs). Its state (the pair
    generator and the anchors trained on) is :meth:`state_dict`; :class:`~sebra.methods.sebra.SebraModule` saves
    it in its checkpoints, so a resumed Stage 2 mines the pairs an uninterrupted one would.

    Args:
        gap: positives come from rank ``r + gap`` or higher.
        temperature, ce_weight, contrastive_weight: the loss (:class:`~sebra.contrastive.RankContrastiveLoss`);
            ``contrastive_weight=0`` is cross-entropy on the chosen images alone, without the feature passes.
        ce_on: which images get the CE term: ``positive`` (official), ``anchor`` or ``both``.
        pairs: ``paper`` or ``official`` mining (:func:`~sebra.contrastive.mine_rank_pairs`).
        feature_pass: ``official`` (positives and negatives re-encoded in eval mode without gradients) or
            ``shared`` (positive features taken, detached, from the training forward).
        bn_eval: keep BatchNorm in eval mode while training.
        rank_bins: pair on this many equal-size per-class bins of ``position`` instead of the raw ranks.
        seed: seeds the pair generator (``seed + 1``, as before the component existed: same pairs).
    """

    def __init__(
        self,
        gap: int = 5,
        temperature: float = 0.05,
        ce_weight: float = 0.5,
        contrastive_weight: float = 1.0,
        ce_on: CEOn = "positive",
        pairs: Pairs = "paper",
        feature_pass: FeaturePass = "official",
        bn_eval: bool = False,
        rank_bins: int | None = None,
        seed: int = 0,
    ) -> None:
        check_choices(PairMitigation, {"ce_on": ce_on, "pairs": pairs, "feature_pass": feature_pass})
        check_args(
            "PairMitigation",
            gap=gap,
            temperature=temperature,
            ce_weight=ce_weight,
            contrastive_weight=contrastive_weight,
            rank_bins=rank_bins,
            seed=seed,
        )
        self.gap, self.ce_on, self.pairs, self.feature_pass = int(gap), ce_on, pairs, feature_pass
        self.bn_eval, self.rank_bins = bool(bn_eval), rank_bins
        self.criterion = RankContrastiveLoss(temperature, ce_weight, contrastive_weight)
        self.pair_generator = torch.Generator().manual_seed(seed + 1)
        self.pairs_seen = 0  # anchors trained on (this process)
        self.n_dropped = 0  # anchors of the current pair table without a valid positive (logged)
        self._pair_cache: tuple[int, PairTable] | None = None  # (epoch, this process's pair table)

    # --- pairs ---------------------------------------------------------------------------------------------------
    def ranks_by_position(self, rankings: pd.DataFrame, train: Any) -> torch.Tensor:
        """The rank used for pairing, per training position: the raw rank, or its per-class bin (``rank_bins``)."""
        df = rankings
        if self.rank_bins:
            df = df.assign(rank=stage2_bins(df, self.rank_bins))
        r = df.set_index("index").loc[train.indices.numpy(), "rank"].to_numpy()
        return torch.tensor(r, dtype=torch.long)

    def epoch_pairs(
        self, rankings: pd.DataFrame, train: Any, epoch: int, replicas: tuple[int, int] = (1, 0)
    ) -> PairTable:
        """Epoch ``epoch``'s pair table over the training positions of ``train``, its rows shuffled (both seeded),
        this process's strided share of it under data parallelism (``replicas``: world size, rank).

        Mined once per epoch: Lightning may build the training loader twice for one epoch (it does when resuming
        from a checkpoint), and the seeded generator must advance exactly once per epoch.
        """
        if self._pair_cache is not None and self._pair_cache[0] == epoch:
            return self._pair_cache[1]
        table = mine_rank_pairs(
            self.ranks_by_position(rankings, train),
            train.labels,
            gap=self.gap,
            generator=self.pair_generator,
            official=self.pairs == "official",
        )
        perm = torch.randperm(len(table), generator=self.pair_generator)
        world, rank = replicas
        if world > 1:  # same table on every process; each keeps a strided share, padded to equal batch counts
            size = -(-len(perm) // world)
            perm = torch.cat([perm, perm[: size * world - len(perm)]])[rank::world]
        self.n_dropped = table.n_dropped
        share = type(table)(table.anchor[perm], table.positive[perm], table.negative[perm], table.n_dropped)
        self._pair_cache = (epoch, share)
        return share

    # --- the loss ------------------------------------------------------------------------------------------------
    def train_mode(self, net: nn.Module) -> None:
        """Put ``net`` in its training mode for an epoch (BatchNorm frozen with ``bn_eval``)."""
        net.train(not self.bn_eval)

    def loss(self, net: Any, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss of a batch of pairs for the classifier ``net`` (``features`` and ``head``) and its parts
        (``con``, ``ce``), as :attr:`criterion` combines them; counts the batch's anchors in :attr:`pairs_seen`."""
        a, p, n = batch["anchor"], batch["positive"], batch["negative"]
        y = a["label"]
        self.pairs_seen += len(y)
        if self.criterion.con_weight == 0:  # CE on the chosen images only: no contrastive feature passes
            if self.ce_on == "positive":
                x, labels = p["image"], p["label"]
            elif self.ce_on == "anchor":
                x, labels = a["image"], y
            else:
                x, labels = torch.cat([a["image"], p["image"]]), torch.cat([y, p["label"]])
            ce = F.cross_entropy(net(x), labels)
            return self.criterion.ce_weight * ce, {
                "con": torch.zeros((), device=ce.device),
                "ce": ce.detach(),
            }
        with torch.no_grad():
            net.eval()
            if self.feature_pass == "official":
                zp_ref, zn_ref = net.features(torch.cat([p["image"], n["image"]])).chunk(2)
            else:
                zn_ref = net.features(n["image"])
            self.train_mode(net)
        feats = net.features(torch.cat([a["image"], p["image"]]))
        za, zp = feats.chunk(2)
        if self.feature_pass == "shared":
            zp_ref = zp.detach()
        if self.ce_on == "positive":
            logits, labels = net.head(zp), p["label"]
        elif self.ce_on == "anchor":
            logits, labels = net.head(za), y
        else:
            logits, labels = net.head(feats), torch.cat([y, p["label"]])
        return self.criterion(za, zp_ref, zn_ref, logits, labels)

    # --- state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a resumed Stage 2 needs: the pair generator's state and the anchors trained on."""
        return {"pairs_seen": self.pairs_seen, "pair_generator": self.pair_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (the mined-pair cache is dropped: the next epoch mines again)."""
        self.pairs_seen = state.get("pairs_seen", self.pairs_seen)
        self.pair_generator.set_state(state["pair_generator"])
        self._pair_cache = None

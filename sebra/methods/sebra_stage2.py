"""Sebra's Stage 2 inside :class:`~sebra.methods.sebra.SebraModule`: the given ranking table checked against the
training data, the epoch's (anchor, positive, negative) pairs mined from the ranks, and the mitigation loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sebra.contrastive import PairTable, mine_rank_pairs

__all__ = ["PairDataset", "PairMitigation", "check_given_rankings", "stage2_bins"]


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


class PairMitigation:
    """The Stage 2 part of :class:`~sebra.methods.sebra.SebraModule` (a mixin: it uses the module's ranking table
    ``rankings``, hyper-parameters, ``pair_generator``, ``final_epoch``, ``criterion`` and network ``net``)."""

    def _ranks_by_position(self, train: Any) -> torch.Tensor:
        """The rank used for pairing, per training position: the raw rank, or its per-class bin (``rank_bins``)."""
        df = self.rankings
        if self.hparams.rank_bins:
            df = df.assign(rank=stage2_bins(df, self.hparams.rank_bins))
        r = df.set_index("index").loc[train.indices.numpy(), "rank"].to_numpy()
        return torch.tensor(r, dtype=torch.long)

    def _epoch_pairs(self, train: Any) -> PairTable:
        """Mine this epoch's pair table from the ranks, then shuffle its rows (both seeded).

        Mined once per Stage 2 epoch: Lightning may build the training loader twice for one epoch (it does when
        resuming from a checkpoint), and the seeded generator must advance exactly once per epoch.
        """
        if self._pair_cache is not None and self._pair_cache[0] == self.final_epoch:
            return self._pair_cache[1]
        table = mine_rank_pairs(
            self._ranks_by_position(train),
            train.labels,
            gap=self.hparams.gap,
            generator=self.pair_generator,
            official=self.hparams.pairs == "official",
        )
        perm = torch.randperm(len(table), generator=self.pair_generator)
        world, rank = self._replicas()
        if world > 1:  # same table on every process; each keeps a strided share, padded to equal batch counts
            size = -(-len(perm) // world)
            perm = torch.cat([perm, perm[: size * world - len(perm)]])[rank::world]
        self.n_dropped = table.n_dropped
        share = type(table)(table.anchor[perm], table.positive[perm], table.negative[perm], table.n_dropped)
        self._pair_cache = (self.final_epoch, share)
        return share

    def _mitigation_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The Stage 2 loss of a batch of pairs and its parts (``con``, ``ce``), as ``criterion`` combines them."""
        a, p, n = batch["anchor"], batch["positive"], batch["negative"]
        y = a["label"]
        net, bn_eval = self.net, self.hparams.bn_eval
        if self.criterion.con_weight == 0:  # CE on the chosen images only: no contrastive feature passes
            ce_on = self.hparams.ce_on
            if ce_on == "positive":
                x, labels = p["image"], p["label"]
            elif ce_on == "anchor":
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
            if self.hparams.feature_pass == "official":
                zp_ref, zn_ref = net.features(torch.cat([p["image"], n["image"]])).chunk(2)
            else:
                zn_ref = net.features(n["image"])
            net.train(not bn_eval)
        feats = net.features(torch.cat([a["image"], p["image"]]))
        za, zp = feats.chunk(2)
        if self.hparams.feature_pass == "shared":
            zp_ref = zp.detach()
        ce_on = self.hparams.ce_on
        if ce_on == "positive":
            logits, labels = net.head(zp), p["label"]
        elif ce_on == "anchor":
            logits, labels = net.head(za), y
        else:
            logits, labels = net.head(feats), torch.cat([y, p["label"]])
        return self.criterion(za, zp_ref, zn_ref, logits, labels)

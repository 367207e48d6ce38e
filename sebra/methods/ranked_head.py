"""Rank-balanced last-layer retraining: a trained network's features, a new linear head fitted on the least spurious
part of each class's ranking.

This is DFR's idea (Kirichenko et al., 2023: retrain the last layer on group-balanced data) without group labels:
the ranking table chooses the data, as Moayeri et al. (NeurIPS 2023) retrain on the lowest-spuriosity images of each
class. The backbone stays frozen (eval mode, batch-norm statistics included) and its features of the chosen samples
are computed once, so a fit costs one feature pass over a few hundred images plus a few hundred head steps on cached
features: seconds, against minutes for one epoch of the backbone.

It reads only the ranking table (any ranker's: :mod:`sebra.scoring`, Sebra's Stage 1, a ``rankings.csv``) and the
data module: it does not know which ranker made the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import Selection, require
from sebra.methods._rank_table import given_rankings
from sebra.methods.base import EpochLimited
from sebra.methods.sebra_stage2 import check_given_rankings

__all__ = ["RankedHeadModule", "least_spurious", "load_classifier"]


def least_spurious(rankings: pd.DataFrame, per_class: int) -> np.ndarray:
    """Dataset indices of the ``per_class`` last-ranked (least spurious) samples of every class, the same number
    from each class (``min(per_class, smallest class)``), classes in label order, each class's samples in ranked
    order. Like a miner, it returns indices and nothing else.

    Raises:
        ValueError: ``per_class`` is not a positive integer.
    """
    require("least_spurious", "per_class", per_class, integer=True, low=1)
    groups = {c: g.sort_values("position") for c, g in rankings.groupby("label", sort=True)}
    take = min(per_class, min(len(g) for g in groups.values()))
    return np.concatenate([g["index"].to_numpy(dtype=np.int64)[-take:] for g in groups.values()])


def load_classifier(checkpoint: str | Path) -> Classifier:
    """The :class:`~sebra.backbones.Classifier` a sebra fit saved as ``net`` (ERM, the oracle, GroupDRO).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the checkpoint holds no ``net`` classifier (e.g. Sebra's or JTT's, whose tested network has
            another name), naming the file and what was expected.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (expected a .ckpt written by a sebra ERM fit)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = {k[4:]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith("net.")}
    hp = ckpt.get("hyper_parameters", {})
    if "head.weight" not in state or "backbone" not in hp:
        raise ValueError(
            f"{path}: expected a sebra checkpoint with a 'net' classifier (net.backbone.*, net.head.*) and a "
            f"'backbone' hyper-parameter, as ERMModule writes; found {len(state)} 'net.' tensors"
        )
    net = Classifier(hp["backbone"], int(state["head.weight"].shape[0]))
    net.load_state_dict(state)
    return net


class _Features(Dataset):
    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.features[i], "label": self.labels[i]}


class RankedHeadModule(EpochLimited):
    """A frozen trained network with a new linear head, fitted on a class-balanced subset of least spurious samples.

    Args:
        checkpoint: a checkpoint of a fitted ``ERMModule`` (or any sebra module whose network is ``net``): its
            backbone is kept frozen.
        rankings: the ranking table (DataFrame or a ``rankings.csv`` path) of the training split.
        per_class: how many of each class's last-ranked samples train the head (the same number per class).
        epochs: passes of the head over the chosen samples' cached features.
        batch_size: head batch size.
        lr, weight_decay: AdamW for the head.
        selection: see :class:`~sebra.methods.base.BaseMethod`.
        seed: seeds the new head and the shuffling.
    """

    def __init__(
        self,
        checkpoint: str,
        rankings: str | Path | pd.DataFrame,
        per_class: int = 100,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        selection: Selection = "val_wga",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(selection=selection, num_classes=num_classes)
        self.save_hyperparameters(ignore=["rankings"])
        for name, low in (("per_class", 1), ("epochs", 1), ("batch_size", 1)):
            require(type(self).__name__, name, getattr(self.hparams, name), integer=True, low=low)
        require(type(self).__name__, "lr", lr, low=0, low_open=True)
        require(type(self).__name__, "weight_decay", weight_decay, low=0)
        self.given_rankings = given_rankings(rankings, type(self).__name__)
        self.net: Classifier | None = None
        self.chosen: np.ndarray | None = None  # dataset indices of the samples that train the head
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        self._features: _Features | None = None

    @override
    def configure_model(self) -> None:
        if self.net is not None:
            return
        self.net = load_classifier(self.hparams.checkpoint)
        self.net.backbone.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.hparams.seed)
            self.net.head.reset_parameters()

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.chosen is None:
            train = self.datamodule.train_eval_dataset
            check_given_rankings(self.given_rankings, train, "RankedHeadModule")
            self.chosen = least_spurious(self.given_rankings, self.hparams.per_class)

    def _cache_features(self) -> _Features:
        """The frozen backbone's features of the chosen samples (eval transform, eval mode), computed once."""
        dm = self.datamodule
        train = dm.train_eval_dataset
        subset = train.subset(train.positions_of(torch.from_numpy(self.chosen)))
        feats, labels = [], []
        self.net.backbone.eval()
        with torch.no_grad():
            for batch in dm.loader(subset):
                x = dm.batch_transform(batch["image"].to(self.device), False)
                feats.append(self.net.features(x).cpu())
                labels.append(batch["label"])
        return _Features(torch.cat(feats), torch.cat(labels))

    def train_loader(self, dm: Any) -> DataLoader:
        """Seeded batches of cached features (the data module's own loader would feed images)."""
        if self._features is None:
            self._features = self._cache_features()
        return DataLoader(
            self._features, batch_size=self.hparams.batch_size, shuffle=True, generator=self.shuffle_generator
        )

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.net.backbone.eval()  # frozen, batch-norm statistics included

    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self.net.head(batch["features"]), batch["label"])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    @override
    def extra_metrics(self) -> dict[str, float]:
        return {"head_samples": float(len(self.chosen))} if self.chosen is not None else {}

    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ranked_head"] = {
            "shuffle_generator": self.shuffle_generator.get_state(),
            "chosen": None if self.chosen is None else self.chosen.tolist(),
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ranked_head")
        if state is not None:
            self.shuffle_generator.set_state(state["shuffle_generator"])
            if state["chosen"] is not None:
                self.chosen = np.asarray(state["chosen"], dtype=np.int64)
        super().on_load_checkpoint(checkpoint)

    @override
    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.net.head.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )

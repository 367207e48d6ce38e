"""ERM: the plain baseline, in the same harness (backbone, data, metrics, selection) as Sebra."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import Optimizer, Sampling
from sebra.methods._network_args import NetworkArgs
from sebra.methods._sampling import shuffled_loader, weighted_loader
from sebra.methods.base import EpochLimited

__all__ = ["ERMModule"]


class ERMModule(NetworkArgs, EpochLimited):
    """Empirical risk minimisation with cross-entropy.

    Args:
        epochs: training epochs (stops the trainer itself; use ``Trainer(max_epochs=-1)`` or at least this).
        optimizer, weight_decay: the optimizer (``lr``, ``momentum``: :class:`~sebra.methods._network_args.NetworkArgs`).
        sampling: ``uniform`` (plain ERM) or ``group_balanced`` (each group drawn equally often: uses training group
            labels, the label-using reference "oracle" of the benchmarks).
        **kwargs: the network, learning rate, schedule, seed and GPU options
            (:class:`~sebra.methods._network_args.NetworkArgs`: ``seed`` seeds the initialisation and the shuffling /
            group-balanced draws, ``sample_generator``, saved in checkpoints) and ``selection``, ``num_classes``
            (:class:`~sebra.methods.base.BaseMethod`).
    """

    def __init__(
        self,
        epochs: int = 15,
        optimizer: Optimizer = "adamw",
        weight_decay: float = 0.05,
        sampling: Sampling = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # saves epochs ... sampling too: NetworkArgs collects the whole chain
        self.check_hparams()
        self.sample_generator = torch.Generator().manual_seed(self.hparams.seed)
        self.net: Classifier | None = None

    @override
    def configure_model(self) -> None:
        if self.net is None:
            self.net = self.make_classifier(self.hparams.seed)
            self._apply_gpu_options(self.net)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def train_loader(self, dm) -> DataLoader:
        """Seeded shuffling, or group-balanced draws (``sampling="group_balanced"``)."""
        if self.hparams.sampling == "group_balanced":
            groups = dm.train_dataset.groups
            if (groups < 0).any():
                raise ValueError("sampling='group_balanced' needs a group label for every training sample")
            return weighted_loader(dm, 1.0 / torch.bincount(groups).double()[groups], self.sample_generator)
        return shuffled_loader(dm, self.sample_generator)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Per-method loss hook (GroupDRO overrides it)."""
        return F.cross_entropy(logits, batch["label"])

    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss(logits, batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    # --- checkpoints: the shuffling resumes where it stopped ----------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["erm"] = {"sample_generator": self.sample_generator.get_state()}

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("erm")
        if state is not None:
            self.sample_generator.set_state(state["sample_generator"])
        super().on_load_checkpoint(checkpoint)

    @override
    def configure_optimizers(self):
        opt = self.optimizer_for(self.parameters())
        if self.hparams.lr_schedule == "cosine":  # lr_schedule is checked in __init__
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt

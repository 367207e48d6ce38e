"""ERM: the plain baseline, in the same harness (backbone, data, metrics, selection) as Sebra."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sebra.backbones import Classifier
from sebra.methods.base import BaseMethod, Selection, make_optimizer

__all__ = ["ERMModule"]


class ERMModule(BaseMethod):
    """Empirical risk minimisation with cross-entropy.

    Args:
        backbone, pretrained, weights_file: the timm network (see :class:`sebra.backbones.Classifier`).
        epochs: training epochs (stops the trainer itself; use ``Trainer(max_epochs=-1)`` or at least this).
        optimizer, lr, momentum, weight_decay: the optimizer.
        lr_schedule: ``none`` or ``cosine`` (over ``epochs``).
        selection: see :class:`BaseMethod`.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        weights_file: str | None = None,
        epochs: int = 15,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.05,
        lr_schedule: str = "none",
        selection: Selection = "val_wga",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(selection=selection, num_classes=num_classes)
        self.save_hyperparameters()
        self.net: Classifier | None = None

    def configure_model(self) -> None:
        if self.net is None:
            h = self.hparams
            self.net = Classifier(h.backbone, self.num_classes, pretrained=h.pretrained, weights_file=h.weights_file)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Per-method loss hook (JTT and GroupDRO override it)."""
        return F.cross_entropy(logits, batch["label"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss(logits, batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        if self.current_epoch + 1 >= self.hparams.epochs:
            self.trainer.should_stop = True

    def configure_optimizers(self):
        h = self.hparams
        opt = make_optimizer(h.optimizer, self.parameters(), h.lr, h.momentum, h.weight_decay)
        if h.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, h.epochs))
            return {"optimizer": opt, "lr_scheduler": sched}
        if h.lr_schedule != "none":
            raise ValueError(f"lr_schedule must be 'none' or 'cosine', got {h.lr_schedule!r}")
        return opt

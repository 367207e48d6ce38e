"""What every sebra method shares: group metrics on val/test, model selection, optimizer construction."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from sebra.metrics import GroupAccuracy

__all__ = ["BaseMethod", "SelectionCheckpoint", "make_optimizer", "SELECTIONS"]

Selection = Literal["val_wga", "val_acc", "last"]
SELECTIONS = ("val_wga", "val_acc", "last")


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
                   ) -> torch.optim.Optimizer:
    """``sgd`` / ``adam`` / ``adamw`` by name, so configs stay flat."""
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of sgd, adam, adamw; got {name!r}")


class SelectionCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that ignores epochs the module marks as not selectable (Sebra's ranking steps)."""

    def _selectable(self, pl_module: L.LightningModule) -> bool:
        return bool(getattr(pl_module, "selectable", True))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._selectable(pl_module):
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._selectable(pl_module):
            super().on_train_epoch_end(trainer, pl_module)


class BaseMethod(L.LightningModule):
    """Base LightningModule: per-split :class:`GroupAccuracy`, logging of its results, model selection.

    Subclasses build their networks in ``configure_model`` (the data module tells the number of classes and the
    group layout) and define ``forward`` (logits of the network being evaluated) and ``training_step``.

    Args:
        selection: checkpoint kept for testing: ``val_wga`` (best validation worst-group accuracy: uses validation
            group labels, the paper's protocol for UrbanCars and CelebA), ``val_acc`` (best validation accuracy: no
            group labels at all) or ``last``.
        num_classes: defaults to the data module's.
    """

    def __init__(self, selection: Selection = "val_wga", num_classes: int | None = None) -> None:
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.selection = selection
        self.num_classes = num_classes
        self.metrics = torch.nn.ModuleDict()

    # --- set-up from the data module ---------------------------------------------------------------------------
    @property
    def datamodule(self) -> Any:
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def setup(self, stage: str) -> None:
        dm = self.datamodule
        if self.num_classes is None:
            if dm is None:
                raise ValueError("num_classes is not set and no datamodule was given to the trainer")
            self.num_classes = dm.num_classes
        if not self.metrics:
            for split in ("val", "test"):
                self.metrics[split] = self._make_metric(dm, split)

    @staticmethod
    def _make_metric(dm: Any, split: str) -> GroupAccuracy:
        """Group layout read off the data: each group id's class and attribute values."""
        if dm is None or not getattr(dm, "splits", None) or dm.num_groups == 0:
            return GroupAccuracy(num_groups=1)
        tables = [ds.table for ds in dm.splits.values()]
        layout: dict[int, tuple[int, tuple[int, ...]]] = {}
        bias = dm.bias
        cols = list(bias.attr_names) if bias is not None else []
        for t in tables:
            t = t[t["group"] >= 0].drop_duplicates("group")
            for row in t.itertuples(index=False):
                d = row._asdict()
                layout.setdefault(int(d["group"]), (int(d["label"]), tuple(int(d[c]) for c in cols)))
        num_groups = max(layout) + 1
        if bias is None or len(layout) != num_groups:
            return GroupAccuracy(num_groups=num_groups)
        return GroupAccuracy.from_bias_spec(bias, layout)

    # --- evaluation --------------------------------------------------------------------------------------------
    @property
    def selectable(self) -> bool:
        """Whether this epoch's validation may select the checkpoint (Sebra: only during mitigation)."""
        return True

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self(batch["image"])
        self.metrics[split].update(logits, batch["label"], batch["group"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.selectable:
            self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metric(self, split: str) -> dict[str, float]:
        metric = self.metrics[split]
        if not metric.update_called:
            return {}
        res = metric.compute()
        metric.reset()
        out = {}
        for k, v in res.items():
            if k in ("group_acc", "cell"):
                for g, a in enumerate(torch.as_tensor(v).reshape(-1).tolist()):
                    out[f"{split}_{k}{g}"] = a
            else:
                out[f"{split}_{k}"] = float(v)
        self.log_dict({k: v for k, v in out.items() if v == v}, sync_dist=False)  # NaN groups are not logged
        return out

    def on_validation_epoch_end(self) -> None:
        self._log_metric("val")

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_metric("test")

    # --- selection ---------------------------------------------------------------------------------------------
    def configure_callbacks(self) -> list:
        if self.selection == "last":
            return [SelectionCheckpoint(monitor=None, save_last=False, filename="last-{epoch}")]
        monitor = self.selection  # val_wga or val_acc, as logged above
        return [SelectionCheckpoint(monitor=monitor, mode="max", save_top_k=1,
                                    filename=f"best-{{epoch}}-{{{monitor}:.4f}}", auto_insert_metric_name=False)]

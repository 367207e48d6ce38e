"""What every sebra method shares: group metrics on val/test, model selection, checkpoints to resume from,
optimizer construction, data-parallel and GPU settings."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from sebra.metrics import GroupAccuracy
from sebra.ranking import GeneratorPickling

__all__ = ["SELECTIONS", "BaseMethod", "LastCheckpoint", "SelectionCheckpoint", "make_optimizer"]

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


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` at the end of every training epoch, Sebra's ranking steps included: the one to resume from.

    It saves after the module's own ``on_train_epoch_end`` (Lightning runs checkpoint callbacks last), so the file
    holds the state *after* the epoch's ranking step or mitigation epoch was closed, and
    ``trainer.fit(..., ckpt_path=<dir>/last.ckpt)`` (or ``ckpt_path="last"``) continues with the next epoch.
    It never selects: :class:`SelectionCheckpoint` keeps the checkpoint used for testing.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.update(monitor=None, save_top_k=0, save_last=True, save_on_train_epoch_end=True)
        super().__init__(**kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return  # only at the end of the training epoch (after the module's epoch-end hook)


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: 4-d inputs in ``channels_last`` memory format (module level: picklable)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


class BaseMethod(GeneratorPickling, L.LightningModule):
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
        self._allow_unused_parameters()
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

    # --- data parallelism and GPU options -----------------------------------------------------------------------
    def _allow_unused_parameters(self) -> None:
        """Under DDP, let manually optimised modules leave parameters unused in a step.

        Sebra (ranker, then mitigation network) and JTT (identification, then final network) train one of their two
        networks at a time, so each step leaves the other's parameters without gradients, which DDP's reducer only
        accepts with ``find_unused_parameters=True``. Runs in ``setup``, before the strategy wraps the model.
        """
        trainer = self._trainer
        if trainer is None or self.automatic_optimization or trainer.world_size < 2:
            return
        strategy = trainer.strategy
        kwargs = getattr(strategy, "_ddp_kwargs", None)
        if isinstance(strategy, DDPStrategy) and isinstance(kwargs, dict) and not kwargs.get("find_unused_parameters"):
            kwargs["find_unused_parameters"] = True
            rank_zero_info(f"{type(self).__name__} trains one network at a time: DDP find_unused_parameters=True")

    def _apply_gpu_options(self, *nets: nn.Module | None) -> None:
        """``channels_last`` (weights and inputs in NHWC memory format) and ``compile`` (``torch.compile`` of each
        backbone, in place, so checkpoints keep their keys), when the module's hyper-parameters ask for them."""
        channels_last = bool(getattr(self.hparams, "channels_last", False))
        compile_ = bool(getattr(self.hparams, "compile", False))
        for net in nets:
            if net is None:
                continue
            body = getattr(net, "backbone", net)
            if channels_last:
                net.to(memory_format=torch.channels_last)
                body.register_forward_pre_hook(_channels_last_input)
            if compile_:
                body.compile()

    # --- evaluation --------------------------------------------------------------------------------------------
    def in_final_phase(self) -> bool:
        """Whether the module now trains the network it reports. Two-phase methods (Sebra's ranking, JTT's
        identification) override it; their first-phase epochs are neither validated nor selectable."""
        return True

    @property
    def selectable(self) -> bool:
        """Whether this epoch's validation may select the checkpoint. Fixed at epoch start, because two-phase
        methods switch phase in ``on_train_epoch_end``, before the epoch's validation and checkpoint run."""
        return getattr(self, "_selectable_epoch", self.in_final_phase())

    def on_train_epoch_start(self) -> None:
        self._selectable_epoch = self.in_final_phase()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._selectable_epoch = self.in_final_phase()

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self(batch["image"])
        labels, groups = batch["label"], batch["group"]
        valid = batch.get("valid")  # padding rows of a data-parallel shard (see SebraDataModule.eval_loader)
        if valid is not None and not bool(valid.all()):
            logits, labels, groups = logits[valid], labels[valid], groups[valid]
        self.metrics[split].update(logits, labels, groups)

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
        self.log_dict({k: v for k, v in out.items() if not math.isnan(v)}, sync_dist=False)  # empty groups: NaN
        return out

    def on_validation_epoch_end(self) -> None:
        self._log_metric("val")

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_metric("test")

    # --- selection ---------------------------------------------------------------------------------------------
    def configure_callbacks(self) -> list:
        """A :class:`SelectionCheckpoint` (the checkpoint tested) and a :class:`LastCheckpoint` (``last.ckpt``, to resume).

        Lightning lets callbacks returned here *replace* Trainer callbacks of the same class or a parent class: a
        ``ModelCheckpoint`` passed in ``Trainer(callbacks=[...])`` (and the Trainer's default one) is dropped, with an
        info message. To keep a checkpoint callback of your own, pass an instance of a ``ModelCheckpoint``
        *subclass* (e.g. ``class MyCheckpoint(ModelCheckpoint): pass``); it is kept beside these two.
        ``Trainer(enable_checkpointing=False)`` turns both off.
        """
        trainer = self._trainer
        if trainer is not None and not trainer.checkpoint_callbacks:
            return []  # enable_checkpointing=False
        last = LastCheckpoint()
        if self.selection == "last":
            return [SelectionCheckpoint(monitor=None, save_last=False, filename="last-{epoch}"), last]
        monitor = self.selection  # val_wga or val_acc, as logged above
        return [SelectionCheckpoint(monitor=monitor, mode="max", save_top_k=1,
                                    filename=f"best-{{epoch}}-{{{monitor}:.4f}}", auto_insert_metric_name=False), last]

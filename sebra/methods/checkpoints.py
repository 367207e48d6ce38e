"""The two checkpoint callbacks every method adds: the selected checkpoint (tested) and ``last.ckpt`` (resumed)."""

from __future__ import annotations

import pickle
import zipfile
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from sebra.methods._args import Selection
from sebra.utils.files import atomic_write

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "LastCheckpoint",
    "SelectionCheckpoint",
    "checkpoint_callbacks",
    "is_module_checkpoint",
    "resolve_selection",
]


class CheckpointError(OSError):
    """A checkpoint could not be written (full disk, read-only folder) or read (truncated, not a checkpoint)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoints, written atomically and read with one-line errors.

    Lightning overwrites a checkpoint in place: a full disk mid-write truncates the good ``last.ckpt`` it replaces.
    Here the checkpoint goes to a temporary file in the same folder, renamed over the old one once complete
    (:func:`~sebra.utils.files.atomic_write`), so a failed write keeps the previous checkpoint. A checkpoint that
    cannot be read (truncated, corrupt, refused by ``torch.load``'s ``weights_only``) is named in one line.
    Remote paths (``s3://...``) are left to Lightning.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        try:
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
        except OSError as e:
            reason = e.strerror or str(e).splitlines()[0]
            raise CheckpointError(
                f"could not write checkpoint {path}: {reason}; the previous one (if any) is kept"
            ) from None

    @override
    def load_checkpoint(
        self, path: Any, map_location: Any = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{path} is not a readable checkpoint (truncated, corrupt or not written by Lightning: {first}); "
                "resume from another one"
            ) from None


def _install_atomic_io(trainer: L.Trainer) -> None:
    """Give the trainer's strategy :class:`AtomicCheckpointIO` in place of Lightning's default (a custom plugin the
    caller passed is left alone)."""
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


class SelectionCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that ignores epochs the module marks as not selectable (Sebra's ranking steps). Its
    checkpoints (and ``last.ckpt``'s) are written atomically (:class:`AtomicCheckpointIO`)."""

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _install_atomic_io(trainer)
        super().setup(trainer, pl_module, stage)

    def _selectable(self, pl_module: L.LightningModule) -> bool:
        return bool(getattr(pl_module, "selectable", True))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._selectable(pl_module):
            super().on_validation_end(trainer, pl_module)

    @override
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

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _install_atomic_io(trainer)
        super().setup(trainer, pl_module, stage)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return  # only at the end of the training epoch (after the module's epoch-end hook)


def checkpoint_callbacks(selection: Selection) -> list[ModelCheckpoint]:
    """A :class:`SelectionCheckpoint` for ``selection`` (``val_wga`` / ``val_acc``: the best epoch by that metric,
    ``last``: the last selectable epoch) and a :class:`LastCheckpoint`, both marked as the module's own
    (:func:`is_module_checkpoint`)."""
    last = LastCheckpoint()
    if selection == "last":
        callbacks = [SelectionCheckpoint(monitor=None, save_last=False, filename="last-{epoch}"), last]
    else:
        monitor = selection  # val_wga or val_acc, as BaseMethod logs them
        callbacks = [
            SelectionCheckpoint(
                monitor=monitor,
                mode="max",
                save_top_k=1,
                filename=f"best-{{epoch}}-{{{monitor}:.4f}}",
                auto_insert_metric_name=False,
            ),
            last,
        ]
    for callback in callbacks:
        callback.created_by_module = True  # a plain attribute: pickles and deep-copies with the callback
    return callbacks


def is_module_checkpoint(callback: object) -> bool:
    """Whether :func:`checkpoint_callbacks` made ``callback`` (a method's own), not ``Trainer(callbacks=...)``'s
    caller, even when the caller passed the same class."""
    return getattr(callback, "created_by_module", False) is True


def _val_has_groups(dm: Any) -> bool | None:
    """Whether the data module's validation split has group labels (None: it cannot tell, e.g. not a sebra one)."""
    splits = getattr(dm, "splits", None)
    if not isinstance(splits, dict):
        return None
    if not splits and callable(getattr(dm, "build_splits", None)):
        dm.splits = splits = dm.build_splits()  # what setup() does first; parsed once
    val = splits.get("val")
    groups = getattr(val, "groups", None)
    if groups is None:
        return None
    return bool(len(groups)) and bool((groups >= 0).any())


def resolve_selection(selection: Selection, dm: Any, owner: str) -> Selection:
    """The selection a fit on ``dm`` can use: ``val_wga`` needs validation group labels. Own data (a class-per-folder
    tree, a CSV without attribute columns) has none, and ``val_wga`` would never be logged (Lightning then fails
    after the first selectable epoch, Sebra's whole Stage 1 lost); such a fit selects by ``val_acc`` instead, with a
    one-line warning, decided before training starts."""
    if selection != "val_wga" or dm is None or _val_has_groups(dm) is not False:
        return selection
    rank_zero_warn(
        f"{owner}: selection='val_wga' needs group labels in the validation split and this data has none; "
        "selecting the checkpoint by val_acc instead (pass selection='val_acc' to say so)",
        category=UserWarning,
    )
    return "val_acc"

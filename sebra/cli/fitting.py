"""Fit one method on a data module and test the checkpoint its selection rule chose: the runner the demo,
``sebra rank`` and the trial scripts (``benchmarks/stage2_trial.py``) share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from sebra.cli.console import PhaseProgress
from sebra.cli.results import result_row

__all__ = ["fit_method", "make_trainer", "selected_checkpoint"]


def make_trainer(out: str | Path, name: str, callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """A Trainer that runs until the module stops it, logs to ``<out>/<name>/metrics.csv`` and checkpoints under
    ``<out>/<name>``, without Lightning's progress bar and model summary."""
    from lightning.pytorch.loggers import CSVLogger

    out = Path(out)
    return L.Trainer(
        max_epochs=-1,
        accelerator="auto",
        devices=1,
        logger=CSVLogger(str(out), name=name, version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out / name),
        callbacks=list(callbacks),
    )


def selected_checkpoint(trainer: L.Trainer, module: L.LightningModule) -> str | None:
    """The checkpoint to test: the best one of the module's :class:`~sebra.methods.SelectionCheckpoint`, or
    ``None`` (the weights in memory) when the module selects the ``last`` epoch.

    Named explicitly because a fit has two checkpoint callbacks (the selection and ``last.ckpt``), and
    ``ckpt_path="best"`` makes Lightning warn about that (it takes the first, which is this one).
    """
    from sebra.methods import SelectionCheckpoint
    from sebra.methods.checkpoints import is_module_checkpoint

    if getattr(module, "selection", None) == "last":
        return None
    for cb in trainer.checkpoint_callbacks:
        if is_module_checkpoint(cb) and isinstance(cb, SelectionCheckpoint) and cb.best_model_path:
            return cb.best_model_path
    return "best"  # none saved: Lightning's own choice (and its message)


def fit_method(
    name: str, model: L.LightningModule, dm: Any, out: str | Path, progress: bool = True
) -> dict[str, float]:
    """Fit, test the selected checkpoint, return the metrics (accuracies and gaps in %, and ``seconds``).

    Args:
        name: the run's folder under ``out`` (``<out>/<name>/metrics.csv``, checkpoints).
        progress: show :class:`~sebra.cli.console.PhaseProgress` lines (stderr).
    """
    trainer = make_trainer(out, name, [PhaseProgress()] if progress else [])
    t = time.time()
    trainer.fit(model, datamodule=dm)
    res = trainer.test(model, datamodule=dm, ckpt_path=selected_checkpoint(trainer, model), verbose=False)[0]
    row = result_row(res)
    row["seconds"] = time.time() - t
    return row

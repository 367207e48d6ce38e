"""One quiet CPU Trainer for tests (no progress bar, no summary, no sanity steps, a CSV logger under ``root``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger


def quiet_trainer(root: str | Path, **kwargs: object) -> L.Trainer:
    """A ``Trainer`` for tests; ``kwargs`` override the defaults (e.g. ``logger=False``, ``devices=2``)."""
    args: dict[str, object] = {
        "max_epochs": -1,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "logger": CSVLogger(root, name="logs", version="v"),
        "default_root_dir": str(root),
    }
    args.update(kwargs)
    return L.Trainer(**args)

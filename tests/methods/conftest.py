"""Fixtures of the method tests: the tiny in-memory data module and a quiet Trainer factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.loggers import CSVLogger
from tiny_data import TinyDataModule


@pytest.fixture
def tiny_dm() -> TinyDataModule:
    return TinyDataModule(batch_size=8)


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., L.Trainer]:
    def make(**kwargs: object) -> L.Trainer:
        args = {
            "max_epochs": -1,
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "logger": CSVLogger(tmp_path, name="logs", version="v"),
            "default_root_dir": str(tmp_path),
        }
        args.update(kwargs)
        return L.Trainer(**args)

    return make

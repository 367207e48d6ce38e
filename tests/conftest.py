"""Fixtures shared by every test: one torch thread, the tiny data module, a quiet Trainer factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from tiny_data import TinyDataModule


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a small shared CPU, OpenMP's spinning threads make each tiny step ~100x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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

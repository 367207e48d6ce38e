"""Fixtures shared by every test: one torch thread, the tiny data module, a quiet Trainer factory."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from tiny_data import TinyDataModule
from trainers import quiet_trainer


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
    """``quiet_trainer`` rooted in the test's ``tmp_path``."""
    return functools.partial(quiet_trainer, tmp_path)

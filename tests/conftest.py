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

try:
    from huggingface_hub.errors import LocalEntryNotFoundError
except ImportError:  # older huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError


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


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """timm's downloads fail as they do offline, whatever the network state of the machine running the tests."""
    import timm.models._builder as builder

    def fail(*args, **kwargs):
        raise LocalEntryNotFoundError(
            "An error happened while trying to locate the file on the Hub and we cannot "
            "find the requested files in the local cache."
        )

    for fn in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, fn, fail)

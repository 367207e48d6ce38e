"""sebra/cli/fitting.py: one fit and the test of the checkpoint the module's selection rule chose."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from expected import TABLE_METRICS
from tiny_data import TINY_SEBRA, TinyDataModule

from sebra.cli.fitting import fit_method, make_trainer, selected_checkpoint
from sebra.methods import ERMModule, SebraModule


def test_fit_method_tests_the_selected_checkpoint_without_lightnings_warning(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SebraModule(**TINY_SEBRA)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        row = fit_method("sebra", model, TinyDataModule(batch_size=8), tmp_path, progress=False)
    assert not [w for w in seen if "multiple `ModelCheckpoint`" in str(w.message)]
    assert list(row) == [*TABLE_METRICS, "seconds"]
    assert row["worst_group_acc"] == pytest.approx(100 * model.test_results["test_wga"])
    assert (tmp_path / "sebra" / "metrics.csv").is_file() and model.rankings is not None


def test_selected_checkpoint_is_the_selection_callbacks_best(tmp_path: Path) -> None:
    dm = TinyDataModule(batch_size=8)
    model = ERMModule(backbone="test_resnet", epochs=2)
    trainer = make_trainer(tmp_path, "erm")
    trainer.fit(model, datamodule=dm)
    path = selected_checkpoint(trainer, model)
    assert Path(path).name.startswith("best-") and Path(path).is_file()
    assert path == trainer.checkpoint_callback.best_model_path  # what ckpt_path="best" took, named


def test_selection_last_tests_the_weights_in_memory(tmp_path: Path) -> None:
    model = ERMModule(backbone="test_resnet", epochs=1, selection="last")
    trainer = make_trainer(tmp_path, "erm")
    trainer.fit(model, datamodule=TinyDataModule(batch_size=8))
    assert selected_checkpoint(trainer, model) is None

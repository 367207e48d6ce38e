"""BaseMethod: where a fit writes its side files (the logger's folder, or nowhere); one checkpoint callback per purpose."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from trainers import quiet_trainer

from sebra.methods import ERMModule, JTTModule, SebraModule, SelectionCheckpoint
from sebra.methods.checkpoints import is_module_checkpoint

SEBRA = {
    "backbone": "test_resnet",
    "rank_optimizer": "adam",
    "rank_lr": 1e-2,
    "max_steps": 2,
    "epochs": 1,
    "gap": 1,
}


@pytest.mark.parametrize(
    "make",
    [lambda: SebraModule(**SEBRA), lambda: JTTModule(backbone="test_resnet", id_epochs=1, epochs=1)],
    ids=["sebra", "jtt"],
)
def test_a_fit_without_a_logger_writes_nothing_into_the_working_directory(
    make, tiny_dm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the Trainer's default_root_dir: where a trainer without logger "logs"
    model = make()
    trainer = quiet_trainer(tmp_path, logger=False, enable_checkpointing=False, default_root_dir=None)
    trainer.fit(model, datamodule=tiny_dm)
    assert model.side_file_dir() is None
    assert os.listdir(tmp_path) == []  # no rankings.csv, ranking_history.csv, jtt_scores.csv, ...
    produced = model.produced_rankings()  # the results stay on the module
    assert len(produced) == 1 and len(next(iter(produced.values()))) == len(tiny_dm.train_dataset)


def test_with_a_logger_the_side_files_go_to_its_folder(tiny_dm, make_trainer) -> None:
    trainer = make_trainer()
    model = SebraModule(**{**SEBRA, "rank_only": True})
    trainer.fit(model, datamodule=tiny_dm)
    folder = Path(trainer.logger.log_dir)
    assert model.side_file_dir() == folder
    assert (folder / "rankings.csv").exists() and (folder / "ranking_history.csv").exists()
    assert model.rankings_path == folder / "rankings.csv"


def test_testing_after_fit_keeps_the_fits_checkpoint_callbacks(tiny_dm, make_trainer) -> None:
    # one callback per purpose: trainer.test must not swap in fresh copies (which would forget the selected path)
    trainer = make_trainer()
    model = SebraModule(**SEBRA)
    trainer.fit(model, datamodule=tiny_dm)
    before = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    best = next(c for c in before if isinstance(c, SelectionCheckpoint)).best_model_path
    assert best and len(before) == 2
    trainer.test(model, datamodule=tiny_dm, ckpt_path=best, verbose=False)
    after = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert [id(c) for c in after] == [id(c) for c in before]


def test_a_subclass_of_the_selection_checkpoint_in_the_trainer_does_not_replace_the_modules(
    tiny_dm, make_trainer
) -> None:
    # sebra bench adds such a subclass (a second selection rule); the module's own two must still be attached
    class OtherRule(SelectionCheckpoint):
        pass

    trainer = make_trainer(callbacks=[OtherRule(monitor="val_acc", mode="max", filename="other-{epoch}")])
    trainer.fit(ERMModule(backbone="test_resnet", epochs=1), datamodule=tiny_dm)
    kinds = sorted(type(c).__name__ for c in trainer.checkpoint_callbacks)
    assert kinds == ["LastCheckpoint", "OtherRule", "SelectionCheckpoint"]
    own = next(c for c in trainer.checkpoint_callbacks if type(c) is SelectionCheckpoint)
    assert own.best_model_path


def test_a_plain_selection_checkpoint_in_the_trainer_is_not_taken_for_the_modules_own(
    tiny_dm, make_trainer
) -> None:
    # before, any exact SelectionCheckpoint meant "this fit's own": the module added none (no last.ckpt either)
    users = SelectionCheckpoint(monitor=None, filename="mine-{epoch}")
    trainer = make_trainer(callbacks=[users])
    trainer.fit(ERMModule(backbone="test_resnet", epochs=1), datamodule=tiny_dm)
    cbs = trainer.checkpoint_callbacks
    assert [type(c).__name__ for c in cbs] == ["SelectionCheckpoint", "LastCheckpoint"]
    assert all(is_module_checkpoint(c) for c in cbs) and users not in cbs and not is_module_checkpoint(users)
    assert cbs[0].best_model_path and Path(cbs[1].last_model_path).name == "last.ckpt"

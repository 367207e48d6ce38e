"""The practitioner's case end to end: a class-per-folder tree (no bias attributes, no groups anywhere) fitted with
every default that matters (``selection="val_wga"`` included), through ``trainer.fit`` and ``sebra fit``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml
from dataset_fixtures import write_image
from trainers import quiet_trainer

from sebra import SebraModule, cli
from sebra.cli.fitting import selected_checkpoint
from sebra.datasets.folder import ImageFolderDataModule
from sebra.methods import ERMModule

FAST = {"backbone": "test_resnet"}  # the only non-default besides the lengths below
LENGTHS = {SebraModule: {"max_steps": 2, "epochs": 1}, ERMModule: {"epochs": 1}}


def _tree(root: Path) -> Path:
    for c, cls in enumerate(("cat", "dog")):
        for i in range(10):
            write_image(root / cls / f"{i}.png", 100 * c + i, fmt="PNG")
    return root


@pytest.mark.parametrize("cls", [SebraModule, ERMModule])
def test_trainer_fit_on_a_folder_tree_with_default_selection_falls_back_to_val_acc(
    tmp_path: Path, cls: type
) -> None:
    dm = ImageFolderDataModule(str(_tree(tmp_path / "data")), batch_size=4)
    model = cls(**FAST, **LENGTHS[cls])
    assert model.selection == "val_wga"
    trainer = quiet_trainer(tmp_path / "runs")
    with pytest.warns(
        UserWarning, match=r"selection='val_wga' needs group labels .*by val_acc instead"
    ) as seen:
        trainer.fit(model, datamodule=dm)
    assert len([w for w in seen if "val_wga" in str(w.message)]) == 1
    assert model.selection == "val_acc"
    best = selected_checkpoint(trainer, model)
    assert best is not None and Path(best).is_file() and "best-" in Path(best).name
    out = trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
    assert 0.0 <= out[0]["val_acc"] <= 1.0
    # split by seed without test_fraction: no test split, said in one line (not a sampler's TypeError)
    with pytest.raises(
        ValueError, match=r"^ImageFolderDataModule: the data has no test split; add a test/ folder"
    ):
        trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)


def test_sebra_fit_on_a_folder_tree_with_defaults_ends_with_results(tmp_path: Path, capsys) -> None:
    root = _tree(tmp_path / "data")
    cfg = {
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "default_root_dir": str(tmp_path / "runs")},
        "model": {"class_path": "sebra.SebraModule", "init_args": {**FAST, **LENGTHS[SebraModule]}},
        "data": {
            "class_path": "sebra.datasets.folder.ImageFolderDataModule",
            "init_args": {"root": str(root)},
        },
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        status = cli.main(["fit", "--config", str(path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert sum("by val_acc instead" in str(w.message) for w in seen) == 1
    assert "no test split: the table is the validation split's" in err
    results = list((tmp_path / "runs").rglob("results.json"))
    assert len(results) == 1
    assert (results[0].parent / "rankings.csv").is_file()
    assert "nan" not in out
    saved = json.loads(results[0].read_text())
    assert saved["split"] == "val" and saved["selection"] == "val_acc"

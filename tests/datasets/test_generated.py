"""Generated benchmarks: written in UrbanCars' layout in one move, recognised by their record, read back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sebra.datasets.generated import data_home, is_generated, write_generated
from sebra.datasets.urbancars import URBANCARS_GROUP_NAMES, read_urbancars


def _data(per_group: int) -> dict[str, dict[str, np.ndarray]]:
    groups = np.repeat(np.arange(8), per_group)
    rng = np.random.default_rng(0)
    split = {
        "images": rng.integers(0, 256, (len(groups), 8, 8, 3), dtype=np.uint8),
        "label": groups >> 2,
        "bg": (groups >> 1) & 1,
        "coobj": groups & 1,
        "animal": groups,
    }
    return {s: split for s in ("train", "val", "test")}


def test_written_read_back_and_recognised(tmp_path: Path) -> None:
    meta = {"what": "a", "n": 2}
    assert write_generated(tmp_path, _data(2), 0.9, "made.json", meta) == tmp_path
    first = (
        tmp_path / "urbancars" / "bg-0.9_co_occur_obj-0.9" / "train" / URBANCARS_GROUP_NAMES[5] / "001.jpg"
    )
    assert first.is_file() and (tmp_path / "animals_val.csv").read_text().startswith("file,animal\nval/")
    train = read_urbancars(tmp_path, "train")
    assert torch.bincount(train.groups).tolist() == [2] * 8 and train.bias.train_ratios == (0.9, 0.9)
    assert is_generated(tmp_path, "made.json", meta)
    assert not is_generated(tmp_path, "made.json", {**meta, "n": 3})
    assert not is_generated(tmp_path, "other.json", meta)
    write_generated(tmp_path, _data(1), 0.9, "made.json", {"n": 1})  # replaces the data as a whole
    assert torch.bincount(read_urbancars(tmp_path, "test").groups).tolist() == [1] * 8
    assert json.loads((tmp_path / "made.json").read_text()) == {"n": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    (tmp_path / "made.json").write_text("{not json")
    assert not is_generated(tmp_path, "made.json", {"n": 1})


@pytest.mark.parametrize("fails", ["rmtree", "replace"])
def test_interrupted_rewrite_leaves_nothing_accepted(monkeypatch, tmp_path: Path, fails: str) -> None:
    """A rewrite dying while it swaps the data folder (old one being deleted, or new one being moved in) must not
    leave the old record next to a half-replaced folder."""
    write_generated(tmp_path, _data(1), 0.9, "made.json", {"n": 1})
    data_dir = tmp_path / "urbancars"
    real_rmtree, real_replace = shutil.rmtree, os.replace

    def rmtree(path, *args, **kwargs):
        if fails == "rmtree" and Path(path) == data_dir:
            raise KeyboardInterrupt("killed while deleting the old data")
        return real_rmtree(path, *args, **kwargs)

    def replace(src, dst):
        if fails == "replace" and Path(dst) == data_dir:
            raise KeyboardInterrupt("killed while moving the new data in")
        return real_replace(src, dst)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_generated(tmp_path, _data(2), 0.9, "made.json", {"n": 2})
    assert not is_generated(tmp_path, "made.json", {"n": 1})
    assert not is_generated(tmp_path, "made.json", {"n": 2})
    monkeypatch.undo()
    write_generated(tmp_path, _data(2), 0.9, "made.json", {"n": 2})  # the next run writes it again
    assert is_generated(tmp_path, "made.json", {"n": 2})
    assert torch.bincount(read_urbancars(tmp_path, "test").groups).tolist() == [2] * 8


def test_data_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEBRA_DATA", str(tmp_path))
    assert data_home() == tmp_path
    monkeypatch.delenv("SEBRA_DATA")
    assert data_home() == Path.home() / ".cache" / "sebra"

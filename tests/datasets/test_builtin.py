"""The built-in benchmark is the family's ``builtin`` variant: same data key, same cache folder, written once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sebra.datasets import builtin, family
from sebra.datasets.builtin import BUILTIN_BIAS, BuiltinDataModule, BuiltinSpec
from sebra.datasets.family import VARIANTS, FamilyDataModule, Shortcut, VariantSpec

SMALL = VariantSpec(
    "small", Shortcut("tint", 0.3), Shortcut("symbol", 0.4), counts_train=(6, 2, 2, 1), per_cell_eval=1
)


def test_builtin_spec_is_the_builtin_variant() -> None:
    assert BuiltinSpec().variant().data_key() == VARIANTS["builtin"].data_key()
    other = BuiltinSpec(seed=3, tint=0.5, ratio=0.9).variant()
    assert (other.seed, other.a, other.ratio) == (3, Shortcut("tint", 0.5), 0.9)


@pytest.fixture()
def renders(tmp_path: Path, monkeypatch) -> list[dict]:
    """Data keys rendered under ``$SEBRA_DATA=tmp_path`` (each render gives a small stand-in data set)."""
    monkeypatch.setenv("SEBRA_DATA", str(tmp_path))
    small, keys = family.render_variant(SMALL), []

    def render(spec: VariantSpec) -> dict:
        keys.append(spec.data_key())
        return small

    monkeypatch.setattr(family, "render_variant", render)
    return keys


def test_family_builtin_variant_reuses_the_builtin_folder(tmp_path: Path, renders: list[dict]) -> None:
    BuiltinDataModule().prepare_data()
    dm = FamilyDataModule("builtin", batch_size=4)
    dm.setup("fit")
    assert renders == [
        VARIANTS["builtin"].data_key()
    ]  # written once, by the built-in module; read by the family's
    assert dm.root == str(tmp_path / "builtin") == str(builtin.default_root())
    assert not (tmp_path / "family").exists()
    assert len(dm.train_dataset) == 2 * 11 and dm.train_dataset.class_names == ["large", "small"]
    # other knobs on the built-in module rewrite the folder: the family's variant then writes its own data back
    BuiltinDataModule(tint=0.5).prepare_data()
    FamilyDataModule("builtin").prepare_data()
    assert [k["a"]["strength"] for k in renders] == [0.3, 0.5, 0.3]


def test_builtin_datamodule_reads_its_data(tmp_path: Path, renders: list[dict]) -> None:
    dm = BuiltinDataModule(root=str(tmp_path / "here"), data_seed=2, batch_size=4)
    dm.setup("fit")
    assert dm.root == str(tmp_path / "here") and renders[0]["seed"] == 2
    assert dm.bias == BUILTIN_BIAS and dm.splits["val"].class_names == ["large", "small"]
    assert np.bincount(dm.splits["train"].groups.numpy()).tolist() == [6, 2, 2, 1, 1, 2, 2, 6]

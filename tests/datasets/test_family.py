"""The benchmark family: every shortcut kind renders as documented, the built-in variant is bit-identical to the
built-in benchmark, variants are written in UrbanCars' layout and read back, and the registry's split is sound."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sebra.datasets import family
from sebra.datasets.builtin import render_builtin
from sebra.datasets.family import (
    KINDS,
    VARIANTS,
    FamilyDataModule,
    Shortcut,
    VariantSpec,
    _render_one,
    render_variant,
    variants,
    write_variant,
)

SMALL = {"counts_train": (12, 3, 2, 1), "per_cell_eval": 2}


def _small(a: str = "border", b: str = "stripes", **kw) -> VariantSpec:
    return VariantSpec("tiny", Shortcut(a, 0.6), Shortcut(b, 0.5), **{**SMALL, **kw})


#: SHA-256 of the built-in benchmark's arrays as its own renderer made them before the family renderer replaced it
#: (the two were compared array by array then): the demo's data must not change when the family's code does.
BUILTIN_DIGEST = "59ebabf69b66d5f6fd015d665cba24afc96b18c284b0aab7c8b1c1c07b6f4383"


def _digest(data: dict) -> str:
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        for key in ("images", "label", "bg", "coobj", "animal"):
            h.update(np.ascontiguousarray(data[split][key]).tobytes())
    return h.hexdigest()


def test_builtin_benchmark_bytes_are_unchanged_and_equal_the_builtin_variant() -> None:
    a = render_builtin()
    assert _digest(a) == BUILTIN_DIGEST
    b = render_variant(VARIANTS["builtin"])
    for split in a:
        for key in a[split]:
            np.testing.assert_array_equal(a[split][key], b[split][key], err_msg=f"{split}/{key}")


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_its_two_values_differently(kind: str) -> None:
    other = "symbol" if kind != "symbol" else "tint"
    spec = VariantSpec("k", Shortcut(kind, 0.8), Shortcut(other, 0.5))
    sil = np.zeros((28, 28), np.uint8)
    sil[6:22, 8:20] = 255  # a block "animal"
    imgs = [_render_one(sil, {kind: v, other: 0}, spec, np.random.default_rng(0)) for v in (0, 1)]
    again = _render_one(sil, {kind: 0, other: 0}, spec, np.random.default_rng(0))
    assert imgs[0].shape == (32, 32, 3) and imgs[0].dtype == np.uint8
    np.testing.assert_array_equal(imgs[0], again)  # deterministic given the generator
    assert np.abs(imgs[0].astype(int) - imgs[1].astype(int)).max() > 30, f"{kind}: the two values look alike"


def test_cells_groupings_and_alignment() -> None:
    spec = _small(grouping="farm_wild")
    data = render_variant(spec)
    tr = data["train"]
    assert len(tr["label"]) == 2 * sum(SMALL["counts_train"])
    for lab in (0, 1):
        m = tr["label"] == lab
        a_al, b_al = tr["bg"][m] == lab, tr["coobj"][m] == lab
        assert [
            int((a_al & b_al).sum()),
            int((~a_al & b_al).sum()),
            int((a_al & ~b_al).sum()),
            int((~a_al & ~b_al).sum()),
        ] == list(SMALL["counts_train"])
        names = {family.ANIMAL_CLASSES[i] for i in tr["animal"][m]}
        assert names <= set(family.GROUPINGS["farm_wild"][lab])
    for split in ("val", "test"):
        d = data[split]
        cells = {(int(y), int(a), int(b)) for y, a, b in zip(d["label"], d["bg"], d["coobj"])}
        assert len(cells) == 8 and len(d["label"]) == 8 * SMALL["per_cell_eval"]
    # every image is used once across splits
    all_animals_idx = np.concatenate([data[s]["images"].reshape(len(data[s]["label"]), -1) for s in data])
    assert len(np.unique(all_animals_idx, axis=0)) == len(all_animals_idx)


def test_written_in_urbancars_layout_and_read_back(tmp_path: Path, monkeypatch) -> None:
    from sebra.cli.verify import main as verify_main

    spec = _small()
    write_variant(tmp_path, spec)
    assert (
        tmp_path
        / "urbancars"
        / "bg-0.95_co_occur_obj-0.95"
        / "train"
        / "obj-urban_bg-country_co_occur_obj-urban"
        / "000.jpg"
    ).exists()
    assert verify_main(["urbancars", str(tmp_path)]) == 0
    monkeypatch.setitem(VARIANTS, "tiny", replace(spec, role="dev"))
    dm = FamilyDataModule("tiny", root=str(tmp_path), batch_size=4)
    dm.setup("fit")
    train = dm.train_dataset
    assert len(train) == 2 * sum(SMALL["counts_train"])
    assert train.class_names == ["large", "small"]
    assert dm.bias.attr_names == ("bg", "coobj") and dm.bias.stronger == 0
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert not leftovers


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        Shortcut("glow", 0.5)
    with pytest.raises(ValueError, match="strength"):
        Shortcut("tint", 0.0)
    with pytest.raises(ValueError, match="both attributes are 'tint'"):
        VariantSpec("x", Shortcut("tint", 0.3), Shortcut("tint", 0.5))
    with pytest.raises(ValueError, match="grouping"):
        _small(grouping="odd_even")
    with pytest.raises(ValueError, match="unknown benchmark variant 'nope'; registered: builtin"):
        family.variant("nope")
    with pytest.raises(ValueError, match="role"):
        variants("test")


def test_registry_split_and_coverage() -> None:
    # held-out sets are spent once looked at twice; four sets of three so far (the next trial registers a fresh one)
    dev, held = variants("dev"), variants("heldout") + variants("spent")
    assert "builtin" in dev and len(dev) >= 2 and len(held) >= 12
    assert set(dev).isdisjoint(held) and len(VARIANTS) >= 6
    kinds_a = {v.a.kind for v in VARIANTS.values()}
    kinds_b = {v.b.kind for v in VARIANTS.values()}
    assert len(kinds_a | kinds_b) >= 4
    assert {v.grouping for v in VARIANTS.values()} == set(family.GROUPINGS)
    assert any(
        v.stronger == 1 for v in VARIANTS.values() if v.role != "dev"
    )  # B the stronger on a held-out (or spent held-out) variant
    assert any(v.stronger == 1 for n, v in VARIANTS.items() if n in dev)  # ... and on a dev variant

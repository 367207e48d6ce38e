"""CelebA's protocols: the official partition's groups and bias, Echoes' multi-bias construction checked against a
brute-force loop, the alignment question, Echoes .npy files read in place of the construction, and the data module."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import BLOND, MALE, SMILING, YOUNG, celeba_attrs, make_celeba

from sebra.datasets.base import DatasetError
from sebra.datasets.celeba import (
    CelebADataModule,
    MultibiasSpec,
    celeba_multibias_splits,
    multibias_indices,
    read_celeba,
)
from sebra.datasets.celeba_files import CELEBA_ATTRS, CelebAMetadata


def test_official_protocol_groups_and_bias(celeba) -> None:
    root, attrs, part = celeba
    ds = read_celeba(root, "train", target="Blond_Hair", biases=("Male",))
    idx = np.flatnonzero(part == 0)
    assert ds.indices.tolist() == idx.tolist()
    assert ds.groups.tolist() == (2 * attrs[idx, BLOND].astype(int) + attrs[idx, MALE]).tolist()
    # aligned value = majority Male value per class on train, by hand
    for c in (0, 1):
        males = attrs[idx][attrs[idx, BLOND] == c, MALE]
        assert ds.bias.aligned_value[c] == (int(males.mean() > 0.5),)
    # user-chosen, two biases: group = 4y + 2a + b
    ds2 = read_celeba(root, "test", target="Young", biases=("Smiling", "Male"))
    idx2 = np.flatnonzero(part == 2)
    a = attrs[idx2].astype(int)
    assert ds2.groups.tolist() == (4 * a[:, YOUNG] + 2 * a[:, SMILING] + a[:, MALE]).tolist()
    assert list(ds2.table.columns) == ["index", "path", "label", "Smiling", "Male", "group"]


def _synthetic_meta(per_cell: int = 3900) -> CelebAMetadata:
    """In-memory metadata big enough for the published sizes: each (Smiling, Male, Young) cell per_cell times."""
    rng = np.random.default_rng(1)
    combos = np.array([(t, m, y) for t in (0, 1) for m in (0, 1) for y in (0, 1)]).repeat(per_cell, axis=0)
    combos = combos[rng.permutation(len(combos))]
    a = np.zeros((len(combos), 40), dtype=np.uint8)
    a[:, [SMILING, MALE, YOUNG]] = combos
    return CelebAMetadata(
        Path("/x"),
        Path("/x/img"),
        tuple(f"{i + 1:06d}.jpg" for i in range(len(a))),
        CELEBA_ATTRS,
        a,
        np.zeros(len(a), dtype=np.int8),
        "txt",
    )


@pytest.mark.parametrize("alignment, cc0, cc1", [("echoes", (1, 0), (0, 1)), ("sebra", (0, 0), (1, 1))])
def test_published_sizes_and_the_3610_cell_is_both_aligned(alignment, cc0, cc1) -> None:
    meta = _synthetic_meta()
    arrs = multibias_indices(meta, MultibiasSpec(alignment=alignment))
    tr = arrs["train"]
    assert len(tr) == 8000 and len(arrs["val"]) == 1000 and len(arrs["test"]) == 1000
    for t, cc in ((0, cc0), (1, cc1)):
        rows = tr[tr[:, 1] == t]
        cells = {(m, y): int(((rows[:, 2] == m) & (rows[:, 3] == y)).sum()) for m in (0, 1) for y in (0, 1)}
        assert cells[cc] == 3610  # the both-aligned cell
        assert cells[(1 - cc[0], 1 - cc[1])] == 10
        assert cells[(cc[0], 1 - cc[1])] == 190 and cells[(1 - cc[0], cc[1])] == 190
    splits = celeba_multibias_splits(meta, MultibiasSpec(alignment=alignment))
    g = torch.bincount(splits["train"].groups, minlength=8).tolist()
    assert g == [3610, 190, 190, 10, 3610, 190, 190, 10]  # Echoes' order: per class cc, cu, uc, uu
    assert torch.bincount(splits["val"].groups).tolist() == [125] * 8
    assert splits["train"].bias.aligned_value == (cc0, cc1)
    lv = splits["train"].bias.levels(splits["train"].labels, splits["train"].attrs)
    assert torch.bincount(lv).tolist() == [7220, 380, 380, 20]


def test_first_matching_indices_brute_force() -> None:
    meta = _synthetic_meta(per_cell=60)
    arrs = multibias_indices(meta, MultibiasSpec(ratios=(0.75, 0.75), train_per_class=32, eval_per_class=8))
    a = meta.attrs[:, [SMILING, MALE, YOUNG]].astype(int)
    aligned = {0: (1, 0), 1: (0, 1)}
    want = {0.75 * 0.75: 18, 0.75 * 0.25: 6, 0.25 * 0.25: 2}
    for t in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                p = (0.75 if m == aligned[t][0] else 0.25) * (0.75 if y == aligned[t][1] else 0.25)
                n_tr = want[p]
                match = [i for i in range(len(a)) if tuple(a[i]) == (t, m, y)]  # file order
                expect = {
                    "train": match[:n_tr],
                    "val": match[n_tr : n_tr + 2],
                    "test": match[n_tr + 2 : n_tr + 4],
                }
                for s, arr in arrs.items():
                    got = sorted(arr[(arr[:, 1] == t) & (arr[:, 2] == m) & (arr[:, 3] == y), 0].tolist())
                    assert got == expect[s], (s, t, m, y)


def test_short_cell_warns(celeba) -> None:
    root, _, _ = celeba
    with pytest.warns(
        UserWarning,
        match=r"2 cell\(s\) came up short; cell Smiling=0, Male=1, Young=0 \(12 images "
        r"match\): train 12 of 22, val 0 of 1, test 0 of 1; cell Smiling=1, Male=0",
    ):
        arrs = multibias_indices(
            root, MultibiasSpec(ratios=(0.75, 0.75), train_per_class=40, eval_per_class=4)
        )
    assert len(arrs["train"]) == 2 * (
        12 + 7 + 7 + 2
    )  # 40 * .75 * .25 = 7.5 truncated; short cells as far as they go


def test_echoes_npy_roundtrip_and_alignment_check(celeba, tmp_path: Path) -> None:
    root, attrs, _ = celeba
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrs = multibias_indices(
            root, MultibiasSpec(ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4)
        )
    for s, arr in arrs.items():
        np.save(tmp_path / f"{s}_data.npy", arr)
    built = celeba_multibias_splits(
        root, MultibiasSpec(ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4)
    )
    read = celeba_multibias_splits(root, MultibiasSpec(ratios=(0.75, 0.75)), npy_dir=tmp_path)
    for s in ("train", "val", "test"):
        assert built[s].table.equals(read[s].table)
        idx = built[s].indices.numpy()
        assert built[s].labels.tolist() == attrs[idx, SMILING].tolist()
        assert built[s].attrs.tolist() == attrs[idx][:, [MALE, YOUNG]].tolist()
    with pytest.raises(
        DatasetError,
        match=r"(?s)train_data.npy: for Smiling=0 the both-aligned cell.*'sebra'.*"
        r"holds 3 images but another holds 9",
    ):
        celeba_multibias_splits(root, MultibiasSpec(ratios=(0.75, 0.75), alignment="sebra"), npy_dir=tmp_path)
    bad = arrs["test"].copy()
    bad[2, 3] = 1 - bad[2, 3]
    np.save(tmp_path / "test_data.npy", bad)
    f = f"{bad[2, 0] + 1:06d}.jpg"
    with pytest.raises(
        DatasetError,
        match=rf"test_data.npy: row 2 column 3 \(Young\) is {bad[2, 3]} but {f} has "
        rf"{1 - bad[2, 3]} in the attribute file",
    ):
        celeba_multibias_splits(root, npy_dir=tmp_path)


def test_datamodule(celeba) -> None:
    root, _, part = celeba
    dm = CelebADataModule(
        str(root),
        protocol="multibias",
        ratios=[0.75, 0.75],
        train_per_class=16,
        eval_per_class=4,
        image_size=8,
        batch_size=4,
    )
    dm.setup("fit")
    assert (
        dm.num_groups == 8
        and dm.bias.attr_names == ("Male", "Young")
        and dm.bias.train_ratios == (0.75, 0.75)
    )
    assert len(dm.splits["train"]) == 32 and len(dm.splits["test"]) == 8
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (8, 3, 8, 8)
    official = CelebADataModule(str(root), protocol="official", target="Blond_Hair", image_size=8)
    official.setup("fit")
    assert official.num_groups == 4 and len(official.splits["val"]) == int((part == 1).sum())


def test_unknown_attribute_lists_valid_names(celeba) -> None:
    root, _, _ = celeba
    with pytest.raises(
        DatasetError, match=r"no attribute 'Blonde_Hair'; valid names .*Black_Hair, Blond_Hair, Blurry"
    ):
        read_celeba(root, "train", target="Blonde_Hair")
    with pytest.raises(DatasetError, match=r"no attribute 'male'"):
        CelebADataModule(str(root), biases=["male", "Young"]).setup("fit")


def test_class_without_samples(tmp_path: Path) -> None:
    a = celeba_attrs(2)
    a[:, BLOND] = 0
    r = make_celeba(tmp_path, a, np.zeros(len(a), dtype=int), images=False)
    with pytest.raises(DatasetError, match=r"CelebA train .*target Blond_Hair\): class 1 has no samples"):
        read_celeba(r, "train")

"""CelebA: official TXT / Kaggle CSV parsing checked against torchvision, Echoes' multi-bias construction checked
against a brute-force loop, the alignment question, Echoes .npy files, and bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from dataset_fixtures import celeba_to_kaggle, make_celeba

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.celeba import (
    CELEBA_ATTRS,
    CelebADataModule,
    CelebAMetadata,
    celeba_multibias_splits,
    load_celeba_metadata,
    multibias_indices,
    read_celeba,
)

SMILING, MALE, YOUNG, BLOND = 31, 20, 39, 9


def _attrs(n_per_combo: int = 12, seed: int = 0) -> np.ndarray:
    """Random attributes, with every (Smiling, Male, Young) combination n_per_combo times, in shuffled order."""
    rng = np.random.default_rng(seed)
    combos = np.array([(t, m, y) for t in (0, 1) for m in (0, 1) for y in (0, 1)] * n_per_combo)
    combos = combos[rng.permutation(len(combos))]
    a = rng.integers(0, 2, size=(len(combos), 40))
    a[:, [SMILING, MALE, YOUNG]] = combos
    a[:, BLOND] = (rng.random(len(combos)) < 0.3) ^ (a[:, MALE] == 1) & (rng.random(len(combos)) < 0.5)
    a[:2, BLOND] = (0, 1)  # both classes present in train
    return a.astype(np.uint8)


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    attrs = _attrs()
    n = len(attrs)
    part = np.array([0] * (n - 24) + [1] * 12 + [2] * 12)
    part[[0, 1, n - 20, n - 19, n - 5, n - 4]] = (0, 0, 1, 1, 2, 2)
    root = make_celeba(tmp_path_factory.mktemp("celeba"), attrs, part)
    return root, attrs, part


def test_matches_torchvision(celeba, monkeypatch) -> None:
    root = celeba[0]
    monkeypatch.setattr(torchvision.datasets.CelebA, "_check_integrity", lambda self: True)
    meta = load_celeba_metadata(root)
    assert meta.source == "txt" and meta.attr_names == CELEBA_ATTRS
    tv_all = torchvision.datasets.CelebA(str(root), split="all", target_type="attr", download=False)
    assert torch.equal(tv_all.attr, torch.as_tensor(meta.attrs, dtype=torch.long))
    assert list(tv_all.filename) == list(meta.files)
    for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
        tv = torchvision.datasets.CelebA(str(root), split=theirs, target_type="attr", download=False)
        ds = read_celeba(root, ours, target="Blond_Hair", biases=("Male",))
        assert [Path(p).name for p in ds.table["path"]] == list(tv.filename)
        assert ds.labels.tolist() == tv.attr[:, BLOND].tolist()
        assert ds.attrs[:, 0].tolist() == tv.attr[:, MALE].tolist()
        for pos in (0, len(ds) - 1):
            img, _ = tv[pos]
            ref = torch.from_numpy(np.asarray(img.convert("RGB"))).permute(2, 0, 1)
            assert torch.equal(ds[pos]["image"], ref)
            assert int(ds[pos]["index"]) == int(Path(tv.filename[pos]).stem) - 1  # 0-based row of list_attr


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


def test_kaggle_csv_equals_official(celeba, tmp_path: Path) -> None:
    root = celeba[0]
    k = load_celeba_metadata(celeba_to_kaggle(root, tmp_path))
    o = load_celeba_metadata(root)
    assert k.source == "csv" and k.files == o.files and k.attr_names == o.attr_names
    assert np.array_equal(k.attrs, o.attrs) and np.array_equal(k.partition, o.partition)
    assert k.image_dir.name == "img_align_celeba" and k.image_dir.parent.name == "img_align_celeba"
    ds = read_celeba(tmp_path, "val")
    assert ds[0]["image"].shape == (3, 7, 6)


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
    arrs = multibias_indices(meta, alignment=alignment)
    tr = arrs["train"]
    assert len(tr) == 8000 and len(arrs["val"]) == 1000 and len(arrs["test"]) == 1000
    for t, cc in ((0, cc0), (1, cc1)):
        rows = tr[tr[:, 1] == t]
        cells = {(m, y): int(((rows[:, 2] == m) & (rows[:, 3] == y)).sum()) for m in (0, 1) for y in (0, 1)}
        assert cells[cc] == 3610  # the both-aligned cell
        assert cells[(1 - cc[0], 1 - cc[1])] == 10
        assert cells[(cc[0], 1 - cc[1])] == 190 and cells[(1 - cc[0], cc[1])] == 190
    splits = celeba_multibias_splits(meta, alignment=alignment)
    g = torch.bincount(splits["train"].groups, minlength=8).tolist()
    assert g == [3610, 190, 190, 10, 3610, 190, 190, 10]  # Echoes' order: per class cc, cu, uc, uu
    assert torch.bincount(splits["val"].groups).tolist() == [125] * 8
    assert splits["train"].bias.aligned_value == (cc0, cc1)
    lv = splits["train"].bias.levels(splits["train"].labels, splits["train"].attrs)
    assert torch.bincount(lv).tolist() == [7220, 380, 380, 20]


def test_first_matching_indices_brute_force() -> None:
    meta = _synthetic_meta(per_cell=60)
    arrs = multibias_indices(meta, ratios=(0.75, 0.75), train_per_class=32, eval_per_class=8)
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
        arrs = multibias_indices(root, ratios=(0.75, 0.75), train_per_class=40, eval_per_class=4)
    assert len(arrs["train"]) == 2 * (
        12 + 7 + 7 + 2
    )  # 40 * .75 * .25 = 7.5 truncated; short cells as far as they go


def test_echoes_npy_roundtrip_and_alignment_check(celeba, tmp_path: Path) -> None:
    root, attrs, _ = celeba
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrs = multibias_indices(root, ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4)
    for s, arr in arrs.items():
        np.save(tmp_path / f"{s}_data.npy", arr)
    built = celeba_multibias_splits(root, ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4)
    read = celeba_multibias_splits(root, ratios=(0.75, 0.75), npy_dir=tmp_path)
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
        celeba_multibias_splits(root, ratios=(0.75, 0.75), npy_dir=tmp_path, alignment="sebra")
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


def test_npy_bad_values(celeba, tmp_path: Path) -> None:
    root, _, _ = celeba
    arrs = multibias_indices(root, ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4)
    for s, arr in arrs.items():
        np.save(tmp_path / f"{s}_data.npy", arr)
    bad = arrs["val"].copy()
    bad[3, 2] = 2
    np.save(tmp_path / "val_data.npy", bad)
    with pytest.raises(DatasetError, match=r"val_data.npy: row 3, column 2 \(biasA\) is 2; expected 0 or 1"):
        celeba_multibias_splits(root, npy_dir=tmp_path)
    np.save(tmp_path / "val_data.npy", arrs["val"][:, :3].astype(np.float32))
    with pytest.raises(
        DatasetError, match=r"val_data.npy: array of shape \(8, 3\) and dtype float32; expected"
    ):
        celeba_multibias_splits(root, npy_dir=tmp_path)
    bad = arrs["val"].copy()
    bad[0, 0] = 10**6
    np.save(tmp_path / "val_data.npy", bad)
    with pytest.raises(DatasetError, match=r"row 0, column 0 \(celeba index\) is 1000000; expected 0..95"):
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


# --- bad input ---------------------------------------------------------------------------------------------------
def _broken(tmp_path: Path, celeba, edit) -> Path:
    attrs = celeba[1]
    r = make_celeba(tmp_path, attrs[:10], np.array([0] * 8 + [1, 2]), images=False)
    f = r / "celeba" / "list_attr_celeba.txt"
    f.write_text(edit(f.read_text()))
    return r


def test_missing_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)CelebA root .* does not exist.*list_attr_celeba.txt"
    ):
        load_celeba_metadata(tmp_path / "nope")
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)neither .*/celeba/ nor .* holds list_attr_celeba.*expected"
    ):
        load_celeba_metadata(tmp_path)
    (tmp_path / "celeba").mkdir()
    (tmp_path / "celeba" / "list_attr_celeba.txt").write_text("0\n")
    with pytest.raises(DatasetNotFoundError, match=r"list_eval_partition.txt does not exist"):
        load_celeba_metadata(tmp_path)


def test_header_with_wrong_number_of_names(tmp_path: Path, celeba) -> None:
    r = _broken(tmp_path, celeba, lambda s: s.replace("Young \n", "\n", 1))
    with pytest.raises(
        DatasetError, match=r"list_attr_celeba.txt: line 2 has 39 attribute names; expected 40"
    ):
        load_celeba_metadata(r)


def test_value_outside_pm1(tmp_path: Path, celeba) -> None:
    def edit(s: str) -> str:
        lines = s.splitlines(keepends=True)
        tok = lines[6].split()
        tok[21] = "0"  # Male of the 5th image
        lines[6] = tok[0] + " " + " ".join(tok[1:]) + "\n"
        return "".join(lines)

    r = _broken(tmp_path, celeba, edit)
    with pytest.raises(
        DatasetError, match=r"list_attr_celeba.txt: line 7, Male is '0'; expected one of -1, 1"
    ):
        load_celeba_metadata(r)
    k = celeba_to_kaggle(r, tmp_path / "k")
    with pytest.raises(
        DatasetError, match=r"list_attr_celeba.csv: line 6, Male is '0'; expected one of -1, 1"
    ):
        load_celeba_metadata(k)


def test_row_with_missing_values(tmp_path: Path, celeba) -> None:
    r = _broken(tmp_path, celeba, lambda s: s.replace(s.splitlines()[4], s.splitlines()[4][:-3]))
    with pytest.raises(DatasetError, match=r"line 5 has 39 values; expected a file name and 40 values"):
        load_celeba_metadata(r)


def test_partition_value_outside_012(tmp_path: Path, celeba) -> None:
    r = _broken(tmp_path, celeba, lambda s: s)
    p = r / "celeba" / "list_eval_partition.txt"
    p.write_text(p.read_text().replace("000004.jpg 0", "000004.jpg 3"))
    with pytest.raises(
        DatasetError, match=r"list_eval_partition.txt: line 4, partition is '3'; expected one of 0, 1, 2"
    ):
        load_celeba_metadata(r)
    k = celeba_to_kaggle(r, tmp_path / "k")
    with pytest.raises(DatasetError, match=r"list_eval_partition.csv: line 5, partition is '3'"):
        load_celeba_metadata(k)


def test_unknown_attribute_lists_valid_names(celeba) -> None:
    root, _, _ = celeba
    with pytest.raises(
        DatasetError, match=r"no attribute 'Blonde_Hair'; valid names .*Black_Hair, Blond_Hair, Blurry"
    ):
        read_celeba(root, "train", target="Blonde_Hair")
    with pytest.raises(DatasetError, match=r"no attribute 'male'"):
        CelebADataModule(str(root), biases=["male", "Young"]).setup("fit")


def test_class_without_samples(tmp_path: Path) -> None:
    a = _attrs(2)
    a[:, BLOND] = 0
    r = make_celeba(tmp_path, a, np.zeros(len(a), dtype=int), images=False)
    with pytest.raises(DatasetError, match=r"CelebA train .*target Blond_Hair\): class 1 has no samples"):
        read_celeba(r, "train")

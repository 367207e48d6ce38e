"""CelebA's files: official TXT / Kaggle CSV parsing checked against torchvision, Echoes' .npy files, checksums, and
bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from dataset_fixtures import BLOND, MALE, celeba_to_kaggle, make_celeba

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.celeba import MultibiasSpec, multibias_indices, read_celeba
from sebra.datasets.celeba_files import (
    CELEBA_ATTRS,
    CELEBA_MD5,
    load_celeba_metadata,
    md5_mismatches,
    read_echoes_splits,
)


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


def test_kaggle_csv_equals_official(celeba, tmp_path: Path) -> None:
    root = celeba[0]
    k = load_celeba_metadata(celeba_to_kaggle(root, tmp_path))
    o = load_celeba_metadata(root)
    assert k.source == "csv" and k.files == o.files and k.attr_names == o.attr_names
    assert np.array_equal(k.attrs, o.attrs) and np.array_equal(k.partition, o.partition)
    assert k.image_dir.name == "img_align_celeba" and k.image_dir.parent.name == "img_align_celeba"
    ds = read_celeba(tmp_path, "val")
    assert ds[0]["image"].shape == (3, 7, 6)


def test_npy_bad_values(celeba, tmp_path: Path) -> None:
    root, _, _ = celeba
    arrs = multibias_indices(root, MultibiasSpec(ratios=(0.75, 0.75), train_per_class=16, eval_per_class=4))
    meta = load_celeba_metadata(root)
    for s, arr in arrs.items():
        np.save(tmp_path / f"{s}_data.npy", arr)
    bad = arrs["val"].copy()
    bad[3, 2] = 2
    np.save(tmp_path / "val_data.npy", bad)
    with pytest.raises(DatasetError, match=r"val_data.npy: row 3, column 2 \(biasA\) is 2; expected 0 or 1"):
        read_echoes_splits(tmp_path, meta, "Smiling", ("Male", "Young"))
    np.save(tmp_path / "val_data.npy", arrs["val"][:, :3].astype(np.float32))
    with pytest.raises(
        DatasetError, match=r"val_data.npy: array of shape \(8, 3\) and dtype float32; expected"
    ):
        read_echoes_splits(tmp_path, meta, "Smiling", ("Male", "Young"))
    bad = arrs["val"].copy()
    bad[0, 0] = 10**6
    np.save(tmp_path / "val_data.npy", bad)
    with pytest.raises(DatasetError, match=r"row 0, column 0 \(celeba index\) is 1000000; expected 0..95"):
        read_echoes_splits(tmp_path, meta, "Smiling", ("Male", "Young"))


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


def test_md5_mismatches_names_changed_and_missing_files(celeba, tmp_path: Path) -> None:
    root = celeba[0]
    bad = md5_mismatches(root)  # the fixture's files are not the published ones
    assert [b.split(" ")[0] for b in bad] == list(CELEBA_MD5)
    assert all("published" in b for b in bad)
    r = make_celeba(tmp_path, celeba[1][:4], np.array([0, 0, 1, 2]), images=False)
    (r / "celeba" / "identity_CelebA.txt").unlink()
    assert "identity_CelebA.txt (missing)" in md5_mismatches(r)

"""User data: CSV manifests, class-per-folder trees, the seeded split, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import write_image

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.folder import (
    CSVDataModule,
    ImageFolderDataModule,
    read_image_folder,
    read_manifest,
    seeded_split,
)


def test_seeded_split_properties() -> None:
    labels = np.array([0] * 10 + [1] * 5 + [2] * 20)
    before = torch.get_rng_state()
    a = seeded_split(len(labels), 0.2, seed=7, test_fraction=0.1, labels=labels)
    assert torch.equal(before, torch.get_rng_state())  # global RNG untouched
    b = seeded_split(len(labels), 0.2, seed=7, test_fraction=0.1, labels=labels)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    allpos = np.concatenate([a["train"], a["val"], a["test"]])
    assert sorted(allpos.tolist()) == list(range(len(labels)))  # a partition
    # per class: round(n * fraction), by hand: val 2/1/4, test 1/0/2
    assert np.bincount(labels[a["val"]]).tolist() == [2, 1, 4]
    assert np.bincount(labels[a["test"]], minlength=3).tolist() == [1, 0, 2]
    assert all((np.diff(a[s]) > 0).all() for s in a)  # sorted: table order kept
    c = seeded_split(len(labels), 0.2, seed=8, test_fraction=0.1, labels=labels)
    assert not np.array_equal(a["val"], c["val"])
    plain = seeded_split(50, 0.3, seed=0)
    assert set(plain) == {"train", "val"} and len(plain["val"]) == 15
    with pytest.raises(ValueError, match="sum < 1"):
        seeded_split(10, 0.6, 0, test_fraction=0.5)


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    rows = ["path,label,split,bg,shape"]
    k = 0
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                write_image(tmp_path / "imgs" / f"{cls}{k}.png", k, fmt="PNG")
                bg = (i % 3 != 0) if cls == "cat" else (i % 3 == 0)
                rows.append(f"imgs/{cls}{k}.png,{cls},{split},{int(bg)},{i % 2}")
                k += 1
    p = tmp_path / "data.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def test_manifest_with_names_split_and_attrs(manifest: Path) -> None:
    splits = read_manifest(manifest)
    assert set(splits) == {"train", "val", "test"}
    lines = manifest.read_text().splitlines()[1:]
    tr = splits["train"]
    assert tr.class_names == ["cat", "dog"] and tr.bias.attr_names == ("bg", "shape")
    for s, ds in splits.items():
        for row in ds.table.itertuples():
            path, cls, split, bg, shape = lines[row.index].split(",")  # index = 0-based data row
            assert split == s and row.path == str(manifest.parent / path)
            assert row.label == ["cat", "dog"].index(cls)
            assert (row.bg, row.shape) == (int(bg), int(shape))
            assert row.group == row.label * 4 + int(bg) * 2 + int(shape)  # mixed radix, cards 2 and 2
    # majority value per class on train, by hand: cats mostly bg 1 (4 of 6), dogs mostly bg 0 (4 of 6)
    assert [v[0] for v in tr.bias.aligned_value] == [1, 0]
    assert tr.bias.train_ratios[0] == pytest.approx(8 / 12)
    item = splits["val"][0]
    assert item["image"].shape == (3, 8, 8) and int(item["index"]) == int(splits["val"].table["index"][0])


def test_manifest_int_labels_and_seeded_split(tmp_path: Path) -> None:
    rows = ["path,label"]
    for k in range(20):
        write_image(tmp_path / f"{k}.jpg", k)
        rows.append(f"{tmp_path / f'{k}.jpg'},{k % 2}")  # absolute paths are kept
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    splits = read_manifest(tmp_path / "m.csv", val_fraction=0.2, seed=3, class_names=["even", "odd"])
    assert set(splits) == {"train", "val"} and splits["train"].class_names == ["even", "odd"]
    assert splits["val"].class_counts().tolist() == [2, 2]
    assert splits["train"].bias is None and (splits["train"].groups == -1).all()
    assert sorted(splits["train"].indices.tolist() + splits["val"].indices.tolist()) == list(range(20))
    dm = CSVDataModule(str(tmp_path / "m.csv"), val_fraction=0.2, seed=3, batch_size=4)
    dm.setup("fit")
    assert torch.equal(dm.splits["val"].indices, splits["val"].indices) and dm.test_dataset is None


def test_manifest_bad_input(manifest: Path, tmp_path: Path) -> None:
    text = manifest.read_text()
    lines = text.splitlines()

    def write(new_lines) -> Path:
        p = manifest.parent / "bad.csv"
        p.write_text("\n".join(new_lines) + "\n")
        return p

    with pytest.raises(
        DatasetNotFoundError,
        match=r"manifest .*nope.csv does not exist; expected a CSV with columns path,label",
    ):
        read_manifest(tmp_path / "nope.csv")
    bad = lines.copy()
    bad[4] = bad[4].replace(".png", "_gone.png")
    with pytest.raises(
        DatasetNotFoundError,
        match=r"bad.csv: row 3 \(line 5\) names the image .*_gone.png, which does not exist",
    ):
        read_manifest(write(bad))
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['label'\]; found \['path', 'lbl'"):
        read_manifest(write([lines[0].replace("label", "lbl")] + lines[1:]))
    bad = lines.copy()
    bad[2] = bad[2].replace(",cat,", ",cow,")
    with pytest.raises(
        DatasetError,
        match=r"row 1 \(line 3\) label 'cow' is not a class name; expected one of \['cat', 'dog'\]",
    ):
        read_manifest(write(bad), class_names=["cat", "dog"])
    bad = lines.copy()
    bad[5] = bad[5].replace(",train,", ",training,")
    with pytest.raises(DatasetError, match=r"row 4 \(line 6\) split 'training'; expected train, val or test"):
        read_manifest(write(bad))
    bad = lines.copy()
    bad[6] = bad[6].rsplit(",", 1)[0] + ",x"
    with pytest.raises(
        DatasetError, match=r"row 5 \(line 7\) column 'shape' is 'x'; expected an integer >= -1"
    ):
        read_manifest(write(bad))
    no_dog_val = [ln for ln in lines if ",dog,val," not in ln]
    with pytest.raises(DatasetError, match=r"split val: class 1 \(dog\) has no samples"):
        read_manifest(write(no_dog_val))


def _tree(root: Path, layout: dict[str, dict[str, int]]) -> None:
    k = 0
    for split, classes in layout.items():
        for cls, n in classes.items():
            for i in range(n):
                d = root / split / cls if split else root / cls
                write_image(d / f"img{i}.{'png' if i % 2 else 'jpg'}", k, fmt="PNG" if i % 2 else "JPEG")
                k += 1


def test_folder_tree_with_splits(tmp_path: Path) -> None:
    _tree(tmp_path, {"train": {"b": 3, "a": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 2}})
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    splits = read_image_folder(tmp_path)
    tr = splits["train"]
    assert tr.class_names == ["a", "b"]
    assert [Path(p).relative_to(tmp_path).as_posix() for p in tr.table["path"]] == [
        "train/a/img0.jpg",
        "train/a/img1.png",
        "train/b/img0.jpg",
        "train/b/img1.png",
        "train/b/img2.jpg",
    ]
    assert tr.labels.tolist() == [0, 0, 1, 1, 1]
    # indices unique across splits: train 0..4, val 5..6, test 7..9
    assert tr.indices.tolist() == [0, 1, 2, 3, 4]
    assert splits["val"].indices.tolist() == [5, 6] and splits["test"].indices.tolist() == [7, 8, 9]
    dm = ImageFolderDataModule(str(tmp_path), image_size=4, batch_size=2)
    dm.setup("fit")
    assert next(iter(dm.test_dataloader()))["image"].shape == (3, 3, 4, 4)


def test_folder_tree_seeded_split(tmp_path: Path) -> None:
    _tree(tmp_path, {"": {"x": 5, "y": 10}})
    splits = read_image_folder(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [s.class_counts().tolist() for s in splits.values()] == [[3, 6], [1, 2], [1, 2]]
    union = sorted(i for s in splits.values() for i in s.indices.tolist())
    assert union == list(range(15))


def test_folder_bad_input(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"root .*nope does not exist; expected .*/<split>/<class>/"
    ):
        read_image_folder(tmp_path / "nope")
    _tree(tmp_path / "t1", {"val": {"a": 1}})
    with pytest.raises(DatasetNotFoundError, match=r"has val/ but no train/"):
        read_image_folder(tmp_path / "t1")
    _tree(tmp_path / "t2", {"train": {"a": 1, "b": 1}, "val": {"a": 1, "c": 1}})
    with pytest.raises(DatasetError, match=r"class 'c' is not a class of .*/train/ \(a, b\)"):
        read_image_folder(tmp_path / "t2")
    _tree(tmp_path / "t3", {"train": {"a": 1, "b": 1}, "val": {"a": 1}})
    (tmp_path / "t3" / "val" / "b").mkdir()
    with pytest.raises(DatasetError, match=r"split val: class 1 \(b\) has no samples"):
        read_image_folder(tmp_path / "t3")

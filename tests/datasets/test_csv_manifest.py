"""User data as a CSV manifest: names, splits and attributes read as written, the seeded split, the data module's
options, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dataset_fixtures import write_image

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.csv_manifest import CSVDataModule, read_manifest


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


@pytest.mark.parametrize("batch_augment", [True, False])
def test_datamodule_batch_augment(manifest: Path, batch_augment: bool) -> None:
    """``batch_augment`` means what it means in every data module: uint8 samples normalised per batch on device
    (True), or per-sample torchvision transforms in the loader (False); both give the same evaluation images."""
    dm = CSVDataModule(str(manifest), batch_size=4, batch_augment=batch_augment, augment="flip")
    dm.setup("fit")
    assert dm.batch_augment is batch_augment and (dm.train_transform is None) is batch_augment
    images = next(iter(dm.val_dataloader()))["image"]
    assert images.dtype == (torch.uint8 if batch_augment else torch.float32)
    ref = CSVDataModule(str(manifest), batch_augment=False)
    ref.setup("fit")
    want = torch.stack([ref.val_dataset[i]["image"] for i in range(len(images))])
    torch.testing.assert_close(dm.batch_transform(images, train=False), want)

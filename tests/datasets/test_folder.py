"""User data as a class-per-folder tree: the walk, split folders or the seeded split, the data module's options,
and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dataset_fixtures import write_image

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.folder import ImageFolderDataModule, read_image_folder


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
    dm = ImageFolderDataModule(str(tmp_path), image_size=8, batch_size=2)
    dm.setup("fit")
    assert next(iter(dm.test_dataloader()))["image"].shape == (3, 3, 8, 8)


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


@pytest.mark.parametrize("batch_augment", [True, False])
def test_datamodule_batch_augment(tmp_path: Path, batch_augment: bool) -> None:
    """The same ``batch_augment`` option as every data module (uint8 batches normalised on device, or per-sample
    transforms), giving the same evaluation images either way."""
    _tree(tmp_path, {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    dm = ImageFolderDataModule(
        str(tmp_path), image_size=8, batch_size=2, batch_augment=batch_augment, augment="crop_flip"
    )
    dm.setup("fit")
    assert dm.batch_augment is batch_augment and (dm.train_transform is None) is batch_augment
    images = next(iter(dm.val_dataloader()))["image"]
    assert images.dtype == (torch.uint8 if batch_augment else torch.float32)
    ref = ImageFolderDataModule(str(tmp_path), image_size=8, batch_augment=False)
    ref.setup("fit")
    want = torch.stack([ref.val_dataset[i]["image"] for i in range(len(images))])
    torch.testing.assert_close(dm.batch_transform(images, train=False), want)

"""BAR: alinlab folders and IRMCon's .torch file, the seeded validation split, and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import BAR_CLASSES, make_bar
from PIL import Image

from sebra.datasets.bar import BARDataModule, bar_splits, read_bar, read_bar_torch
from sebra.datasets.base import DatasetError, DatasetNotFoundError


@pytest.fixture(scope="module")
def bar_root(tmp_path_factory) -> Path:
    return make_bar(tmp_path_factory.mktemp("bar") / "BAR")


def _walk(d: Path) -> list[tuple[int, int, str]]:
    out = []
    for f in os.listdir(d):
        cls, n = f[:-4].rsplit("_", 1)
        out.append((BAR_CLASSES.index(cls), int(n), str(d / f)))
    return sorted(out)


@pytest.mark.parametrize("split", ["train", "test"])
def test_folder_table(bar_root: Path, split: str) -> None:
    ds = read_bar(bar_root, split)
    exp = _walk(bar_root / split)
    assert ds.table["path"].tolist() == [e[2] for e in exp]
    assert ds.table["label"].tolist() == [e[0] for e in exp]
    assert ds.table["index"].tolist() == list(range(len(exp)))
    assert ds.class_names[3] == "pole vaulting" and ds.num_classes == 6
    assert ds.bias is None and ds.attrs.shape == (len(exp), 0) and (ds.groups == -1).all()
    assert (ds.table["label"] == 3).sum() == (5 if split == "train" else 2)


def test_png_and_palette_in_jpg(bar_root: Path) -> None:
    ds = read_bar(bar_root, "train", cache=False)
    for name in ("diving_1.jpg", "fishing_0.jpg"):
        pos = ds.table.index[ds.table["path"].str.endswith(name)][0]
        with Image.open(ds.table["path"][pos]) as im:
            assert im.format == "PNG"
            ref = torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1)
        img = ds[pos]["image"]
        assert img.shape[0] == 3 and torch.equal(img, ref)


def test_validation_split_keeps_indices(bar_root: Path) -> None:
    splits = bar_splits(bar_root, val_fraction=0.2, seed=3)
    full = read_bar(bar_root, "train")
    tr, va = splits["train"], splits["val"]
    per_class = full.class_counts().tolist()
    assert len(va) == sum(round(0.2 * n) for n in per_class) and len(tr) + len(va) == len(full)
    assert va.class_counts().tolist() == [round(0.2 * n) for n in per_class]  # every class keeps its share
    assert set(tr.indices.tolist()).isdisjoint(va.indices.tolist())
    assert sorted(tr.indices.tolist() + va.indices.tolist()) == full.indices.tolist()
    for ds in (tr, va):  # index -> same file and label as in the full train list
        for i, item in zip(ds.indices.tolist(), ds.table.itertuples()):
            assert full.table["path"][i] == item.path and full.table["label"][i] == item.label
    again = bar_splits(bar_root, val_fraction=0.2, seed=3)
    assert torch.equal(again["val"].indices, va.indices)
    other = bar_splits(bar_root, val_fraction=0.2, seed=4)
    assert not torch.equal(other["val"].indices, va.indices)
    # the global RNG is neither used nor moved
    state = torch.get_rng_state()
    bar_splits(bar_root, val_fraction=0.4, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert len(bar_splits(bar_root, val_fraction=0.4, seed=3)["val"]) == sum(
        round(0.4 * n) for n in per_class
    )


def _torch_file(bar_root: Path, label_info=None) -> Path:
    data = bar_root.parent  # IRMCon: data/BAR/dataset0.01.torch, paths relative to data/
    obj = {}
    for split in ("train", "test"):
        ds = read_bar(bar_root, split)
        rel = [str(Path(p).relative_to(data)) for p in ds.table["path"]]
        obj[split] = [rel, ds.table["label"].tolist()]
    obj["label_info"] = label_info if label_info is not None else {c: i for i, c in enumerate(BAR_CLASSES)}
    path = bar_root / "dataset0.01.torch"
    torch.save(obj, path)
    return path


def test_torch_file_matches_folders(bar_root: Path) -> None:
    path = _torch_file(bar_root)
    for split in ("train", "test"):
        a, b = read_bar_torch(path, split), read_bar(bar_root, split)
        assert a.table[["index", "path", "label"]].equals(b.table[["index", "path", "label"]])
        assert a.class_names == list(BAR_CLASSES)
    dm = BARDataModule(torch_file=str(path), val_fraction=0.4, seed=1, image_size=8, batch_size=4)
    dm.setup("fit")
    assert len(dm.splits["val"]) == 6 * round(0.4 * 5) and len(dm.splits["train"]) == 6 * 3
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape[1:] == (3, 8, 8) and batch["attrs"].shape[1] == 0


def test_torch_file_label_info_order_and_base_dir(bar_root: Path, tmp_path: Path) -> None:
    # Sebra's display order; ids->names mapping
    order = ["climbing", "diving", "fishing", "racing", "throwing", "pole vaulting"]
    path = _torch_file(bar_root, label_info={i: n for i, n in enumerate(order)})
    moved = tmp_path / "elsewhere" / "x.torch"
    moved.parent.mkdir()
    moved.write_bytes(path.read_bytes())
    with pytest.raises(
        DatasetNotFoundError, match=r"30 of 30 train images are missing, first .*BAR/train/climbing_0\.jpg"
    ):
        read_bar_torch(moved, "train")
    ds = read_bar_torch(moved, "train", base_dir=bar_root.parent)
    assert ds.class_names == order


def test_torch_file_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.torch"
    torch.save({"train": [["a.jpg"], [0]], "test": [[], []], "label_info": Path("x")}, path)
    with pytest.raises(DatasetError, match=r"evil.torch cannot be read with torch.load\(weights_only=True\)"):
        read_bar_torch(path, "train")
    torch.save({"train": [["a.jpg", "b.jpg"], [0]]}, path)
    with pytest.raises(DatasetError, match="entry 'train' is not \\[paths, labels\\]"):
        read_bar_torch(path, "train")


def test_group_by_class(bar_root: Path) -> None:
    ds = read_bar(bar_root, "test", group_by_class=True)
    assert torch.equal(ds.groups, ds.labels)


def test_bad_input(bar_root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)BAR root .* does not exist.*<root>/train/<class>_<n>.jpg"
    ):
        read_bar(tmp_path / "nope", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)test does not exist.*<root>/test/"):
        read_bar(tmp_path, "test")
    make_bar(tmp_path / "b", {"climbing": (2, 1), "diving": (2, 1)})
    with pytest.raises(DatasetError, match=r"class 2 \(fishing\) has no samples"):
        read_bar(tmp_path / "b", "train")
    make_bar(tmp_path / "c")
    (tmp_path / "c" / "train" / "skating_1.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="skating_1.jpg is not named <class>_<n>.jpg"):
        read_bar(tmp_path / "c", "train")
    with pytest.raises(ValueError, match="needs root"):
        BARDataModule()

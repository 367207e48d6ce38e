"""UrbanCars reader against a fixture in the generator's exact layout, checked with an independent walk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import UC_FOLDERS, make_urbancars, write_image
from PIL import Image

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.urbancars import UrbanCarsDataModule, read_urbancars, urbancars_counts


@pytest.fixture(scope="module")
def uc_root(tmp_path_factory) -> Path:
    return make_urbancars(tmp_path_factory.mktemp("uc"))


def _expected_rows(split_dir: Path) -> list[tuple[str, int, int, int]]:
    """Brute force: parse each folder name as text, list *.jpg, order by (obj, bg, coobj) then file number."""
    rows = []
    for folder in os.listdir(split_dir):
        parts = dict(p.split("-") for p in folder.replace("co_occur_obj", "coobj").split("_"))
        code = {k: {"urban": 0, "country": 1}[v] for k, v in parts.items()}
        for f in os.listdir(split_dir / folder):
            if f.endswith(".jpg"):
                rows.append(
                    (code["obj"], code["bg"], code["coobj"], int(f[:-4]), str(split_dir / folder / f))
                )
    rows.sort()
    return [(path, obj, bg, co) for obj, bg, co, _, path in rows]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_table_matches_independent_walk(uc_root: Path, split: str) -> None:
    ratio = "bg-0.95_co_occur_obj-0.95" if split == "train" else "bg-0.5_co_occur_obj-0.5"
    expected = _expected_rows(uc_root / "urbancars" / ratio / split)
    ds = read_urbancars(uc_root, split)
    t = ds.table
    assert list(t.columns) == ["index", "path", "label", "bg", "coobj", "group"]
    assert t["index"].tolist() == list(range(len(expected)))
    assert t["path"].tolist() == [r[0] for r in expected]
    assert t["label"].tolist() == [r[1] for r in expected]
    assert t["bg"].tolist() == [r[2] for r in expected]
    assert t["coobj"].tolist() == [r[3] for r in expected]
    assert t["group"].tolist() == [4 * o + 2 * b + c for _, o, b, c in expected]


def test_numeric_file_order_and_class_blocks(uc_root: Path) -> None:
    t = read_urbancars(uc_root, "train").table
    first = t[t["group"] == 0]["path"].map(lambda p: Path(p).name).tolist()
    assert first == ["000.jpg", "002.jpg", "999.jpg", "1000.jpg"]  # 999 before the unpadded 1000
    labels = t["label"].to_numpy()
    assert (np.diff(labels) >= 0).all() and labels[0] == 0  # class 0 is one contiguous first block
    assert not t["path"].str.endswith(".png").any()


def test_sample_image_and_index(uc_root: Path) -> None:
    ds = read_urbancars(uc_root, "test")
    for pos in (0, 5, len(ds) - 1):
        item = ds[pos]
        ref = torch.from_numpy(np.asarray(Image.open(ds.table["path"][pos]).convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(item["image"], ref)
        assert int(item["index"]) == int(ds.table["index"][pos])
        g = int(ds.table["group"][pos])
        assert item["attrs"].tolist() == [(g >> 1) & 1, g & 1]
        assert int(item["label"]) == g >> 2


def test_default_bias_spec(uc_root: Path) -> None:
    ds = read_urbancars(uc_root, "val")
    b = ds.bias
    assert b.attr_names == ("bg", "coobj")
    assert b.train_ratios == (0.95, 0.95)  # taken from the train folder's name even when reading val
    assert b.group_names[5] == "obj-country_bg-urban_co_occur_obj-country"
    # aligned: bg == obj and coobj == obj
    al = b.aligned(ds.labels, ds.attrs)
    assert torch.equal(al[:, 0], ds.attrs[:, 0] == ds.labels)
    assert torch.equal(al[:, 1], ds.attrs[:, 1] == ds.labels)


def test_root_may_be_the_urbancars_folder(uc_root: Path) -> None:
    a, b = read_urbancars(uc_root, "val"), read_urbancars(uc_root / "urbancars", "val")
    assert a.table.equals(b.table)


def test_regenerated_ratios(tmp_path: Path) -> None:
    make_urbancars(
        tmp_path,
        names={"train": ["000.jpg"], "val": ["000.jpg"], "test": ["000.jpg"]},
        ratio_dirs={"train": "bg-0.9_co_occur_obj-0.8"},
    )
    dm = UrbanCarsDataModule(str(tmp_path), batch_size=4)
    dm.setup("fit")
    assert dm.bias.train_ratios == (0.9, 0.8)
    assert dm.splits["test"].bias.train_ratios == (0.9, 0.8)
    # a second ratio folder makes "train" ambiguous until train_dir picks one
    shutil.copytree(
        tmp_path / "urbancars" / "bg-0.9_co_occur_obj-0.8", tmp_path / "urbancars" / "bg-0.7_co_occur_obj-0.7"
    )
    with pytest.raises(DatasetError, match="bg-0.7_co_occur_obj-0.7, bg-0.9_co_occur_obj-0.8"):
        read_urbancars(tmp_path, "train")
    assert read_urbancars(tmp_path, "train", train_dir="bg-0.7_co_occur_obj-0.7").bias.train_ratios == (
        0.7,
        0.7,
    )


def test_counts_formula() -> None:
    # int(4000 * p_bg * p_coobj) per group, hand-computed for the published 0.95 / 0.95 set.
    assert urbancars_counts("train") == {0: 3610, 1: 190, 2: 190, 3: 10, 4: 10, 5: 190, 6: 190, 7: 3610}
    assert urbancars_counts("test") == {g: 125 for g in range(8)}
    assert [urbancars_counts("train", (0.9, 0.8))[g] for g in range(4)] == [2880, 720, 320, 80]


def test_datamodule_batches_carry_index(uc_root: Path) -> None:
    dm = UrbanCarsDataModule(str(uc_root), batch_size=8, image_size=16)
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.num_groups == 8
    batch = next(iter(dm.loader(dm.train_eval_dataset, batch_size=8)))
    # samples stay uint8 until the batch transform (after transfer), which normalises whole batches
    assert batch["image"].shape == (8, 3, 16, 16) and batch["image"].dtype == torch.uint8
    x = dm.batch_transform(batch["image"], train=False)
    assert x.dtype == torch.float32 and x.shape == (8, 3, 16, 16)
    assert batch["index"].tolist() == list(range(8))
    assert len(dm.splits["train"]) == 32 and len(dm.splits["val"]) == 8 and len(dm.splits["test"]) == 16


# --- bad input ---------------------------------------------------------------------------------------------------
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)does not exist.*expected:.*bg-0.95_co_occur_obj-0.95/train"
    ):
        read_urbancars(tmp_path / "nope", "train")
    with pytest.raises(DatasetNotFoundError, match=r"(?s)neither urbancars/.*expected:"):
        read_urbancars(tmp_path, "train")


def test_missing_split_folder(tmp_path: Path) -> None:
    make_urbancars(tmp_path, splits=("train",))
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)no val/ folder.*expected:.*bg-0.5_co_occur_obj-0.5/val"
    ):
        read_urbancars(tmp_path, "val")


def test_missing_and_extra_group_folder(tmp_path: Path) -> None:
    make_urbancars(tmp_path, splits=("val",))
    d = tmp_path / "urbancars" / "bg-0.5_co_occur_obj-0.5" / "val"
    (d / UC_FOLDERS[3]).rename(d / "obj-urban_bg-country_co_occur_obj-countryy")
    with pytest.raises(DatasetNotFoundError, match=f"lacks the group folder.*{UC_FOLDERS[3]}"):
        read_urbancars(tmp_path, "val")
    (d / "obj-urban_bg-country_co_occur_obj-countryy").rename(d / UC_FOLDERS[3])
    (d / "obj-bus_bg-urban_co_occur_obj-urban").mkdir()
    with pytest.raises(DatasetError, match="unexpected folder.*obj-bus_bg-urban_co_occur_obj-urban"):
        read_urbancars(tmp_path, "val")


def test_empty_class(tmp_path: Path) -> None:
    make_urbancars(tmp_path, splits=("val",))
    d = tmp_path / "urbancars" / "bg-0.5_co_occur_obj-0.5" / "val"
    for f in UC_FOLDERS[4:]:
        for p in (d / f).glob("*.jpg"):
            p.unlink()
    with pytest.raises(DatasetError, match=r"class 1 \(country\) has no \*.jpg"):
        read_urbancars(tmp_path, "val")


def test_undecodable_image(tmp_path: Path) -> None:
    make_urbancars(tmp_path, splits=("val",))
    bad = tmp_path / "urbancars" / "bg-0.5_co_occur_obj-0.5" / "val" / UC_FOLDERS[0] / "000.jpg"
    bad.write_bytes(b"not an image")
    ds = read_urbancars(tmp_path, "val")
    with pytest.raises(DatasetError, match=f"{bad}.*cannot be decoded"):
        ds[0]
    write_image(bad, 1)
    assert ds[0]["image"].shape == (3, 8, 8)

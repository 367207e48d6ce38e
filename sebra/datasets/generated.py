"""Benchmarks sebra renders itself (the built-in one and the family): where they are cached, how they are written
in UrbanCars' folder layout and recognised again, and the data module that writes them on first use and reads them
back through the UrbanCars reader.

A generated data set is a folder ``root/urbancars/...`` plus a JSON file beside it recording what the data were made
from; the data are rewritten when that record differs from what is asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from typing_extensions import override

from sebra.datasets.animal_mnist import ANIMAL_CLASSES
from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.datasets.datamodule import SebraDataModule
from sebra.datasets.splits import SPLITS
from sebra.datasets.transforms import Augment
from sebra.datasets.urbancars import URBANCARS_GROUP_NAMES, read_urbancars

__all__ = ["GeneratedDataModule", "data_home", "is_generated", "write_generated", "write_splits"]


def data_home() -> Path:
    """The folder generated benchmarks are cached under: ``$SEBRA_DATA``, or ``~/.cache/sebra``."""
    return Path(os.environ.get("SEBRA_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "sebra"))


def write_splits(tmp: Path, data: dict[str, dict[str, np.ndarray]], ratio: float) -> None:
    """Write rendered splits (``{split: {"images", "label", "bg", "coobj", "animal"}}``) under ``tmp/urbancars/`` as
    UrbanCars' folders and JPEG files, with ``animals_<split>.csv`` beside them."""
    ratio_dir = {
        "train": f"bg-{ratio}_co_occur_obj-{ratio}",
        "val": "bg-0.5_co_occur_obj-0.5",
        "test": "bg-0.5_co_occur_obj-0.5",
    }
    for split, d in data.items():
        base = tmp / "urbancars" / ratio_dir[split] / split
        for folder in URBANCARS_GROUP_NAMES.values():
            (base / folder).mkdir(parents=True, exist_ok=True)
        counters: dict[str, int] = {}
        animals = []
        for img, lab, bg, co, an in zip(d["images"], d["label"], d["bg"], d["coobj"], d["animal"]):
            folder = URBANCARS_GROUP_NAMES[int(lab) * 4 + int(bg) * 2 + int(co)]
            k = counters.get(folder, 0)
            counters[folder] = k + 1
            name = f"{k:03d}.jpg"
            Image.fromarray(img).save(base / folder / name, quality=95, subsampling=0)
            animals.append(f"{split}/{folder}/{name},{ANIMAL_CLASSES[int(an)]}")
        (tmp / f"animals_{split}.csv").write_text("file,animal\n" + "\n".join(animals) + "\n")


def write_generated(
    root: str | Path, data: dict[str, dict[str, np.ndarray]], ratio: float, meta_name: str, meta: dict
) -> Path:
    """Write rendered splits under ``root/urbancars/`` (:func:`write_splits`) with ``root/<meta_name>`` recording
    what they were made from; everything is written into a temporary folder and renamed into place. The old record
    is removed before anything is replaced and the new one moved in last, so an interrupted run never leaves data
    that :func:`is_generated` accepts. Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generated-", dir=root))
    try:
        write_splits(tmp, data, ratio)
        (tmp / meta_name).write_text(json.dumps(meta, indent=1))
        (root / meta_name).unlink(missing_ok=True)
        for p in sorted(tmp.iterdir(), key=lambda p: p.name == meta_name):  # the record last
            dest = root / p.name
            if dest.exists():
                dest.unlink() if dest.is_file() else shutil.rmtree(dest)
            os.replace(p, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def is_generated(root: Path, meta_name: str, meta: dict) -> bool:
    """Whether ``root`` already holds generated data made from ``meta`` (compared as JSON)."""
    path = root / meta_name
    if not (path.exists() and (root / "urbancars").is_dir()):
        return False
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(meta))
    except json.JSONDecodeError:
        return False


class GeneratedDataModule(SebraDataModule):
    """A generated benchmark: written on first use (``prepare_data``), read back through the UrbanCars reader.

    Subclasses say how the data are made and described (:meth:`ensure_data`, :meth:`data_bias`,
    :meth:`data_class_names`); ``root`` is where the data are once :meth:`build_splits` has run.

    Args:
        root: where to write the data (default: the subclass's folder); kept as given in ``data_root``.
        image_size: side of the network input (the data are rendered at 32 px).
        augment: training augmentation (the CIFAR recipe by default).

    Other arguments: see :class:`SebraDataModule`.
    """

    def __init__(
        self, root: str | None = None, image_size: int = 32, augment: Augment = "crop_flip", **kwargs
    ) -> None:
        super().__init__(image_size=image_size, augment=augment, **kwargs)
        self.root = root
        self.data_root = Path(root) if root is not None else None

    def ensure_data(self) -> Path:
        """Write the data unless the same data are already there; returns the folder holding ``urbancars/``."""
        raise NotImplementedError

    def data_bias(self) -> BiasSpec:
        """The data's bias attributes (``bg`` = attribute A, ``coobj`` = attribute B)."""
        raise NotImplementedError

    def data_class_names(self) -> list[str]:
        """Readable names of class 0 and class 1."""
        raise NotImplementedError

    @override
    def prepare_data(self) -> None:
        self.ensure_data()

    def build_splits(self) -> dict[str, ImageDataset]:
        """The train/val/test datasets of the generated data (written first if needed)."""
        self.root = str(self.ensure_data())
        bias = self.data_bias()
        splits = {
            s: read_urbancars(self.root, s, image_size=self.image_size, cache=True, bias=bias) for s in SPLITS
        }
        for ds in splits.values():
            ds.class_names = self.data_class_names()
        return splits

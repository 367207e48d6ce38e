"""A tiny in-memory data set for method tests: 16 images of 8 px per split, two classes, two bias attributes.

Groups follow the built-in benchmark, ``group = label * 4 + bg * 2 + coobj``. The training split has per class
4 both-aligned, 2 bg-conflicting, 1 coobj-conflicting and 1 both-conflicting samples (all four spuriosity levels);
val and test hold two samples per group. Dataset indices are shuffled and far from positions, so a mix-up of index
and position shows. Imported by tests as ``from tiny_data import ...`` (``tests/support`` is on pytest's ``pythonpath``); the
``tiny_dm`` fixture (tests/conftest.py) gives a fresh data module.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.datasets.datamodule import SebraDataModule

SIZE = 8
#: SebraModule settings that run both stages on the tiny data in seconds (two ranking steps, two Stage 2 epochs).
TINY_SEBRA = {
    "backbone": "test_resnet",
    "max_steps": 2,
    "epochs": 2,
    "gap": 1,
    "rank_lr": 0.01,
    "p_critical": 0.999,
}
TINY_BIAS = BiasSpec(attr_names=("bg", "coobj"), aligned_value=((0, 0), (1, 1)), train_ratios=(0.75, 0.75))


def _split(cells: list[tuple[int, int, int, int]], seed: int, offset: int, name: str) -> ImageDataset:
    """``cells``: (label, bg, coobj, count). Images: channel 0 = label, 1 = bg, 2 = coobj pattern, plus noise."""
    g = torch.Generator().manual_seed(seed)
    rows = [(lab, bg, co) for lab, bg, co, n in cells for _ in range(n)]
    n = len(rows)
    table = pd.DataFrame(rows, columns=["label", "bg", "coobj"])
    table["group"] = table["label"] * 4 + table["bg"] * 2 + table["coobj"]
    table.insert(0, "index", (offset + 7 * torch.randperm(n, generator=g)).numpy().astype(np.int64))
    images = torch.randint(0, 40, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    for i, (lab, bg, co) in enumerate(rows):
        images[i, 0, :4] += 60 + 120 * lab  # the core signal: top half of channel 0
        images[i, 1] += 60 + 150 * bg  # the strong shortcut: whole channel 1
        images[i, 2, :, :4] += 60 + 120 * co  # the weak one: left half of channel 2
    return ImageDataset(table, images=images, bias=TINY_BIAS, class_names=["a", "b"], name=f"tiny-{name}")


def tiny_splits(seed: int = 0) -> dict[str, ImageDataset]:
    train_cells = []
    for lab in (0, 1):
        o = 1 - lab
        train_cells += [(lab, lab, lab, 4), (lab, o, lab, 2), (lab, lab, o, 1), (lab, o, o, 1)]
    eval_cells = [(lab, bg, co, 2) for lab in (0, 1) for bg in (0, 1) for co in (0, 1)]
    return {
        "train": _split(train_cells, seed, 1000, "train"),
        "val": _split(eval_cells, seed + 1, 2000, "val"),
        "test": _split(eval_cells, seed + 2, 3000, "test"),
    }


class TinyDataModule(SebraDataModule):
    """:func:`tiny_splits` served by the usual data module (no augmentation, batch 8, no resize)."""

    def __init__(
        self, batch_size: int = 8, augment: str = "none", data_seed: int = 0, seed: int = 0, **kwargs: object
    ) -> None:
        if "seed" in inspect.signature(SebraDataModule.__init__).parameters:  # batch augmentation's generator
            kwargs["seed"] = seed
        super().__init__(batch_size=batch_size, augment=augment, image_size=None, **kwargs)
        self.data_seed = data_seed

    def build_splits(self) -> dict[str, ImageDataset]:
        return tiny_splits(self.data_seed)


def ranked_table(train: ImageDataset, key: np.ndarray) -> pd.DataFrame:
    """A ranking table of ``train`` ordered per class by ``key`` descending (the first is the most spurious)."""
    df = pd.DataFrame({"index": train.indices.numpy(), "label": train.labels.numpy(), "p_y": key})
    df = df.sort_values(["label", "p_y"], ascending=[True, False]).reset_index(drop=True)
    df.insert(2, "rank", 1)
    df.insert(3, "position", df.groupby("label").cumcount() + 1)
    return df

"""What several readers share: the seeded split, the per-class check, a sample table cut into split datasets, and
the data module of the user-data readers (folder tree, CSV manifest).

The seeded split draws from a private ``torch.Generator`` seeded with ``seed``, so the same data give the same split
on every machine (BAR's validation share, and the user-data readers when the data name no split).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import BiasSpec, DatasetError, ImageDataset
from sebra.datasets.datamodule import SebraDataModule

__all__ = [
    "SPLITS",
    "UserDataModule",
    "check_every_class",
    "majority_bias_spec",
    "seeded_split",
    "split_table",
]

SPLITS = ("train", "val", "test")


def seeded_split(
    n: int,
    val_fraction: float,
    seed: int,
    *,
    test_fraction: float = 0.0,
    labels: Sequence[int] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Positions ``0..n-1`` split into train / val / test by a seeded permutation (per class when ``labels``).

    Each part holds ``round(n * fraction)`` positions (per class when stratified); positions come back sorted, so
    the order of the table is kept.

    Args:
        n: number of samples.
        val_fraction: share for ``val``.
        seed: seeds a private ``torch.Generator``; global RNG state is neither read nor changed.
        test_fraction: share for ``test`` (omitted from the result when 0).
        labels: class per position, to split each class separately (every class keeps its share).
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) with sum < 1"
        )
    gen = torch.Generator().manual_seed(int(seed))
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(np.asarray(labels) == c) for c in np.unique(np.asarray(labels))]
    )
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for pos in groups:
        perm = pos[torch.randperm(len(pos), generator=gen).numpy()]
        n_val, n_test = round(len(pos) * val_fraction), round(len(pos) * test_fraction)
        parts["val"].append(perm[:n_val])
        parts["test"].append(perm[n_val : n_val + n_test])
        parts["train"].append(perm[n_val + n_test :])
    out = {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}
    if test_fraction == 0:
        del out["test"]
    return out


def check_every_class(
    labels: Sequence[int] | np.ndarray | pd.Series,
    num_classes: int,
    where: str,
    names: Sequence[str] | None = None,
) -> None:
    """Refuse a split in which a class has no sample (the first such class is named, with ``names[c]`` if given)."""
    present = set(np.asarray(labels).tolist())
    for c in range(num_classes):
        if c not in present:
            named = f" ({names[c]})" if names is not None else ""
            raise DatasetError(f"{where}: class {c}{named} has no samples; every class needs at least one")


def majority_bias_spec(
    labels: np.ndarray, attrs: np.ndarray, attr_names: Sequence[str], num_classes: int
) -> BiasSpec:
    """A :class:`BiasSpec` read off training data: per class, the most frequent value of each attribute is the
    aligned one, and ``train_ratios`` is the share of samples (with a known value) equal to it.

    ``stronger`` is the attribute with the highest ratio (the paper's strength, measured by ERM, is not known
    here). ``-1`` marks an unknown value and is ignored; a class with no known value gets aligned value ``-1``.
    """
    attrs = np.asarray(attrs, dtype=np.int64).reshape(len(labels), len(attr_names))
    labels = np.asarray(labels, dtype=np.int64)
    aligned, ratios = [], []
    for c in range(num_classes):
        row = []
        for k in range(len(attr_names)):
            v = attrs[(labels == c) & (attrs[:, k] >= 0), k]
            row.append(int(np.bincount(v).argmax()) if len(v) else -1)
        aligned.append(tuple(row))
    for k in range(len(attr_names)):
        known = attrs[:, k] >= 0
        want = np.array([aligned[c][k] for c in labels[known]], dtype=np.int64)
        ratios.append(float((attrs[known, k] == want).mean()) if known.any() else float("nan"))
    stronger = int(np.argmax(ratios)) if ratios and not np.isnan(ratios).all() else 0
    return BiasSpec(tuple(attr_names), tuple(aligned), tuple(ratios), stronger)


def _groups(labels: np.ndarray, attrs: np.ndarray) -> np.ndarray:
    """Mixed-radix group id ``label * prod(card) + sum(attr_k * stride_k)``; ``-1`` when an attribute is unknown."""
    cards = (
        [int(max(attrs[:, k].max(), 0)) + 1 for k in range(attrs.shape[1])]
        if len(attrs)
        else [1] * attrs.shape[1]
    )
    group = labels.astype(np.int64).copy()
    for k, card in enumerate(cards):
        group = group * card + attrs[:, k]
    group[(attrs < 0).any(axis=1)] = -1
    return group


def split_table(
    table: pd.DataFrame,
    split_of: np.ndarray | None,
    attr_names: list[str],
    class_names: list[str],
    where: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    image_size: int | tuple[int, int] | None,
    cache: bool,
    *,
    has_group: bool = False,
) -> dict[str, ImageDataset]:
    """A whole data set's sample table as split :class:`ImageDataset` s (the user-data readers' common end).

    The table is cut by ``split_of`` (a split name per row) or, when that is ``None``, by the seeded per-class split.
    With bias attributes, rows get the mixed-radix group (unless the table has its own ``group`` column) and every
    split the :func:`majority_bias_spec` of train. Every class must be in every split.
    """
    nc = len(class_names)
    if nc < 2:  # it would train, and score 100%, on nothing to tell apart
        found = f"1 class ({class_names[0]})" if nc else "no class"
        raise DatasetError(f"{where}: has {found}; a classifier needs at least 2 classes")
    if split_of is None:
        parts = seeded_split(
            len(table), val_fraction, seed, test_fraction=test_fraction, labels=table["label"].to_numpy()
        )
    else:
        parts = {s: np.flatnonzero(split_of == s) for s in SPLITS if (split_of == s).any()}
        if "train" not in parts:
            raise DatasetError(
                f"{where}: no sample is in the train split; expected split values train, val, test"
            )
    bias = None
    if attr_names:
        a = table[attr_names].to_numpy(dtype=np.int64)
        if not has_group:
            table["group"] = _groups(table["label"].to_numpy(), a)
        tr = parts["train"]
        bias = majority_bias_spec(table["label"].to_numpy()[tr], a[tr], attr_names, nc)
    elif not has_group:
        table["group"] = -1
    out = {}
    for s, pos in parts.items():
        t = table.iloc[pos].reset_index(drop=True)
        check_every_class(t["label"], nc, f"{where}, split {s}", class_names)
        out[s] = ImageDataset(
            t,
            image_size=image_size,
            cache=cache,
            num_classes=nc,
            class_names=class_names,
            bias=bias,
            name=f"{where} [{s}]",
        )
    return out


class UserDataModule(SebraDataModule):
    """User data split by its own split names or, when it has none, by :func:`seeded_split` (the folder tree and
    CSV manifest modules).

    Args:
        val_fraction: share of each class drawn for ``val`` when the data name no split.
        test_fraction: share of each class drawn for ``test`` then (0: no test split).
        seed: seeds that split and the batch augmentation.
        cache: keep decoded uint8 images in memory.

    Other arguments: see :class:`SebraDataModule`; set ``image_size`` when images differ in size.
    """

    def __init__(
        self,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        cache: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.cache = cache

    def split_options(self) -> dict:
        """The reader's split and decoding arguments (``val_fraction``, ``test_fraction``, ``seed``, ``image_size``,
        ``cache``)."""
        return {
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "image_size": self.image_size,
            "cache": self.cache,
        }

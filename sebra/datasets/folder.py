"""User data as a class-per-folder tree.

Layout (``read_image_folder``): ``root/<split>/<class>/*.{jpg,png,...}`` with ``train`` and optionally ``val`` and
``test``, or ``root/<class>/...`` split by seed. Classes are the sorted folder names; the ``index`` is the position in
(split, class, file path) order, unique over all splits. Without split folders, ``val`` (and ``test`` when
``test_fraction > 0``) are drawn per class by :func:`~sebra.datasets.splits.seeded_split`, the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sebra.datasets.base import DatasetError, DatasetNotFoundError, ImageDataset, warn_hidden_skipped
from sebra.datasets.splits import SPLITS, UserDataModule, split_table

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataModule", "read_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _hidden(rel: Path) -> bool:
    """Whether a path (relative to the tree's root) is or lies in a dot-file or dot-folder: Jupyter's
    ``.ipynb_checkpoints/*-checkpoint.png`` copies (duplicate samples), macOS's ``._*`` resource forks (not images)."""
    return any(part.startswith(".") for part in rel.parts)


def _images_under(d: Path, exts: set[str], root: Path, hidden: list[Path]) -> list[Path]:
    """Image files under ``d`` by relative path; hidden ones (:func:`_hidden`, relative to ``root``) go to
    ``hidden`` instead."""
    found = []
    for p in d.rglob("*"):
        if p.is_file() and p.suffix.lower() in exts:
            (hidden if _hidden(p.relative_to(root)) else found).append(p)
    return sorted(found, key=lambda p: p.relative_to(d).as_posix())


def read_image_folder(
    root: str | Path,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
) -> dict[str, ImageDataset]:
    """Read ``root/<split>/<class>/...`` (or ``root/<class>/...``, split by seed) into :class:`ImageDataset` s.

    Args:
        root: the tree's root.
        val_fraction, test_fraction, seed: the seeded per-class split used when ``root`` has no ``train/``.
        extensions: image file suffixes (case-insensitive), searched recursively under each class folder.
        image_size: resize on decode (needed to cache images of mixed sizes).
        cache: keep decoded uint8 images in memory.

    Dot-files and everything in dot-folders (``.ipynb_checkpoints/``, macOS ``._*``) are skipped, with one warning
    saying how many.

    Raises:
        DatasetNotFoundError: ``root`` (or its class folders) is missing; the message shows the expected tree.
        DatasetError: a split folder names a class train lacks, or a class has no images in a split.
    """
    root = Path(root)
    tree = (
        f"expected {root}/<split>/<class>/*.jpg with split in train, val, test (train required), "
        f"or {root}/<class>/*.jpg split by seed"
    )
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder root {root} does not exist; {tree}")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if split_dirs and "train" not in split_dirs:
        raise DatasetNotFoundError(f"image folder {root} has {', '.join(split_dirs)}/ but no train/; {tree}")
    layout = split_dirs or {"all": root}
    class_names = sorted(
        p.name for p in layout.get("train", root).iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not class_names:
        raise DatasetNotFoundError(f"image folder {layout.get('train', root)} has no class folders; {tree}")
    lookup = {n: i for i, n in enumerate(class_names)}
    rows = []
    hidden: list[Path] = []
    for s, d in layout.items():
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cdir.name.startswith("."):  # .ipynb_checkpoints, .DS_Store folders: not a class
                hidden += [p for p in cdir.rglob("*") if p.is_file() and p.suffix.lower() in exts]
                continue
            if cdir.name not in lookup:
                raise DatasetError(
                    f"image folder {cdir}: class {cdir.name!r} is not a class of {d.parent}/train/ "
                    f"({', '.join(class_names)})"
                )
            rows += [(str(p), lookup[cdir.name], s) for p in _images_under(cdir, exts, root, hidden)]
    warn_hidden_skipped(f"image folder {root}", hidden, root)
    table = pd.DataFrame(rows, columns=["path", "label", "split"])
    table.insert(0, "index", np.arange(len(table), dtype=np.int64))
    split_of = table.pop("split").to_numpy() if split_dirs else None
    options = (val_fraction, test_fraction, seed, image_size, cache)
    return split_table(table, split_of, [], class_names, f"image folder {root}", *options)


class ImageFolderDataModule(UserDataModule):
    """A class-per-folder tree (see :func:`read_image_folder`); no bias attributes, so no groups.

    Args:
        root: the tree's root; ``val_fraction``, ``test_fraction`` and ``seed`` split it when it has no ``train/``.

    Other arguments: see :class:`~sebra.datasets.splits.UserDataModule`.
    """

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the tree (split folders, or the seeded split)."""
        return read_image_folder(self.root, **self.split_options())

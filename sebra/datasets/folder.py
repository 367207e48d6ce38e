"""User data: a CSV manifest or a class-per-folder tree, plus the seeded split both (and BAR) use.

CSV manifest (``read_manifest``): columns ``path,label`` plus optional ``split`` (``train`` / ``val`` / ``test``),
``group`` and bias attribute columns (every other column, or the ones named in ``attrs``). Paths are relative to the
CSV's folder (absolute paths are kept). ``label`` is either an integer class id for every row or a class name for
every row (ids then follow ``class_names``, default: sorted names). Attribute values are integers, ``-1`` = unknown;
they are used for evaluation only. The dataset ``index`` is the 0-based data row, unique over all splits.

Folder tree (``read_image_folder``): ``root/<split>/<class>/*.{jpg,png,...}`` with ``train`` and optionally ``val``
and ``test``, or ``root/<class>/...`` split by seed. Classes are the sorted folder names; the ``index`` is the
position in (split, class, file path) order, unique over all splits.

Without a ``split`` column or split folders, ``val`` (and ``test`` when ``test_fraction > 0``) are drawn per class
from a ``torch.Generator`` seeded with ``seed``, so the split is the same on every machine.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import BiasSpec, DatasetError, DatasetNotFoundError, ImageDataset
from sebra.datasets.datamodule import IMAGENET_MEAN, IMAGENET_STD, Augment, SebraDataModule
from sebra.utils.files import read_csv_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "CSVDataModule",
    "ImageFolderDataModule",
    "majority_bias_spec",
    "read_image_folder",
    "read_manifest",
    "seeded_split",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "val", "test")
_RESERVED = ("path", "label", "split", "group", "index")


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


def _groups(labels: np.ndarray, attrs: np.ndarray) -> tuple[np.ndarray, list[int]]:
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
    return group, cards


def _check_classes(table: pd.DataFrame, num_classes: int, names: Sequence[str], where: str) -> None:
    present = set(table["label"].tolist())
    for c in range(num_classes):
        if c not in present:
            raise DatasetError(
                f"{where}: class {c} ({names[c]}) has no samples; every class needs at least one"
            )


def _finish(
    table: pd.DataFrame,
    split_of: np.ndarray | None,
    attr_names: list[str],
    class_names: list[str],
    where: str,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    image_size: int | tuple[int, int] | None,
    cache: bool,
    has_group: bool = False,
) -> dict[str, ImageDataset]:
    """Split the full table, attach groups and a train-derived BiasSpec, check every class is in every split."""
    nc = len(class_names)
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
            table["group"], _ = _groups(table["label"].to_numpy(), a)
        tr = parts["train"]
        bias = majority_bias_spec(table["label"].to_numpy()[tr], a[tr], attr_names, nc)
    elif not has_group:
        table["group"] = -1
    out = {}
    for s, pos in parts.items():
        t = table.iloc[pos].reset_index(drop=True)
        _check_classes(t, nc, class_names, f"{where}, split {s}")
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


def _int_column(df: pd.DataFrame, col: str, where: str, *, minimum: int | None = None) -> np.ndarray:
    """Parse a text column as integers, naming the first bad row (line = row + 2, after the header)."""
    vals = pd.to_numeric(df[col].str.strip(), errors="coerce")
    bad = vals.isna() | (vals != vals.round())
    if minimum is not None:
        bad |= vals < minimum
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        need = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise DatasetError(
            f"{where}: row {r} (line {r + 2}) column {col!r} is {df[col].iloc[r]!r}; expected {need}"
        )
    return vals.to_numpy().astype(np.int64)


MANIFEST_CONTENT = "a header path,label[,split][,group][,<bias attributes>] and one row per image"


def _unique_images(df: pd.DataFrame, paths: list[str], where: str) -> np.ndarray:
    """Bool mask of the rows to keep: an image listed twice is an error naming both rows (its label, split or
    attributes would be ambiguous, or it would be in two splits at once), except for an exact repeat of a whole row,
    which is dropped with a warning."""
    norm = pd.Series([os.path.normpath(p) for p in paths])
    dup = norm.duplicated(keep=False).to_numpy()
    keep = np.ones(len(paths), dtype=bool)
    if not dup.any():
        return keep
    cells = df.apply(lambda c: c.str.strip())
    first: dict[str, int] = {}
    for r in np.flatnonzero(dup):
        key = norm.iloc[r]
        if key not in first:
            first[key] = int(r)
            continue
        a = first[key]
        diff = [c for c in df.columns if c != "path" and cells[c].iloc[a] != cells[c].iloc[r]]
        if not diff:
            warnings.warn(
                f"{where}: row {r} (line {r + 2}) repeats row {a} (line {a + 2}) exactly "
                f"({paths[r]}); the repeat is ignored",
                stacklevel=3,
            )
            keep[r] = False
            continue
        what = "; ".join(f"{c} {cells[c].iloc[a]!r} vs {cells[c].iloc[r]!r}" for c in diff)
        raise DatasetError(
            f"{where}: rows {a} (line {a + 2}) and {r} (line {r + 2}) both list the image {paths[r]} "
            f"({what}); expected each image once (an image in two splits leaks between them)"
        )
    return keep


def read_manifest(
    csv_path: str | Path,
    *,
    attrs: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
) -> dict[str, ImageDataset]:
    """Read a CSV manifest into ``{"train", "val"[, "test"]}`` :class:`ImageDataset` s.

    Args:
        csv_path: the manifest; ``path`` entries are relative to its folder.
        attrs: bias attribute columns (default: every column except path, label, split, group, index).
        class_names: class names in id order; needed for name labels to get a fixed order (default: sorted).
        val_fraction, test_fraction, seed: the seeded per-class split used when there is no ``split`` column.
        image_size: resize on decode (needed to cache images of mixed sizes).
        cache: keep decoded uint8 images in memory.

    Raises:
        DatasetNotFoundError: the CSV, or an image a row names, does not exist (the row is named).
        DatasetError: an empty or malformed CSV, a missing column, a bad label / split / attribute value (labels
            mixing class ids and names, a negative id), an image listed in two rows (an exact repeat of a row is
            dropped with a warning), or a class with no samples.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetNotFoundError(
            f"manifest {csv_path} does not exist; expected a CSV with columns path,label"
            "[,split][,<bias attributes>]"
        )
    where = f"manifest {csv_path}"
    df = read_csv_file(
        csv_path,
        MANIFEST_CONTENT,
        DatasetError,
        "manifest",
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
    )
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        seps = [sep for sep in (";", "\t", "|") if len(df.columns) == 1 and sep in df.columns[0]]
        hint = f" (the header is separated by {seps[0]!r}; a manifest is comma-separated)" if seps else ""
        raise DatasetError(
            f"{where}: lacks the column(s) {missing}; found {list(df.columns)}, expected path,label"
            f"[,split][,<bias attributes>]{hint}"
        )
    attr_names = list(attrs) if attrs is not None else [c for c in df.columns if c not in _RESERVED]
    for a in attr_names:
        if a not in df.columns or a in _RESERVED:
            raise DatasetError(
                f"{where}: bias attribute column {a!r} is not a usable column; found {list(df.columns)}"
            )
    if len(df) == 0:
        raise DatasetError(f"{where}: has a header but no rows")
    # labels: all integers, or all class names
    raw = df["label"].str.strip()
    if (raw == "").any():
        r = int(np.flatnonzero((raw == "").to_numpy())[0])
        raise DatasetError(f"{where}: row {r} (line {r + 2}) has an empty label; expected a class id or name")
    is_int = raw.str.fullmatch(r"[+-]?\d+").to_numpy()
    if is_int.any() and not is_int.all():
        a, b = int(np.argmax(is_int)), int(np.argmax(~is_int))
        raise DatasetError(
            f"{where}: labels mix class ids and class names: row {a} (line {a + 2}) has "
            f"{raw.iloc[a]!r}, row {b} (line {b + 2}) has {raw.iloc[b]!r}; labels must be all integers "
            "(class ids 0..n-1) or all class names"
        )
    if is_int.all():
        labels = raw.astype("int64").to_numpy()
        if (labels < 0).any():
            r = int(np.argmax(labels < 0))
            raise DatasetError(
                f"{where}: row {r} (line {r + 2}) label {labels[r]} is negative; expected a class id "
                ">= 0 (labels are all integers 0..n-1, or all class names)"
            )
        nc = len(class_names) if class_names is not None else int(labels.max()) + 1
        if labels.max() >= nc:
            r = int(np.argmax(labels >= nc))
            raise DatasetError(
                f"{where}: row {r} (line {r + 2}) label {labels[r]} is not below the {nc} class_names"
            )
        names = list(class_names) if class_names is not None else [str(c) for c in range(nc)]
    else:
        names = list(class_names) if class_names is not None else sorted(raw.unique().tolist())
        lookup = {n: i for i, n in enumerate(names)}
        unknown = ~raw.isin(list(lookup))
        if unknown.any():
            r = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DatasetError(
                f"{where}: row {r} (line {r + 2}) label {raw.iloc[r]!r} is not a class name; "
                f"expected one of {names}"
            )
        labels = raw.map(lookup).astype("int64").to_numpy()
    # paths
    base = csv_path.parent
    paths = [p if Path(p).is_absolute() else str(base / p) for p in df["path"].str.strip().tolist()]
    keep = _unique_images(df, paths, where)
    for r, p in enumerate(paths):
        if not Path(p).is_file():
            raise DatasetNotFoundError(
                f"{where}: row {r} (line {r + 2}) names the image {p}, which does not exist"
            )
    table = pd.DataFrame({"path": paths, "label": labels})
    table["index"] = (
        _int_column(df, "index", where, minimum=0) if "index" in df.columns else np.arange(len(df))
    )
    dup_index = table["index"].duplicated().to_numpy() & keep
    if dup_index.any():
        r = int(np.flatnonzero(dup_index)[0])
        a = int(np.flatnonzero((table["index"] == table["index"].iloc[r]).to_numpy())[0])
        raise DatasetError(
            f"{where}: rows {a} (line {a + 2}) and {r} (line {r + 2}) both have index "
            f"{table['index'].iloc[r]}; expected a unique dataset index per row"
        )
    has_group = "group" in df.columns
    if has_group:
        table["group"] = _int_column(df, "group", where, minimum=-1)
    for a in attr_names:
        table[a] = _int_column(df, a, where, minimum=-1)
    split_of = None
    if "split" in df.columns:
        split_of = df["split"].str.strip().str.lower().to_numpy()
        bad = ~np.isin(split_of, SPLITS)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{where}: row {r} (line {r + 2}) split {df['split'].iloc[r]!r}; expected train, val or test"
            )
    if not keep.all():  # exact duplicate rows (warned about): the first one stays, with its data-row index
        table, df = table[keep].reset_index(drop=True), df[keep].reset_index(drop=True)
        if split_of is not None:
            split_of = split_of[keep]
    return _finish(
        table,
        split_of,
        attr_names,
        names,
        where,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        image_size=image_size,
        cache=cache,
        has_group=has_group,
    )


def _images_under(d: Path, exts: set[str]) -> list[Path]:
    return sorted(
        (p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in exts),
        key=lambda p: p.relative_to(d).as_posix(),
    )


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
    class_names = sorted(p.name for p in layout.get("train", root).iterdir() if p.is_dir())
    if not class_names:
        raise DatasetNotFoundError(f"image folder {layout.get('train', root)} has no class folders; {tree}")
    lookup = {n: i for i, n in enumerate(class_names)}
    rows = []
    for s, d in layout.items():
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cdir.name not in lookup:
                raise DatasetError(
                    f"image folder {cdir}: class {cdir.name!r} is not a class of {d.parent}/train/ "
                    f"({', '.join(class_names)})"
                )
            rows += [(str(p), lookup[cdir.name], s) for p in _images_under(cdir, exts)]
    table = pd.DataFrame(rows, columns=["path", "label", "split"])
    table.insert(0, "index", np.arange(len(table), dtype=np.int64))
    split_of = table.pop("split").to_numpy() if split_dirs else None
    return _finish(
        table,
        split_of,
        [],
        class_names,
        f"image folder {root}",
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        image_size=image_size,
        cache=cache,
    )


class _UserDataModule(SebraDataModule):
    def __init__(self, cache: bool, val_fraction: float, test_fraction: float, seed: int, **base) -> None:
        super().__init__(seed=seed, **base)
        self.cache = cache
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed


class ImageFolderDataModule(_UserDataModule):
    """A class-per-folder tree (see :func:`read_image_folder`); no bias attributes, so no groups.

    Args:
        root: the tree's root.
        val_fraction, test_fraction, seed: the seeded split when ``root`` has no ``train/`` folder.
        cache: keep decoded uint8 images in memory.
        batch_size, eval_batch_size, num_workers, image_size, augment, pin_memory, mean, std: see
            :class:`SebraDataModule`; set ``image_size`` when images differ in size.
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        cache: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        image_size: int | None = None,
        augment: Augment = "none",
        pin_memory: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__(
            cache,
            val_fraction,
            test_fraction,
            seed,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            augment=augment,
            pin_memory=pin_memory,
            mean=mean,
            std=std,
        )
        self.root = root

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the tree (split folders, or the seeded split)."""
        return read_image_folder(
            self.root,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            image_size=self.image_size,
            cache=self.cache,
        )


class CSVDataModule(_UserDataModule):
    """A CSV manifest (see :func:`read_manifest`); bias attribute columns give evaluation groups.

    Args:
        csv_path: the manifest.
        attrs: bias attribute columns (default: all non-reserved columns).
        class_names: class names in id order.
        val_fraction, test_fraction, seed: the seeded split when the manifest has no ``split`` column.
        cache: keep decoded uint8 images in memory.
        batch_size, eval_batch_size, num_workers, image_size, augment, pin_memory, mean, std: see
            :class:`SebraDataModule`; set ``image_size`` when images differ in size.
    """

    def __init__(
        self,
        csv_path: str,
        attrs: list[str] | None = None,
        class_names: list[str] | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        seed: int = 0,
        cache: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        image_size: int | None = None,
        augment: Augment = "none",
        pin_memory: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__(
            cache,
            val_fraction,
            test_fraction,
            seed,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            augment=augment,
            pin_memory=pin_memory,
            mean=mean,
            std=std,
        )
        self.csv_path = csv_path
        self.attrs = attrs
        self.class_names = class_names

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the manifest (its ``split`` column, or the seeded split)."""
        return read_manifest(
            self.csv_path,
            attrs=self.attrs,
            class_names=self.class_names,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            image_size=self.image_size,
            cache=self.cache,
        )

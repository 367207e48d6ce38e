"""User data as a CSV manifest.

Columns (``read_manifest``): ``path,label`` plus optional ``split`` (``train`` / ``val`` / ``test``), ``group``,
``index`` and bias attribute columns (every other column, or the ones named in ``attrs``). Paths are relative to the
CSV's folder (absolute paths are kept). ``label`` is either an integer class id for every row or a class name for
every row (ids then follow ``class_names``, default: sorted names). Attribute values are integers, ``-1`` = unknown;
they are used for evaluation only. The dataset ``index`` is the 0-based data row, unique over all splits.

Without a ``split`` column, ``val`` (and ``test`` when ``test_fraction > 0``) are drawn per class by
:func:`~sebra.datasets.splits.seeded_split`, the same on every machine.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sebra.datasets.base import DatasetError, DatasetNotFoundError, ImageDataset
from sebra.datasets.splits import SPLITS, UserDataModule, split_table
from sebra.utils.files import read_csv_file

__all__ = ["MANIFEST_CONTENT", "CSVDataModule", "read_manifest"]

_RESERVED = ("path", "label", "split", "group", "index")


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
    # "0.0, 2.0, 10.0" (pandas' float output) are class ids too: any number with an integral value, never a name
    # (names would sort as strings: "10.0" before "2.0")
    num = pd.to_numeric(raw, errors="coerce")
    is_int = (num.notna() & np.isfinite(num) & (num == num.round())).to_numpy()
    if is_int.any() and not is_int.all():
        a, b = int(np.argmax(is_int)), int(np.argmax(~is_int))
        raise DatasetError(
            f"{where}: labels mix class ids and class names: row {a} (line {a + 2}) has "
            f"{raw.iloc[a]!r}, row {b} (line {b + 2}) has {raw.iloc[b]!r}; labels must be all integers "
            "(class ids 0..n-1) or all class names"
        )
    if is_int.all():
        labels = num.to_numpy().astype(np.int64)
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
        table = table[keep].reset_index(drop=True)
        if split_of is not None:
            split_of = split_of[keep]
    options = (val_fraction, test_fraction, seed, image_size, cache)
    return split_table(table, split_of, attr_names, names, where, *options, has_group=has_group)


class CSVDataModule(UserDataModule):
    """A CSV manifest (see :func:`read_manifest`); bias attribute columns give evaluation groups.

    Args:
        csv_path: the manifest; ``val_fraction``, ``test_fraction`` and ``seed`` split it when it has no ``split``
            column.
        attrs: bias attribute columns (default: all non-reserved columns).
        class_names: class names in id order.

    Other arguments: see :class:`~sebra.datasets.splits.UserDataModule`.
    """

    def __init__(
        self, csv_path: str, attrs: list[str] | None = None, class_names: list[str] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.csv_path = csv_path
        self.attrs = attrs
        self.class_names = class_names

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the manifest (its ``split`` column, or the seeded split)."""
        return read_manifest(
            self.csv_path, attrs=self.attrs, class_names=self.class_names, **self.split_options()
        )

"""BAR (Biased Action Recognition, Nam et al. 2020): the alinlab/BAR folders or IRMCon's ``dataset{ratio}.torch``.

Folders (alinlab/BAR)::

    <root>/train/<class>_<n>.jpg   1941 images
    <root>/test/<class>_<n>.jpg    654 images (numbering continues after train)

with classes, written exactly as in the file names, ``climbing, diving, fishing, pole vaulting, racing, throwing``
(class ids in that order). Two ``.jpg`` files hold PNG data, one in palette mode; :func:`decode_image` converts
them to RGB.

IRMCon file: ``torch.save({"train": [paths, labels], "test": [paths, labels], "label_info": ...})``, read with
``torch.load(weights_only=True)`` (no arbitrary unpickling). Its paths are relative to ``base_dir``, by default the
file's parent's parent: IRMCon keeps the file at ``data/BAR/dataset0.01.torch`` and opens ``./data/`` + path.
Integer labels come from the file; ``label_info`` (when it maps names to ids or ids to names) gives the names.

Validation: BAR has no validation split. ``val`` is a seeded random ``val_fraction`` of each class of train, 0.2 by
default as the paper states (80:20); the official Sebra code holds out 0.1 (``random.shuffle`` of all of train, not
per class), so set ``val_fraction=0.1`` to come close to it.
Samples keep their dataset ``index`` (position in the train list) in both parts.

Bias labels: none per sample, so ``attrs`` is empty, ``bias`` is ``None`` and ``group`` is ``-1``: the test split
as a whole is the bias-conflicting set and the metric is plain top-1 accuracy. ``group_by_class=True`` sets
``group = label`` instead, for per-class (worst-class) accuracy tables.

Dataset ``index``: the position in the split's list, unique within a split. In folders the list is ordered by
class id, then by the number ``n`` in the file name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import DatasetError, DatasetNotFoundError, ImageDataset, warn_hidden_skipped
from sebra.datasets.datamodule import SebraDataModule
from sebra.datasets.splits import check_every_class, seeded_split

__all__ = ["BAR_CLASSES", "BAR_COUNTS", "BARDataModule", "bar_splits", "read_bar", "read_bar_torch"]

BAR_CLASSES = ("climbing", "diving", "fishing", "pole vaulting", "racing", "throwing")

#: Published images per class in the alinlab/BAR folders.
BAR_COUNTS = {
    "train": dict(zip(BAR_CLASSES, (326, 520, 163, 279, 336, 317))),
    "test": dict(zip(BAR_CLASSES, (105, 159, 42, 131, 132, 85))),
}

_NAME = re.compile(r"^(.+)_(\d+)$")
_TREE = """expected:
  <root>/train/<class>_<n>.jpg   (e.g. climbing_0.jpg, pole vaulting_12.jpg)
  <root>/test/<class>_<n>.jpg
with <class> one of climbing, diving, fishing, pole vaulting, racing, throwing"""


def _dataset(
    table: pd.DataFrame, class_names, image_size, cache, group_by_class: bool, name: str
) -> ImageDataset:
    table["group"] = table["label"] if group_by_class else -1
    check_every_class(table["label"], len(class_names), name, class_names)
    return ImageDataset(
        table,
        image_size=image_size,
        cache=cache,
        num_classes=len(class_names),
        class_names=class_names,
        bias=None,
        name=name,
    )


def read_bar(
    root: str | Path,
    split: Literal["train", "test"],
    *,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
    group_by_class: bool = False,
) -> ImageDataset:
    """One split of the alinlab/BAR folders (``train`` or ``test``; ``val`` comes from :func:`bar_splits`).

    Raises:
        DatasetNotFoundError: missing root or split folder (the message shows the expected tree).
        DatasetError: a file not named ``<class>_<n>.jpg`` with a known class, or a class without images.
    """
    if split not in ("train", "test"):
        raise ValueError(f"BAR folder split must be train or test; got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"BAR root {root} does not exist; {_TREE}")
    d = root / split
    if not d.is_dir():
        raise DatasetNotFoundError(f"BAR: {d} does not exist; {_TREE}")
    lookup = {n: i for i, n in enumerate(BAR_CLASSES)}
    rows = []
    hidden = [p for p in d.iterdir() if p.name.startswith(".") and p.suffix.lower() == ".jpg"]
    warn_hidden_skipped(f"BAR {split}", hidden, d)
    for p in d.iterdir():
        if not p.is_file() or p.suffix.lower() != ".jpg" or p.name.startswith("."):
            continue
        m = _NAME.match(p.stem)
        if not m or m.group(1) not in lookup:
            raise DatasetError(
                f"BAR: file {p} is not named <class>_<n>.jpg with a class among {list(BAR_CLASSES)}"
            )
        rows.append((lookup[m.group(1)], int(m.group(2)), str(p)))
    rows.sort()
    table = pd.DataFrame(
        {
            "index": np.arange(len(rows), dtype=np.int64),
            "path": [r[2] for r in rows],
            "label": np.array([r[0] for r in rows], dtype=np.int64),
        }
    )
    return _dataset(table, list(BAR_CLASSES), image_size, cache, group_by_class, f"BAR {split} ({d})")


_WANT_FILE = (
    "IRMCon's torch.save({'train': [paths, labels], 'test': [paths, labels], 'label_info': ...}) file "
    "(data/BAR/dataset{ratio}.torch)"
)


def _check_torch_file(path: Path) -> None:
    """Refuse, naming the file, an empty file or one that is not a ``torch.save`` file (zip or legacy pickle)."""
    if path.stat().st_size == 0:
        raise DatasetError(f"BAR file {path} is empty (0 bytes); expected {_WANT_FILE}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise DatasetError(
            f"BAR file {path} is not a file written by torch.save (it starts with {head!r}); "
            f"expected {_WANT_FILE}"
        )


def _int_labels(raw, path: Path, split: str, num_classes: int, names: list[str]) -> np.ndarray:
    """The ``labels`` list of a split as int64, refusing (with the position) text, fractions and ids out of range."""
    expected = (
        f"expected integer class ids 0..{num_classes - 1} ({', '.join(names)}; a file with other classes "
        "names them in label_info)"
    )
    if isinstance(raw, torch.Tensor):
        values = raw.reshape(-1).tolist()
    elif isinstance(raw, (list, tuple)):
        values = list(raw)
    else:
        raise DatasetError(f"BAR file {path}: {split} labels are a {type(raw).__name__}; {expected}")
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not ok or (isinstance(v, (float, np.floating)) and not float(v).is_integer()):
            raise DatasetError(f"BAR file {path}: {split} label at position {i} is {v!r}; {expected}")
        if not 0 <= int(v) < num_classes:
            raise DatasetError(f"BAR file {path}: {split} label at position {i} is {int(v)}; {expected}")
        out[i] = int(v)
    return out


def _class_names(names: dict[int, str], num_classes: int) -> list[str]:
    """Names from IRMCon's ``label_info`` (as :func:`_info_names` reads it) when it names every class, else BAR's."""
    if sorted(names) == list(range(num_classes)):
        return [names[c] for c in range(num_classes)]
    if num_classes == len(BAR_CLASSES):
        return list(BAR_CLASSES)
    return [str(c) for c in range(num_classes)]


def _info_names(label_info) -> dict[int, str]:
    """``{class id: name}`` from IRMCon's ``label_info`` (a name->id or id->name mapping, or a list of names)."""
    names: dict[int, str] = {}
    if isinstance(label_info, dict):
        for k, v in label_info.items():
            if isinstance(k, str) and isinstance(v, int):
                names[v] = k
            elif isinstance(k, int) and isinstance(v, str):
                names[k] = v
    elif isinstance(label_info, (list, tuple)) and all(isinstance(v, str) for v in label_info):
        names = dict(enumerate(label_info))
    return names


def read_bar_torch(
    path: str | Path,
    split: Literal["train", "test"],
    *,
    base_dir: str | Path | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
    group_by_class: bool = False,
) -> ImageDataset:
    """One split of IRMCon's ``dataset{ratio}.torch``.

    Args:
        path: the ``.torch`` file.
        split: ``train`` or ``test``.
        base_dir: folder the stored image paths are relative to (default: ``path``'s parent's parent, i.e. the
            ``data/`` folder holding ``BAR/``). Absolute stored paths are used as they are.
        image_size, cache, group_by_class: as in :func:`read_bar`.

    Raises:
        DatasetNotFoundError: the file, or any image it lists (the first missing one is named), does not exist.
        DatasetError: the file is empty or not a ``torch.save`` file, not a dict with ``[paths, labels]`` per split,
            or a label is not an integer class id of BAR's 6 classes (or of the classes ``label_info`` names).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"BAR file {path} does not exist; expected IRMCon's data/BAR/dataset{{ratio}}.torch"
        )
    _check_torch_file(path)
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # weights_only refuses arbitrary objects; anything else is a corrupt file
        raise DatasetError(f"BAR file {path} cannot be read with torch.load(weights_only=True): {e}") from e
    want = "a dict with 'train' and 'test' entries, each [list of image paths, list of int labels]"
    if not isinstance(obj, dict) or split not in obj:
        raise DatasetError(f"BAR file {path}: has no {split!r} entry; expected {want}")
    entry = obj[split]
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and len(entry[0]) == len(entry[1])):
        raise DatasetError(
            f"BAR file {path}: entry {split!r} is not [paths, labels] of equal length; expected {want}"
        )
    bad = [i for i, p in enumerate(entry[0]) if not isinstance(p, str) or not p]
    if bad:
        raise DatasetError(
            f"BAR file {path}: {split} image path at position {bad[0]} is {entry[0][bad[0]]!r}; "
            "expected a file path (text)"
        )
    paths = [str(p) for p in entry[0]]
    info = _info_names(obj.get("label_info"))
    num_classes = len(info) if info and sorted(info) == list(range(len(info))) else len(BAR_CLASSES)
    names = _class_names(info, num_classes)
    labels = _int_labels(entry[1], path, split, num_classes, names)
    base = Path(base_dir) if base_dir is not None else path.parent.parent
    resolved = [p if Path(p).is_absolute() else str(base / p) for p in paths]
    missing = [p for p in resolved if not Path(p).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"BAR file {path}: {len(missing)} of {len(paths)} {split} images are missing, first {missing[0]} "
            f"(stored paths are resolved against base_dir={base}; set base_dir to the folder they are relative to)"
        )
    table = pd.DataFrame({"index": np.arange(len(paths), dtype=np.int64), "path": resolved, "label": labels})
    return _dataset(table, names, image_size, cache, group_by_class, f"BAR {split} ({path})")


def bar_splits(
    root: str | Path,
    *,
    torch_file: str | Path | None = None,
    base_dir: str | Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
    group_by_class: bool = False,
) -> dict[str, ImageDataset]:
    """BAR's train / val / test, with ``val`` a seeded random ``val_fraction`` of each class of train (dataset
    indices kept).

    Args:
        root: the alinlab/BAR folder (ignored when ``torch_file`` is given).
        torch_file: IRMCon's ``dataset{ratio}.torch`` to read instead of the folders.
        base_dir: see :func:`read_bar_torch`.
        val_fraction: share of train held out (paper 0.2; official code 0.1). 0 gives no val split.
        seed: seeds the split's ``torch.Generator``.
        image_size, cache, group_by_class: as in :func:`read_bar`.
    """
    kw = {"image_size": image_size, "cache": cache, "group_by_class": group_by_class}
    if torch_file is not None:
        train = read_bar_torch(torch_file, "train", base_dir=base_dir, **kw)
        test = read_bar_torch(torch_file, "test", base_dir=base_dir, **kw)
    else:
        train, test = read_bar(root, "train", **kw), read_bar(root, "test", **kw)
    if val_fraction <= 0:
        return {"train": train, "test": test}
    parts = seeded_split(len(train), val_fraction, seed, labels=train.labels.numpy())
    out = {"train": train.subset(parts["train"]), "val": train.subset(parts["val"]), "test": test}
    for s in ("train", "val"):
        counts = out[s].class_counts()
        if (counts == 0).any():
            c = int(torch.nonzero(counts == 0)[0])
            raise DatasetError(
                f"BAR: class {c} ({train.class_names[c]}) has no samples in {s} after the seeded "
                f"{1 - val_fraction:.0%}/{val_fraction:.0%} split (seed {seed}) of {train.name}"
            )
    return out


class BARDataModule(SebraDataModule):
    """BAR's splits: train minus a seeded validation share, val, and test (the bias-conflicting split).

    Args:
        root: the alinlab/BAR folder (``train/``, ``test/``); unused when ``torch_file`` is set.
        torch_file: IRMCon's ``dataset{ratio}.torch`` (the official Sebra code reads ``dataset0.01.torch``).
        base_dir: folder the ``.torch`` file's paths are relative to (default: the file's parent's parent).
        val_fraction: share of train held out for validation; paper 0.2 (default), official code 0.1.
        seed: seeds the validation split and the batch augmentation.
        group_by_class: ``group = label`` (per-class accuracy) instead of ``-1``.
        cache: keep decoded uint8 images in memory (set ``image_size``: BAR images differ in size).

    Other arguments: see :class:`SebraDataModule` (here ``batch_size`` 64 and ``image_size`` 224 by default).
    """

    def __init__(
        self,
        root: str | None = None,
        torch_file: str | None = None,
        base_dir: str | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        group_by_class: bool = False,
        cache: bool = True,
        batch_size: int = 64,
        image_size: int | None = 224,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, image_size=image_size, seed=seed, **kwargs)
        if root is None and torch_file is None:
            raise ValueError(
                "BARDataModule needs root (alinlab/BAR folders) or torch_file (IRMCon .torch file)"
            )
        self.root, self.torch_file, self.base_dir = root, torch_file, base_dir
        self.val_fraction, self.seed = val_fraction, seed
        self.group_by_class, self.cache = group_by_class, cache

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read train and test, then hold out the seeded validation share of train."""
        return bar_splits(
            self.root or ".",
            torch_file=self.torch_file,
            base_dir=self.base_dir,
            val_fraction=self.val_fraction,
            seed=self.seed,
            image_size=self.image_size,
            cache=self.cache,
            group_by_class=self.group_by_class,
        )

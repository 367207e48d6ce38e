"""UrbanCars (Whac-A-Mole, Li et al. 2023) read from the folders its generator writes.

Layout (``root`` is the folder holding ``urbancars/`` or that folder itself)::

    urbancars/
      bg-0.95_co_occur_obj-0.95/train/<8 group folders>/000.jpg ... 999.jpg 1000.jpg ...
      bg-0.5_co_occur_obj-0.5/val/<8 group folders>/
      bg-0.5_co_occur_obj-0.5/test/<8 group folders>/

Group folders are ``obj-{urban,country}_bg-{urban,country}_co_occur_obj-{urban,country}``; only ``*.jpg`` files are
images (the ``*_mask.png``, ``*_co_occur_obj_mask.png`` and ``*_bg_only.png`` siblings are ignored). A train folder
regenerated with other ratios (``bg-0.9_co_occur_obj-0.8``) is found by glob and its ratios become
``BiasSpec.train_ratios``.

Labels: 0 = urban, 1 = country for the object (the class), the background (``bg``) and the co-occurring object
(``coobj``); ``group = obj * 4 + bg * 2 + coobj``. The dataset ``index`` is the position in one fixed order per
split: group folders by group id, then files by their number (``999.jpg`` before ``1000.jpg``). Class 0 therefore
occupies the first contiguous block, as the official ranking evaluation assumes. Indices are unique within a split.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from sebra.datasets.base import (
    BiasSpec,
    DatasetError,
    DatasetNotFoundError,
    ImageDataset,
    warn_hidden_skipped,
)
from sebra.datasets.datamodule import SebraDataModule

__all__ = [
    "URBANCARS_CLASSES",
    "URBANCARS_GROUP_NAMES",
    "UrbanCarsDataModule",
    "read_urbancars",
    "urbancars_bias",
    "urbancars_counts",
    "urbancars_split_dir",
]

URBANCARS_CLASSES = ("urban", "country")
_NAMES = URBANCARS_CLASSES


def _group_name(g: int) -> str:
    return f"obj-{_NAMES[g >> 2]}_bg-{_NAMES[(g >> 1) & 1]}_co_occur_obj-{_NAMES[g & 1]}"


#: group id -> folder name, id = obj * 4 + bg * 2 + coobj.
URBANCARS_GROUP_NAMES: dict[int, str] = {g: _group_name(g) for g in range(8)}


def urbancars_counts(
    split: str, ratios: tuple[float, float] = (0.95, 0.95), per_class: int | None = None
) -> dict[int, int]:
    """Images per group folder the generator writes: ``per_class * p_bg * p_coobj``, where ``p`` is the ratio
    when the factor agrees with the object and ``1 - ratio`` otherwise (val and test always use 0.5 / 0.5).

    Defaults give the published sizes: train 3610 / 190 / 190 / 10 per class, val and test 125 per group.
    """
    if split != "train":
        ratios = (0.5, 0.5)
    n = per_class if per_class is not None else (4000 if split == "train" else 500)
    out = {}
    for g in range(8):
        obj, bg, co = g >> 2, (g >> 1) & 1, g & 1
        p_bg = ratios[0] if bg == obj else 1 - ratios[0]
        p_co = ratios[1] if co == obj else 1 - ratios[1]
        out[g] = math.floor(n * p_bg * p_co + 1e-9)  # truncated like the generator's int(), float-safe
    return out


_RATIO_DIR = re.compile(r"^bg-([0-9]*\.?[0-9]+)_co_occur_obj-([0-9]*\.?[0-9]+)$")

_TREE = """expected:
  <root>/urbancars/                      (or root = this urbancars/ folder itself)
    bg-0.95_co_occur_obj-0.95/train/obj-{urban,country}_bg-{urban,country}_co_occur_obj-{urban,country}/*.jpg
    bg-0.5_co_occur_obj-0.5/val/<same 8 folders>/*.jpg
    bg-0.5_co_occur_obj-0.5/test/<same 8 folders>/*.jpg"""

Split = Literal["train", "val", "test"]


def _base_dir(root: Path) -> Path:
    """The ``urbancars/`` folder: ``root/urbancars`` or ``root`` itself when it holds the ratio folders."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"UrbanCars root {root} does not exist; {_TREE}")
    if (root / "urbancars").is_dir():
        return root / "urbancars"
    if any(_RATIO_DIR.match(p.name) for p in root.iterdir() if p.is_dir()):
        return root
    raise DatasetNotFoundError(
        f"UrbanCars root {root} holds neither urbancars/ nor bg-*_co_occur_obj-* folders; {_TREE}"
    )


def urbancars_split_dir(
    root: str | Path, split: Split, train_dir: str | None = None
) -> tuple[Path, tuple[float, float]]:
    """Find a split's folder and the (bg, coobj) ratios its ratio folder is named after.

    Args:
        root: folder holding ``urbancars/``, or the ``urbancars/`` folder.
        split: ``train``, ``val`` or ``test``.
        train_dir: name of the ratio folder to read ``train`` from (e.g. ``bg-0.9_co_occur_obj-0.9``) when there
            are several; by default the only ``bg-*_co_occur_obj-*`` folder holding ``train/``.

    Raises:
        DatasetNotFoundError: no folder holds the split; the message shows the expected tree.
        DatasetError: several ratio folders hold ``train`` and ``train_dir`` does not pick one.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"UrbanCars split must be train, val or test; got {split!r}")
    base = _base_dir(Path(root))
    if split == "train" and train_dir is not None:
        cands = [base / train_dir]
        if not _RATIO_DIR.match(train_dir):
            raise DatasetError(
                f"UrbanCars: train_dir (--train-dir) {train_dir!r} is not a ratio folder name "
                "bg-<ratio>_co_occur_obj-<ratio>, e.g. bg-0.95_co_occur_obj-0.95"
            )
    elif split != "train" and (base / "bg-0.5_co_occur_obj-0.5" / split).is_dir():
        cands = [base / "bg-0.5_co_occur_obj-0.5"]
    else:
        cands = sorted(p for p in base.iterdir() if p.is_dir() and _RATIO_DIR.match(p.name))
    found = [p for p in cands if (p / split).is_dir()]
    if not found:
        raise DatasetNotFoundError(
            f"UrbanCars: no {split}/ folder under {base}/bg-*_co_occur_obj-*/; {_TREE}"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(
            f"UrbanCars: several ratio folders under {base} hold {split}/ ({names}); pick one with "
            f"--train-dir {found[0].name} (sebra data verify), --data.init_args.train_dir {found[0].name} "
            f"(sebra fit) or train_dir={found[0].name!r} (Python)"
        )
    m = _RATIO_DIR.match(found[0].name)
    return found[0] / split, (float(m.group(1)), float(m.group(2)))


def urbancars_bias(train_ratios: tuple[float, float] = (0.95, 0.95)) -> BiasSpec:
    """UrbanCars' bias attributes: background (the stronger shortcut) and co-occurring object, aligned when equal
    to the object's label (urban car on an urban background, with an urban co-object)."""
    return BiasSpec(
        attr_names=("bg", "coobj"),
        aligned_value=((0, 0), (1, 1)),
        train_ratios=tuple(float(r) for r in train_ratios),
        stronger=0,
        group_names=dict(URBANCARS_GROUP_NAMES),
    )


def _file_key(p: Path) -> tuple[int, int, str]:
    # 999.jpg before 1000.jpg: numeric stems by value, anything else after them by name.
    return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)


def _scan(split_dir: Path) -> pd.DataFrame:
    present = {p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    expected = set(URBANCARS_GROUP_NAMES.values())
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing:
        raise DatasetNotFoundError(
            f"UrbanCars: {split_dir} lacks the group folder(s) {', '.join(missing)}; expected the 8 folders "
            "obj-{urban,country}_bg-{urban,country}_co_occur_obj-{urban,country}"
        )
    if extra:
        raise DatasetError(
            f"UrbanCars: {split_dir} holds unexpected folder(s) {', '.join(extra)}; expected only the 8 folders "
            "obj-{urban,country}_bg-{urban,country}_co_occur_obj-{urban,country}"
        )
    rows = []
    hidden = [
        p for p in split_dir.rglob("*.jpg") if any(q.startswith(".") for q in p.relative_to(split_dir).parts)
    ]
    warn_hidden_skipped(f"UrbanCars {split_dir}", hidden, split_dir)
    for g, name in URBANCARS_GROUP_NAMES.items():
        files = sorted(
            (p for p in (split_dir / name).glob("*.jpg") if p.is_file() and not p.name.startswith(".")),
            key=_file_key,
        )
        rows += [(str(p), g >> 2, (g >> 1) & 1, g & 1, g) for p in files]
    table = pd.DataFrame(rows, columns=["path", "label", "bg", "coobj", "group"])
    table.insert(0, "index", range(len(table)))
    table = table.astype({c: "int64" for c in ("index", "label", "bg", "coobj", "group")})
    for c, cname in enumerate(URBANCARS_CLASSES):
        if not (table["label"] == c).any():
            raise DatasetError(
                f"UrbanCars: class {c} ({cname}) has no *.jpg image in {split_dir}/obj-{cname}_*; expected at least one"
            )
    return table


def read_urbancars(
    root: str | Path,
    split: Split,
    *,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
    bias: BiasSpec | None = None,
    train_dir: str | None = None,
) -> ImageDataset:
    """One UrbanCars split as an :class:`ImageDataset` (images decoded lazily, once, when ``cache``).

    Args:
        root: folder holding ``urbancars/``, or the ``urbancars/`` folder itself.
        split: ``train``, ``val`` or ``test``.
        image_size: resize on decode (the generator writes 256x256).
        cache: keep decoded uint8 images in memory.
        bias: overrides the default :func:`urbancars_bias`, whose train ratios come from the train ratio folder's
            name (0.95, 0.95 when there is no train folder).
        train_dir: which ratio folder holds ``train`` when there are several.

    Raises:
        DatasetNotFoundError: missing root, split or group folder.
        DatasetError: an unexpected group folder, or a class without images.
    """
    split_dir, ratios = urbancars_split_dir(root, split, train_dir)
    if bias is None:
        if split == "train":
            train_ratios = ratios
        else:
            try:
                train_ratios = urbancars_split_dir(root, "train", train_dir)[1]
            except DatasetNotFoundError:  # evaluation-only copy without train/: the published ratios
                train_ratios = (0.95, 0.95)
        bias = urbancars_bias(train_ratios)
    return ImageDataset(
        _scan(split_dir),
        image_size=image_size,
        cache=cache,
        num_classes=2,
        class_names=URBANCARS_CLASSES,
        bias=bias,
        name=f"UrbanCars {split} ({split_dir})",
    )


class UrbanCarsDataModule(SebraDataModule):
    """UrbanCars' train / val / test splits (8000 / 1000 / 1000 images at the generator's defaults).

    Args:
        root: folder holding ``urbancars/``, or the ``urbancars/`` folder itself.
        train_dir: ratio folder to take ``train`` from when there are several (default: the only one).
        cache: keep decoded uint8 images in memory (about 200 KB per 256 px image).

    Other arguments: see :class:`SebraDataModule`.
    """

    def __init__(self, root: str, train_dir: str | None = None, cache: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.train_dir = train_dir
        self.cache = cache

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the three splits; val and test share train's :class:`BiasSpec` (its ratios)."""
        kw = {"image_size": self.image_size, "cache": self.cache, "train_dir": self.train_dir}
        train = read_urbancars(self.root, "train", **kw)
        return {
            "train": train,
            **{s: read_urbancars(self.root, s, bias=train.bias, **kw) for s in ("val", "test")},
        }

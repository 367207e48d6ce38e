"""The built-in benchmark: a biased binary image task built from real animal silhouettes, shaped like UrbanCars.

Target: large animals (bear, cow, elephant, giraffe, horse; class 0) vs small animals (bird, cat, dog, sheep, zebra;
class 1) from ``animal-mnist`` — a grouping whose core task alone is learnable (calibration: ~96%).
Two spurious attributes are rendered into each image, each agreeing with the target in 95% of training samples:

* ``bg`` (attribute A, the stronger shortcut): a faint background tint, blue-ish for class 0, orange-ish for 1.
* ``coobj`` (attribute B, the weaker one): a small grey symbol in the top-left corner, a plus for class 0 and a ring
  for class 1 (shape only, so it takes more than colour to see).

Per class the training cells hold 3610 / 190 / 190 / 10 samples (both aligned / bg conflicting / coobj conflicting /
both conflicting) and val/test hold 125 per cell, exactly UrbanCars' sizes; together they use all 10,000 images once.
The data set is written in UrbanCars' folder layout (``urbancars/bg-0.95_co_occur_obj-0.95/train/obj-*_bg-*_co_occur_obj-*/
NNN.jpg``), so the UrbanCars reader serves it; class/attribute value 0 is named ``urban`` and 1 ``country`` there.
Everything is a deterministic function of the seed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from typing_extensions import override

from sebra.datasets.animal_mnist import ANIMAL_CLASSES
from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.datasets.datamodule import Augment
from sebra.datasets.urbancars import UrbanCarsDataModule, read_urbancars

__all__ = [
    "BUILTIN_BIAS",
    "BuiltinDataModule",
    "BuiltinSpec",
    "default_root",
    "ensure_builtin",
    "render_builtin",
    "write_builtin",
]

GROUPS_OF_ANIMALS = (
    ("bear", "cow", "elephant", "giraffe", "horse"),
    ("bird", "cat", "dog", "sheep", "zebra"),
)
CLASS_NAMES = ("large", "small")
FORMAT_VERSION = 1
NAMES = ("urban", "country")

#: The bias structure of the built-in benchmark (``bg`` is the stronger shortcut: measured, see BENCHMARKS.md).
BUILTIN_BIAS = BiasSpec(
    attr_names=("bg", "coobj"),
    aligned_value=((0, 0), (1, 1)),
    train_ratios=(0.95, 0.95),
    stronger=0,
)


@dataclass(frozen=True)
class BuiltinSpec:
    """What the generated data depends on (written next to the data; a mismatch triggers regeneration)."""

    seed: int = 0
    image_size: int = 32
    tint: float = 0.3  # background tint strength, fraction of the tint colour
    tint_jitter: float = 0.05  # per-image random variation of the tint colour
    symbol: float = 0.4  # symbol colour intensity (0..1)
    ratio: float = 0.95
    counts_train: tuple[int, int, int, int] = (
        3610,
        190,
        190,
        10,
    )  # aligned, bg conflict, coobj conflict, both
    per_cell_eval: int = 125
    version: int = FORMAT_VERSION


_TINTS = np.array([[0.25, 0.45, 1.0], [1.0, 0.55, 0.15]], dtype=np.float32)  # blue-ish, orange-ish


_SYMBOL_SIZE = 7
_SYMBOL_COLOURS = np.array([[0.3, 1.0, 0.3], [1.0, 0.3, 1.0]], dtype=np.float32)  # green plus, magenta ring


def _symbol(kind: int) -> np.ndarray:
    """Binary mask: 0 = plus, 1 = ring."""
    k = _SYMBOL_SIZE
    m = np.zeros((k, k), dtype=np.float32)
    if kind == 0:
        m[k // 2 - 1 : k // 2 + 2, :] = 1
        m[:, k // 2 - 1 : k // 2 + 2] = 1
    else:
        m[:2, :] = m[-2:, :] = m[:, :2] = m[:, -2:] = 1
    return m


def _cells(counts: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(n, bg_aligned, coobj_aligned) per cell, rarest cell first (the order images are assigned)."""
    aligned, bg_conf, co_conf, both = counts
    return [(both, 0, 0), (co_conf, 1, 0), (bg_conf, 0, 1), (aligned, 1, 1)]


def render_builtin(spec: BuiltinSpec = BuiltinSpec()) -> dict[str, dict[str, np.ndarray]]:
    """Render the benchmark in memory: the family's renderer with the built-in shortcuts (tint = A, symbol = B).

    Returns:
        ``{split: {"images": uint8 [N, S, S, 3], "label", "bg", "coobj", "animal": int64 [N]}}`` for train/val/test.
    """
    from sebra.datasets.family import (  # the family builds on this module
        Shortcut,
        VariantSpec,
        render_variant,
    )

    return render_variant(
        VariantSpec(
            "builtin",
            Shortcut("tint", spec.tint),
            Shortcut("symbol", spec.symbol),
            grouping="large_small",
            seed=spec.seed,
            image_size=spec.image_size,
            tint_jitter=spec.tint_jitter,
            ratio=spec.ratio,
            counts_train=spec.counts_train,
            per_cell_eval=spec.per_cell_eval,
        )
    )


def default_root() -> Path:
    """Where the benchmark is written unless told otherwise (``$SEBRA_DATA`` or ``~/.cache/sebra``)."""
    base = os.environ.get("SEBRA_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "sebra")
    return Path(base) / "builtin"


def _folder(label: int, bg: int, co: int) -> str:
    return f"obj-{NAMES[label]}_bg-{NAMES[bg]}_co_occur_obj-{NAMES[co]}"


def write_splits(tmp: Path, data: dict[str, dict[str, np.ndarray]], ratio: float) -> None:
    """Write rendered splits (:func:`render_builtin`'s layout) under ``tmp/urbancars/`` as UrbanCars' folders and
    JPEG files, with ``animals_<split>.csv`` beside them; shared by every generated benchmark."""
    ratio_dir = {
        "train": f"bg-{ratio}_co_occur_obj-{ratio}",
        "val": "bg-0.5_co_occur_obj-0.5",
        "test": "bg-0.5_co_occur_obj-0.5",
    }
    for split, d in data.items():
        base = tmp / "urbancars" / ratio_dir[split] / split
        for lab in (0, 1):
            for bg in (0, 1):
                for co in (0, 1):
                    (base / _folder(lab, bg, co)).mkdir(parents=True, exist_ok=True)
        counters: dict[str, int] = {}
        animals = []
        for img, lab, bg, co, an in zip(d["images"], d["label"], d["bg"], d["coobj"], d["animal"]):
            folder = _folder(int(lab), int(bg), int(co))
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
    what they were made from; everything is written into a temporary folder and renamed into place, so an
    interrupted run leaves nothing half-written. Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generated-", dir=root))
    try:
        write_splits(tmp, data, ratio)
        (tmp / meta_name).write_text(json.dumps(meta, indent=1))
        for p in tmp.iterdir():
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


def write_builtin(root: str | Path, spec: BuiltinSpec = BuiltinSpec()) -> Path:
    """Render and write the benchmark under ``root/urbancars/`` in UrbanCars' layout (atomically); returns ``root``."""
    return write_generated(root, render_builtin(spec), spec.ratio, "builtin.json", asdict(spec))


def ensure_builtin(root: str | Path | None = None, spec: BuiltinSpec = BuiltinSpec()) -> Path:
    """Write the benchmark under ``root`` unless the same spec is already there; returns ``root``."""
    root = Path(root) if root is not None else default_root()
    return root if is_generated(root, "builtin.json", asdict(spec)) else write_builtin(root, spec)


class BuiltinDataModule(UrbanCarsDataModule):
    """The built-in benchmark, generated on first use (a few seconds) and read back through the UrbanCars reader.

    Args:
        root: where to write it (default :func:`default_root`).
        data_seed: seed of the rendering (fixed across training seeds, like a published data set).
        tint, symbol: shortcut strengths (see :class:`BuiltinSpec`).
        batch_size, eval_batch_size, num_workers, image_size, augment, pin_memory: see :class:`SebraDataModule`.
        seed: seeds the batch augmentation (vary it with the training seed).
    """

    def __init__(
        self,
        root: str | None = None,
        data_seed: int = 0,
        tint: float = BuiltinSpec.tint,
        symbol: float = BuiltinSpec.symbol,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        image_size: int = 32,
        augment: Augment = "crop_flip",
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root=str(root) if root is not None else "",
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            augment=augment,
            pin_memory=pin_memory,
            seed=seed,
        )
        self.spec = BuiltinSpec(seed=data_seed, tint=tint, symbol=symbol)
        self.builtin_root = Path(root) if root is not None else None

    @override
    def prepare_data(self) -> None:
        ensure_builtin(self.builtin_root, self.spec)

    def build_splits(self) -> dict[str, ImageDataset]:
        """The train/val/test datasets of the generated benchmark."""
        self.root = str(ensure_builtin(self.builtin_root, self.spec))
        splits = {
            s: read_urbancars(self.root, s, image_size=self.image_size, cache=True, bias=BUILTIN_BIAS)
            for s in ("train", "val", "test")
        }
        for ds in splits.values():
            ds.class_names = list(CLASS_NAMES)
        return splits

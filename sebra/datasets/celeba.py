"""CelebA: the official partition with any target / bias attributes, and Echoes' multi-bias set that Sebra uses.

Files (``root`` holds ``celeba/`` as torchvision expects, or is that folder), either the official TXT files::

    celeba/img_align_celeba/000001.jpg ...           (a Kaggle-style nested img_align_celeba/img_align_celeba/ works)
    celeba/list_attr_celeba.txt       line 1: count; line 2: the 40 attribute names; rows "<file> <40 x -1|1>"
    celeba/list_eval_partition.txt    rows "<file> <0|1|2>" (train / valid / test)

or Kaggle's CSV variant (``list_attr_celeba.csv`` with header ``image_id,<40 attrs>`` and values -1/1;
``list_eval_partition.csv`` with header ``image_id,partition``). Values are mapped to 0/1 as torchvision does.
The dataset ``index`` is the 0-based row in the attribute file (``000001.jpg`` -> 0), unique and stable across
splits and protocols.

Protocols:

* ``official`` (:func:`read_celeba`): the official train / valid / test partition with a target and any bias
  attributes, e.g. ``Blond_Hair`` with ``("Male",)``. ``group = y * 2**K + sum_j a_j * 2**(K-1-j)`` over the raw 0/1
  values, so Blond/Male gives group_DRO's ``2 * y + a`` (0 non-blond female ... 3 blond male). The BiasSpec's aligned
  value per class is the majority value in the official train split.
* ``multibias`` (:func:`celeba_multibias_splits`): Echoes' ``gen_celeba.py`` construction, the set Sebra's paper
  uses (Smiling x Male x Young at 0.95 / 0.95). The official partition is ignored. For each class and each cell of
  the bias attributes the *first* matching file indices in file order fill train, then val, then test; no
  shuffling. Train holds ``train_per_class * prod(p_j)`` per cell, ``p_j`` = ratio when attribute j takes its aligned
  value for the class, else ``1 - ratio`` (3610 / 190 / 190 / 10 per class at 4000 and 0.95 / 0.95); val and test
  hold ``eval_per_class / 2**K`` per cell (125). A cell with too few images is filled as far as it goes, with a
  warning. Existing Echoes ``{train,val,test}_data.npy`` files (int ``[N, 4]``: CelebA index, target, biasA,
  biasB) are read instead when ``npy_dir`` is given; they are checked against the attribute file.

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

import hashlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sebra.datasets.base import BiasSpec, DatasetError, DatasetNotFoundError, ImageDataset
from sebra.datasets.datamodule import IMAGENET_MEAN, IMAGENET_STD, Augment, SebraDataModule
from sebra.datasets.folder import majority_bias_spec
from sebra.utils.files import read_csv_file

__all__ = [
    "CELEBA_ATTRS",
    "CELEBA_MD5",
    "CELEBA_PARTITION_COUNTS",
    "CelebADataModule",
    "CelebAMetadata",
    "celeba_multibias_splits",
    "load_celeba_metadata",
    "md5_mismatches",
    "multibias_alignment",
    "multibias_cell_counts",
    "multibias_indices",
    "read_celeba",
    "read_echoes_npy",
]

CELEBA_ATTRS = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)

#: MD5 of the official TXT files (what torchvision's integrity check expects).
CELEBA_MD5 = {
    "list_attr_celeba.txt": "75e246fa4810816ffd6ee81facbd244c",
    "identity_CelebA.txt": "32bd1bd63d3c78cd57e08160ec5ed1e2",
    "list_bbox_celeba.txt": "00566efa6fedff7a56946cd1c10f1c16",
    "list_landmarks_align_celeba.txt": "cc24ecafdb5b50baae59b03474781f8c",
    "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
}

#: Official partition sizes (train / valid / test).
CELEBA_PARTITION_COUNTS = {"train": 162770, "val": 19867, "test": 19962}

_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_TREE = """expected (torchvision layout, or Kaggle's CSV files in place of the TXT ones):
  <root>/celeba/img_align_celeba/000001.jpg ...   (or root = this celeba/ folder itself)
  <root>/celeba/list_attr_celeba.txt              (or list_attr_celeba.csv)
  <root>/celeba/list_eval_partition.txt           (or list_eval_partition.csv)"""

Alignment = Literal["echoes", "sebra"] | Sequence[Sequence[int]]


@dataclass(frozen=True)
class CelebAMetadata:
    """CelebA's attribute and partition files, parsed once and shared by every split.

    Attributes:
        folder: the ``celeba/`` folder.
        image_dir: the folder holding ``000001.jpg`` ...
        files: image file name per dataset index.
        attr_names: the 40 attribute names, in file order.
        attrs: uint8 ``[N, 40]`` in {0, 1} (file values -1 / 1 mapped by ``(x + 1) // 2``).
        partition: int8 ``[N]`` in {0, 1, 2} (train / valid / test).
        source: ``"txt"`` (official) or ``"csv"`` (Kaggle).
    """

    folder: Path
    image_dir: Path
    files: tuple[str, ...]
    attr_names: tuple[str, ...]
    attrs: np.ndarray
    partition: np.ndarray
    source: str

    def column(self, name: str) -> int:
        """Column of an attribute; an unknown name raises an error listing the valid ones."""
        if name not in self.attr_names:
            raise DatasetError(
                f"CelebA has no attribute {name!r}; valid names ({self.folder}): {', '.join(self.attr_names)}"
            )
        return self.attr_names.index(name)


def _folder(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetNotFoundError(f"CelebA root {root} does not exist; {_TREE}")
    for d in (root / "celeba", root):
        if any((d / f"list_attr_celeba.{ext}").is_file() for ext in ("txt", "csv")):
            return d
    raise DatasetNotFoundError(
        f"CelebA: neither {root}/celeba/ nor {root} holds list_attr_celeba.txt or .csv; {_TREE}"
    )


def _parse_values(
    tokens: list[str], allowed: tuple[int, ...], where: str, line: int, names: Sequence[str]
) -> list[int]:
    out = []
    for name, tok in zip(names, tokens):
        try:
            v = int(tok)
        except ValueError:
            v = None
        if v not in allowed:
            raise DatasetError(
                f"{where}: line {line}, {name} is {tok!r}; expected one of {', '.join(map(str, allowed))}"
            )
        out.append(v)
    return out


def _fast_rows(path: Path, skip: int, ncols: int, values: tuple[int, ...]) -> pd.DataFrame | None:
    """Whitespace-separated rows via pandas' C parser; ``None`` on any irregularity (the exact parser then names it)."""
    try:
        df = pd.read_csv(path, sep=r"\s+", skiprows=skip, header=None, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    if df.shape[1] != ncols or not all(np.issubdtype(t, np.integer) for t in df.dtypes.iloc[1:]):
        return None
    v = df.iloc[:, 1:].to_numpy()
    ok = (np.abs(v) == 1).all() if values == (-1, 1) else np.isin(v, values).all()
    return df if ok else None


def _read_attr_txt(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    where = f"CelebA attribute file {path}"
    with open(path) as f:
        head = [f.readline(), f.readline()]
    try:
        count = int(head[0].strip())
    except ValueError:
        raise DatasetError(f"{where}: line 1 is {head[0][:40]!r}; expected the number of images") from None
    names = head[1].split()
    if len(names) != 40:
        raise DatasetError(
            f"{where}: line 2 has {len(names)} attribute names; expected 40 ({', '.join(CELEBA_ATTRS[:3])}, ...)"
        )
    df = _fast_rows(path, 2, 41, (-1, 1))
    if df is not None and len(df) == count:
        return names, df.iloc[:, 0].astype(str).tolist(), (df.iloc[:, 1:].to_numpy() > 0).astype(np.uint8)
    lines = path.read_text().splitlines()
    rows = [ln for ln in lines[2:] if ln.strip()]
    if len(rows) != count:
        raise DatasetError(f"{where}: line 1 says {count} images but {len(rows)} rows follow")
    files, text_vals = [], []
    for i, ln in enumerate(rows):
        tok = ln.split()
        if len(tok) != 41:
            raise DatasetError(
                f"{where}: line {i + 3} has {len(tok) - 1} values; expected a file name and 40 values"
            )
        files.append(tok[0])
        text_vals.append(tok[1:])
    vals = _to_pm1(text_vals, names, where, first_line=3)
    return names, files, vals


def _to_pm1(text_vals: list[list[str]], names: Sequence[str], where: str, first_line: int) -> np.ndarray:
    """-1/1 text to uint8 0/1; the first bad value is named by line and attribute."""
    arr = np.array(text_vals, dtype=str) if text_vals else np.zeros((0, len(names)), dtype=str)
    ok = (arr == "1") | (arr == "-1")
    if not ok.all():
        r, k = (int(x[0]) for x in np.nonzero(~ok))
        _parse_values([str(arr[r, k])], (-1, 1), where, r + first_line, [names[k]])
    return (arr == "1").astype(np.uint8)


def _read_attr_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    where = f"CelebA attribute file {path}"
    df = read_csv_file(
        path,
        "a header image_id,<40 attribute names> and one row per image",
        DatasetError,
        "CelebA attribute file",
        dtype=str,
        keep_default_na=False,
    )
    cols = [c.strip() for c in df.columns]
    if not cols or cols[0] != "image_id":
        raise DatasetError(f"{where}: header starts with {cols[:1]}; expected image_id,<40 attribute names>")
    names = cols[1:]
    if len(names) != 40:
        raise DatasetError(f"{where}: header has {len(names)} attribute names; expected 40 after image_id")
    vals = _to_pm1(
        [[v.strip() for v in row] for row in df.iloc[:, 1:].itertuples(index=False, name=None)],
        names,
        where,
        first_line=2,
    )
    return names, df.iloc[:, 0].str.strip().tolist(), vals


def _read_partition(path: Path, files: list[str]) -> np.ndarray:
    where = f"CelebA partition file {path}"
    if path.suffix == ".csv":
        df = read_csv_file(
            path,
            "a header image_id,partition and one row per image",
            DatasetError,
            "CelebA partition file",
            dtype=str,
            keep_default_na=False,
        )
        cols = [c.strip() for c in df.columns]
        if cols != ["image_id", "partition"]:
            raise DatasetError(f"{where}: header is {','.join(cols)}; expected image_id,partition")
        pairs = [(a.strip(), b.strip()) for a, b in df.itertuples(index=False, name=None)]
        first = 2
    else:
        df = _fast_rows(path, 0, 2, (0, 1, 2))
        if df is not None and len(df) == len(files) and df.iloc[:, 0].astype(str).tolist() == list(files):
            return df.iloc[:, 1].to_numpy().astype(np.int8)
        pairs = []
        for i, ln in enumerate(path.read_text().splitlines()):
            if not ln.strip():
                continue
            tok = ln.split()
            if len(tok) != 2:
                raise DatasetError(f"{where}: line {i + 1} is {ln[:60]!r}; expected '<file> <0|1|2>'")
            pairs.append((tok[0], tok[1]))
        first = 1
    if len(pairs) != len(files):
        raise DatasetError(
            f"{where}: has {len(pairs)} rows; expected one per image of the attribute file ({len(files)})"
        )
    part = np.empty(len(pairs), dtype=np.int8)
    for i, (f, v) in enumerate(pairs):
        if f != files[i]:
            raise DatasetError(
                f"{where}: line {i + first} names {f}; expected {files[i]} (same order as the attributes)"
            )
        part[i] = _parse_values([v], (0, 1, 2), where, i + first, ["partition"])[0]
    return part


def load_celeba_metadata(root: str | Path) -> CelebAMetadata:
    """Parse CelebA's attribute and partition files (official TXT, else Kaggle CSV).

    Raises:
        DatasetNotFoundError: a missing root, file or image folder (the message shows the expected tree).
        DatasetError: a malformed header or row; the message names the file, line and field.
    """
    folder = _folder(Path(root))
    src = "txt" if (folder / "list_attr_celeba.txt").is_file() else "csv"
    part_path = folder / f"list_eval_partition.{src}"
    if not part_path.is_file():
        raise DatasetNotFoundError(f"CelebA: {part_path} does not exist; {_TREE}")
    image_dir = folder / "img_align_celeba"
    if (image_dir / "img_align_celeba").is_dir():  # Kaggle's archive nests the folder
        image_dir = image_dir / "img_align_celeba"
    if not image_dir.is_dir():
        raise DatasetNotFoundError(f"CelebA: image folder {image_dir} does not exist; {_TREE}")
    names, files, attrs = (_read_attr_txt if src == "txt" else _read_attr_csv)(
        folder / f"list_attr_celeba.{src}"
    )
    partition = _read_partition(part_path, files)
    return CelebAMetadata(folder, image_dir, tuple(files), tuple(names), attrs, partition, src)


def _meta(root_or_meta: str | Path | CelebAMetadata) -> CelebAMetadata:
    return root_or_meta if isinstance(root_or_meta, CelebAMetadata) else load_celeba_metadata(root_or_meta)


def _table(
    meta: CelebAMetadata,
    idx: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    biases: Sequence[str],
    group: np.ndarray,
) -> pd.DataFrame:
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
    return t


def _check_classes(t: pd.DataFrame, where: str) -> None:
    for c in (0, 1):
        if not (t["label"] == c).any():
            raise DatasetError(f"{where}: class {c} has no samples; every class needs at least one")


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
    t = _table(meta, idx, y, a, biases, group)
    name = f"CelebA {split} ({meta.folder}, target {target})"
    _check_classes(t, name)
    if bias is not None and not bias.group_names:
        gn = {}
        for g in range(2 ** (k + 1)):
            bits = [(g >> (k - j)) & 1 for j in range(k + 1)]
            gn[g] = "_".join(f"{n}={v}" for n, v in zip((target, *biases), bits))
        bias = BiasSpec(bias.attr_names, bias.aligned_value, bias.train_ratios, bias.stronger, gn)
    return ImageDataset(
        t,
        image_size=image_size,
        cache=cache,
        num_classes=2,
        class_names=[f"not {target}", target],
        bias=bias,
        name=name,
    )


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


def multibias_indices(
    root: str | Path | CelebAMetadata,
    *,
    target: str = "Smiling",
    biases: Sequence[str] = ("Male", "Young"),
    ratios: Sequence[float] = (0.95, 0.95),
    alignment: Alignment = "echoes",
    train_per_class: int = 4000,
    eval_per_class: int = 500,
) -> dict[str, np.ndarray]:
    """Echoes' multi-bias split as int ``[N, 2 + K]`` arrays ``[celeba index, target, bias_1 .. bias_K]``.

    Cells are filled with the first matching indices in file order (train, then val, then test), ignoring the
    official partition, exactly as Echoes' ``gen_celeba.py``. A short cell warns and is filled as far as it goes.
    """
    meta = _meta(root)
    if len(ratios) != len(biases):
        raise ValueError(f"ratios {tuple(ratios)} must give one ratio per bias attribute {tuple(biases)}")
    aligned = multibias_alignment(alignment, len(biases))
    y = meta.attrs[:, meta.column(target)].astype(np.int64)
    a = meta.attrs[:, [meta.column(b) for b in biases]].astype(np.int64)
    counts = multibias_cell_counts(ratios, train_per_class, eval_per_class)
    conf = a != np.asarray(aligned)[y]
    parts: dict[str, list[np.ndarray]] = {s: [] for s in ("train", "val", "test")}
    short = []
    for t in (0, 1):
        for ci, pattern in enumerate(_cells(len(biases))):
            match = np.flatnonzero((y == t) & (conf == np.asarray(pattern, dtype=bool)).all(axis=1))
            start, missing = 0, []
            for s in ("train", "val", "test"):
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


def read_echoes_npy(path: str | Path, num_images: int | None = None) -> np.ndarray:
    """Read and check one Echoes ``{split}_data.npy``: int ``[N, 4]`` (CelebA index, target, biasA, biasB).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DatasetError: wrong shape or dtype, a label outside {0, 1}, or an index outside the CelebA files.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Echoes split file {path} does not exist; expected <npy_dir>/{{train,val,test}}_data.npy"
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DatasetError(f"Echoes split file {path} cannot be read as a .npy array: {e}") from e
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(
            f"Echoes split file {path}: array of shape {arr.shape} and dtype {arr.dtype}; "
            "expected an integer array [N, 4] (celeba index, target, biasA, biasB)"
        )
    arr = arr.astype(np.int64)
    bad = ~np.isin(arr[:, 1:], (0, 1))
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        col = ("target", "biasA", "biasB", *(f"bias{j}" for j in range(3, arr.shape[1])))[c]
        raise DatasetError(
            f"Echoes split file {path}: row {r}, column {c + 1} ({col}) is {arr[r, c + 1]}; expected 0 or 1"
        )
    hi = num_images if num_images is not None else np.iinfo(np.int64).max
    out = (arr[:, 0] < 0) | (arr[:, 0] >= hi)
    if out.any():
        r = int(np.argmax(out))
        raise DatasetError(
            f"Echoes split file {path}: row {r}, column 0 (celeba index) is {arr[r, 0]}; expected 0..{hi - 1}"
        )
    return arr


def celeba_multibias_splits(
    root: str | Path | CelebAMetadata,
    *,
    target: str = "Smiling",
    biases: Sequence[str] = ("Male", "Young"),
    ratios: Sequence[float] = (0.95, 0.95),
    alignment: Alignment = "echoes",
    train_per_class: int = 4000,
    eval_per_class: int = 500,
    npy_dir: str | Path | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache: bool = True,
) -> dict[str, ImageDataset]:
    """Echoes' multi-bias CelebA (the ``multibias`` protocol) as train / val / test :class:`ImageDataset` s.

    Args:
        root: folder holding ``celeba/`` (or that folder), or metadata already loaded; the images come from it.
        target, biases: class attribute and bias attributes (Sebra: Smiling, (Male, Young)).
        ratios: train share aligned on each bias attribute (weights of the I.D. accuracy).
        alignment: which bias values are aligned per class (see the module docstring); default Echoes'.
        train_per_class, eval_per_class: generator sizes (4000; 500 = 125 per cell for 2 biases).
        npy_dir: read Echoes' ``{train,val,test}_data.npy`` from here instead of building the split.
        image_size, cache: as in :func:`read_celeba`.

    Raises:
        DatasetError: unknown attribute, a ``.npy`` row disagreeing with the attribute file, an alignment the
            ``.npy`` counts contradict, or a class without samples.
    """
    meta = _meta(root)
    aligned = multibias_alignment(alignment, len(biases))
    if npy_dir is not None:
        cols = [meta.column(n) for n in (target, *biases)]
        arrays = {}
        for s in ("train", "val", "test"):
            p = Path(npy_dir) / f"{s}_data.npy"
            arr = read_echoes_npy(p, len(meta.files))
            if arr.shape[1] != 2 + len(biases):
                raise DatasetError(
                    f"Echoes split file {p}: {arr.shape[1]} columns; expected {2 + len(biases)} "
                    f"(celeba index, {target}, {', '.join(biases)})"
                )
            ref = meta.attrs[arr[:, 0]][:, cols].astype(np.int64)
            diff = ref != arr[:, 1:]
            if diff.any():
                r, c = (int(x[0]) for x in np.nonzero(diff))
                raise DatasetError(
                    f"Echoes split file {p}: row {r} column {c + 1} ({(target, *biases)[c]}) is {arr[r, c + 1]} but "
                    f"{meta.files[arr[r, 0]]} has {ref[r, c]} in the attribute file; was it generated for another "
                    "target / bias attributes?"
                )
            arrays[s] = arr
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
        arrays = multibias_indices(
            meta,
            target=target,
            biases=biases,
            ratios=ratios,
            alignment=alignment,
            train_per_class=train_per_class,
            eval_per_class=eval_per_class,
        )
    k = len(biases)
    gn = {}
    for g in range(2 ** (k + 1)):
        t, conf = g >> k, [(g >> (k - 1 - j)) & 1 for j in range(k)]
        vals = [v ^ c for v, c in zip(aligned[t], conf)]
        tag = "".join("u" if c else "c" for c in conf)
        gn[g] = f"{target}={t}_" + "_".join(f"{b}={v}" for b, v in zip(biases, vals)) + f" ({tag})"
    bias = BiasSpec(tuple(biases), aligned, tuple(float(r) for r in ratios), 0, gn)
    out = {}
    for s, arr in arrays.items():
        y, a = arr[:, 1], arr[:, 2:]
        t = _table(meta, arr[:, 0], y, a, biases, _group_of(y, a, aligned))
        name = f"CelebA multi-bias {s} ({target} x {', '.join(biases)})"
        _check_classes(t, name)
        out[s] = ImageDataset(
            t,
            image_size=image_size,
            cache=cache,
            num_classes=2,
            class_names=[f"not {target}", target],
            bias=bias,
            name=name,
        )
    return out


def md5_mismatches(root: str | Path) -> list[str]:
    """Official TXT files whose MD5 differs from the published one (missing files are listed too)."""
    folder = _folder(Path(root))
    bad = []
    for name, md5 in CELEBA_MD5.items():
        p = folder / name
        if not p.is_file():
            bad.append(f"{name} (missing)")
            continue
        h = hashlib.md5()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != md5:
            bad.append(f"{name} (md5 {h.hexdigest()}, published {md5})")
    return bad


class CelebADataModule(SebraDataModule):
    """CelebA under the ``multibias`` (Echoes / Sebra) or ``official`` (partition, e.g. Blond vs Male) protocol.

    Args:
        root: folder holding ``celeba/`` (or that folder).
        protocol: ``multibias`` (Echoes' construction) or ``official`` (the official partition).
        target: class attribute.
        biases: bias attribute names (evaluation only).
        ratios: multibias: train share aligned on each bias.
        alignment: multibias: ``echoes`` (default), ``sebra`` or explicit per-class aligned values.
        train_per_class, eval_per_class: multibias generator sizes.
        npy_dir: multibias: read Echoes' ``{train,val,test}_data.npy`` instead of building the split.
        cache: keep decoded uint8 images in memory.
        batch_size, eval_batch_size, num_workers, image_size, augment, pin_memory, mean, std: see
            :class:`SebraDataModule`.
    """

    def __init__(
        self,
        root: str,
        protocol: Literal["multibias", "official"] = "multibias",
        target: str = "Smiling",
        biases: list[str] | None = None,
        ratios: list[float] | None = None,
        alignment: str | list[list[int]] = "echoes",
        train_per_class: int = 4000,
        eval_per_class: int = 500,
        npy_dir: str | None = None,
        cache: bool = True,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        image_size: int | None = 224,
        augment: Augment = "none",
        pin_memory: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        batch_augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size,
            eval_batch_size,
            num_workers,
            image_size,
            augment,
            pin_memory,
            mean,
            std,
            batch_augment,
            seed,
        )
        if protocol not in ("multibias", "official"):
            raise ValueError(f"protocol must be 'multibias' or 'official'; got {protocol!r}")
        self.root = root
        self.protocol = protocol
        self.target = target
        self.biases = (
            tuple(biases)
            if biases is not None
            else (("Male", "Young") if protocol == "multibias" else ("Male",))
        )
        self.ratios = tuple(ratios) if ratios is not None else (0.95,) * len(self.biases)
        self.alignment = alignment
        self.train_per_class = train_per_class
        self.eval_per_class = eval_per_class
        self.npy_dir = npy_dir
        self.cache = cache

    def build_splits(self) -> dict[str, ImageDataset]:
        """Parse the attribute files once and build the three splits of the chosen protocol."""
        meta = load_celeba_metadata(self.root)
        if self.protocol == "official":
            return {
                s: read_celeba(
                    meta,
                    s,
                    target=self.target,
                    biases=self.biases,
                    image_size=self.image_size,
                    cache=self.cache,
                )
                for s in ("train", "val", "test")
            }
        return celeba_multibias_splits(
            meta,
            target=self.target,
            biases=self.biases,
            ratios=self.ratios,
            alignment=self.alignment,
            train_per_class=self.train_per_class,
            eval_per_class=self.eval_per_class,
            npy_dir=self.npy_dir,
            image_size=self.image_size,
            cache=self.cache,
        )

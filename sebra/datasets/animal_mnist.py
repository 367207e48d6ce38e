"""Read the ``animal-mnist`` images (10,000 real 28x28 animal silhouettes, MIT) without TensorFlow.

The package ships two gzipped pickles of numpy arrays. Its own loader imports TensorFlow, so we read the files
ourselves with an unpickler that admits only numpy's array-reconstruction classes (no arbitrary code on load).
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np

__all__ = ["ANIMAL_CLASSES", "INSTALL_HINT", "load_animal_mnist"]

ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
INSTALL_HINT = "pip install --no-deps animal-mnist==0.4"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"animal-mnist data refers to {module}.{name}; only numpy arrays are allowed"
            )
        if name == "_reconstruct":
            from numpy._core import multiarray

            return multiarray._reconstruct
        return getattr(np, name)


def _data_dir() -> Path:
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the built-in benchmark needs the animal-mnist images; install them (without their TensorFlow "
            f"dependency) with:\n    {INSTALL_HINT}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 [10000, 28, 28], labels int64 [10000])``; label ids index :data:`ANIMAL_CLASSES`."""
    d = _data_dir()
    out = []
    for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        path = d / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; reinstall the images with:\n    {INSTALL_HINT}")
        with gzip.open(path, "rb") as f:
            out.append(_NumpyOnlyUnpickler(f).load())
    images, labels = out
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise ValueError(
            f"{d}: expected 10000 28x28 images and labels, got {images.shape} and {labels.shape}"
        )
    return images.astype(np.uint8), labels.astype(np.int64)

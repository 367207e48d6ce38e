"""Fixtures the dataset test modules share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import celeba_attrs, make_celeba


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    attrs = celeba_attrs()
    n = len(attrs)
    part = np.array([0] * (n - 24) + [1] * 12 + [2] * 12)
    part[[0, 1, n - 20, n - 19, n - 5, n - 4]] = (0, 0, 1, 1, 2, 2)
    root = make_celeba(tmp_path_factory.mktemp("celeba"), attrs, part)
    return root, attrs, part

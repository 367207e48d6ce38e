"""Fixtures of the inspection tests: the synthetic ranked set of ``ranked_fixtures``, in memory and as files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ranked_fixtures import CLASS_NAMES, make_ranked, write_pngs

from sebra.datasets.base import ImageDataset


@pytest.fixture
def ranked() -> tuple[ImageDataset, pd.DataFrame]:
    return make_ranked()


@pytest.fixture
def ranked_files(tmp_path: Path, ranked) -> tuple[ImageDataset, pd.DataFrame]:
    """The same set with its images as PNG files: a file-based dataset and rankings with a ``path`` column."""
    ds, rk = ranked
    paths = write_pngs(ds, tmp_path / "images")
    table = ds.table.assign(path=paths)
    fds = ImageDataset(table, cache=False, class_names=CLASS_NAMES, bias=ds.bias, name="synthetic-files")
    rk = rk.merge(table[["index", "path"]], on="index", how="left", validate="one_to_one")
    return fds, rk

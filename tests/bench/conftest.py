"""The toy config, written to a file and loaded as ``sebra bench`` would."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sebra.bench.config import load_config

from .helpers import CONFIG


@pytest.fixture
def cfg(tmp_path: Path) -> dict:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return load_config(path)

"""``benchmarks/stage2_spread.py``: a run folder without a ranking table is named, before anything trains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "stage2_spread.py"


def _load():
    spec = importlib.util.spec_from_file_location("stage2_spread", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_folder_without_rankings_is_named_and_nothing_is_fitted(tmp_path: Path) -> None:
    run = tmp_path / "sebra" / "seed0"
    run.mkdir(parents=True)
    out = tmp_path / "out"
    with pytest.raises(
        SystemExit, match=r"seed0/rankings.csv: no rankings.csv \(expected a finished Stage 1 run"
    ):
        _load().main(["--variant", "builtin", "--runs", str(run), "--seeds", "1", "--out-dir", str(out)])
    assert not out.exists()


def test_stage2_settings_are_read_as_yaml_and_a_malformed_one_is_named() -> None:
    spread = _load()
    assert spread._settings(["lr_schedule=cosine", "epochs=16", "lr=1e-4"]) == {
        "lr_schedule": "cosine",
        "epochs": 16,
        "lr": 1e-4,
    }
    with pytest.raises(SystemExit, match=r"--set 'epochs': expected KEY=VALUE"):
        spread._settings(["epochs"])

"""benchmarks/merge_cmnist_choice.py: the chosen Sebra rows become ``sebra*``, the previous ones keep a new name."""

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "merge_cmnist_choice.py"
COLUMNS = ["ratio", "method", "seed", "metric", "value"]


def _write(path: Path, rows: list[tuple]) -> Path:
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return path


def _run(*args: str) -> None:
    argv = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = argv


def test_the_choice_replaces_sebra_and_keeps_the_old_rows_renamed(tmp_path: Path) -> None:
    base = _write(
        tmp_path / "base.csv",
        [
            (0.005, "erm", 0, "unbiased_acc", 54.0),
            (0.005, "sebra", 0, "unbiased_acc", 53.0),
            (0.005, "sebra_val_acc", 0, "unbiased_acc", 52.0),
        ],
    )
    chosen = _write(
        tmp_path / "c1.csv",
        [(0.005, "sebra", 0, "unbiased_acc", 59.0), (0.005, "sebra_val_wga", 0, "unbiased_acc", 60.0)],
    )
    _run(str(chosen), "--base", str(base), "--old-name", "sebra_bins10")
    out = pd.read_csv(base).set_index("method")["value"].to_dict()
    assert out == {
        "erm": 54.0,
        "sebra_bins10": 53.0,
        "sebra_bins10_val_acc": 52.0,
        "sebra": 59.0,
        "sebra_val_wga": 60.0,
    }
    with pytest.raises(ValueError, match="already holds sebra_bins10 rows"):  # a second merge would lose rows
        _run(str(chosen), "--base", str(base), "--old-name", "sebra_bins10")
    assert len(pd.read_csv(base)) == 5  # refused before writing

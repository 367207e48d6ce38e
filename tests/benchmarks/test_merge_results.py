"""benchmarks/merge_results.py: joining parallel sweeps, and replacing a re-run method's rows with --base."""

import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "merge_results.py"


def _write(path: Path, rows: list[tuple[str, int, str, float]]) -> Path:
    pd.DataFrame(rows, columns=["method", "seed", "metric", "value"]).to_csv(path, index=False)
    return path


@dataclass
class _Result:
    returncode: int
    stderr: str


def _run(*args: str) -> _Result:
    """The script in this process (a subprocess would pay the torch import again)."""
    argv = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as e:  # the script's refusal: a message, no file
        return _Result(1 if e.code else 0, str(e.code))
    finally:
        sys.argv = argv
    return _Result(0, "")


def test_base_rows_of_rerun_methods_are_replaced(tmp_path: Path) -> None:
    base = _write(
        tmp_path / "base.csv",
        [
            ("erm", 0, "worst_group_acc", 10.0),
            ("sebra", 0, "worst_group_acc", 12.0),
            ("sebra", 0, "kendall_tau_b", 0.7),
            ("sebra", 1, "worst_group_acc", 13.0),
        ],
    )
    new = _write(
        tmp_path / "lane_sebra.csv", [("sebra", 0, "worst_group_acc", 60.0), ("sebra", 0, "seconds", 9.0)]
    )
    out = tmp_path / "merged.csv"
    res = _run(str(new), "--base", str(base), "--out", str(out))
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out)
    got = {(m, s, k): v for m, s, k, v in df.itertuples(index=False)}
    # seed 0 of sebra was re-run: all its old rows go (the old tau too), the new ones come in
    assert got == {
        ("erm", 0, "worst_group_acc"): 10.0,
        ("sebra", 0, "worst_group_acc"): 60.0,
        ("sebra", 0, "seconds"): 9.0,
        ("sebra", 1, "worst_group_acc"): 13.0,
    }
    assert (tmp_path / "ranking_merged.csv").exists()


def test_two_files_reporting_the_same_run_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", [("erm", 0, "worst_group_acc", 10.0)])
    b = _write(tmp_path / "b.csv", [("erm", 0, "worst_group_acc", 11.0)])
    res = _run(str(a), str(b), "--out", str(tmp_path / "m.csv"))
    assert res.returncode != 0
    assert "erm seed 0 worst_group_acc is reported by two files" in res.stderr
    assert not (tmp_path / "m.csv").exists()


@pytest.mark.parametrize("with_base", [False, True])
def test_disjoint_files_are_joined(tmp_path: Path, with_base: bool) -> None:
    a = _write(tmp_path / "a.csv", [("erm", 0, "worst_group_acc", 10.0)])
    b = _write(tmp_path / "b.csv", [("jtt", 0, "worst_group_acc", 50.0)])
    extra = (
        ["--base", str(_write(tmp_path / "base.csv", [("oracle", 0, "worst_group_acc", 80.0)]))]
        if with_base
        else []
    )
    res = _run(str(a), str(b), "--out", str(tmp_path / "m.csv"), *extra)
    assert res.returncode == 0, res.stderr
    assert set(pd.read_csv(tmp_path / "m.csv")["method"]) == {"erm", "jtt"} | (
        {"oracle"} if with_base else set()
    )

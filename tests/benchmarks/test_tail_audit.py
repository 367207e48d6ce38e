"""benchmarks/tail_audit.py: bin make-up by true group, and the last bin beside each run's worst-group."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tail_audit.py"
ns = runpy.run_path(str(SCRIPT))
bin_composition, worst_group_of, outcome_table = (
    ns["bin_composition"],
    ns["worst_group_of"],
    ns["outcome_table"],
)


def test_bin_composition_counts_each_kind_of_conflict_per_bin() -> None:
    # one class of 4, two bins: the front bin aligned, the last one A-only and B-only
    table = pd.DataFrame(
        {"index": range(4), "label": [0] * 4, "position": [1, 2, 3, 4], "a": [0, 0, 1, 0], "b": [0, 0, 0, 1]}
    )
    comp = bin_composition(table, ("a", "b"), bins=2)
    assert comp.loc[1, "aligned"] == 100.0
    assert comp.loc[2, "A only"] == 50.0 and comp.loc[2, "B only"] == 50.0 and comp.loc[2, "both"] == 0.0


def test_the_first_results_file_with_the_run_wins_and_a_missing_run_is_none() -> None:
    def rows(value: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "variant": ["v"],
                "method": ["sebra"],
                "seed": [0],
                "metric": ["worst_group_acc"],
                "value": [value],
            }
        )

    rerun, first = rows(49.6), rows(28.0)
    assert worst_group_of([rerun, first], "v", "sebra", 0) == 49.6
    assert worst_group_of([first, rerun], "v", "sebra", 0) == 28.0
    assert worst_group_of([first], "v", "sebra", 1) is None


def test_outcome_table_correlates_each_share_with_worst_group_over_the_runs_that_have_one() -> None:
    rows = [
        {"run": "s0", "worst_group": 30.0, "A only": 40.0, "B only": 5.0},
        {"run": "s1", "worst_group": 50.0, "A only": 30.0, "B only": 10.0},
        {"run": "s2", "worst_group": 70.0, "A only": 20.0, "B only": 20.0},
        {"run": "s3", "worst_group": None, "A only": 0.0, "B only": 99.0},  # no results row: left out
    ]
    table, corr = outcome_table(rows)
    assert table["smaller"].tolist() == [5.0, 10.0, 20.0, 0.0]
    assert corr["B only"] == pytest.approx(1.0) and corr["A only"] == pytest.approx(-1.0)
    assert corr["smaller"] == pytest.approx(1.0)

"""benchmarks/tail_audit.py: bin make-up by true group, and the last bin beside each run's worst-group."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tail_audit.py"
ns = runpy.run_path(str(SCRIPT))
bin_composition, worst_group_of, outcome_table, look_separation = (
    ns["bin_composition"],
    ns["worst_group_of"],
    ns["outcome_table"],
    ns["look_separation"],
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


def test_look_separation_scores_the_look_against_the_true_groups_of_the_first_wave() -> None:
    # class 0, first wave of 6: 4 aligned, 2 B-only; a later-wave A-only sample is left out of the scores
    table = pd.DataFrame(
        {"index": range(7), "label": [0] * 7, "a": [0] * 6 + [1], "b": [0, 0, 0, 0, 1, 1, 0]}
    )
    look = pd.DataFrame(
        {
            "index": range(7),
            "label": [0] * 7,
            "first_wave": [True] * 6 + [False],
            "look_p_y": [0.9, 0.8, 0.3, 0.95, 0.2, 0.6, 0.1],
        }
    )
    look["moved"] = look["first_wave"] & (look["look_p_y"] < 0.5)
    sep = look_separation(look, table, ("a", "b"))
    # B-only p_y 0.2, 0.6 against aligned 0.9, 0.8, 0.3, 0.95: 0.2 beats all 4, 0.6 beats 3 of 4 -> AUC 7/8
    assert sep["B only AUC"] == pytest.approx(7 / 8)
    assert sep["moved"] == 2 and sep["B only recall"] == 0.5 and sep["B only precision"] == 0.5
    assert (
        sep["A only n"] == 0 and sep["A only recall"] != sep["A only recall"]
    )  # none in the first wave: NaN
    with pytest.raises(pd.errors.MergeError):  # a duplicated index is refused, not silently joined twice
        look_separation(pd.concat([look, look.iloc[:1]]), table, ("a", "b"))

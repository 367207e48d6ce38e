"""benchmarks/colored_mnist_deciles.py: the least spurious tenth's conflicting share and recall, by hand."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "colored_mnist_deciles.py"
decile_scores = runpy.run_path(str(SCRIPT))["decile_scores"]


def test_decile_scores_count_the_conflicting_samples_of_each_class_tail() -> None:
    # two classes of 10: class 0's last sample (its tail) conflicts, and one conflicting sample sits at the front;
    # class 1's tail is aligned and its one conflicting sample is at the front
    table = pd.DataFrame(
        {"index": range(20), "label": [0] * 10 + [1] * 10, "position": list(range(1, 11)) * 2}
    )
    conflicting = pd.Series([True] + [False] * 8 + [True] + [True] + [False] * 9, index=range(20))
    got = decile_scores(table, conflicting)
    assert got["decile_conflicting_share"] == pytest.approx((1.0 + 0.0) / 2)
    assert got["decile_recall"] == pytest.approx((0.5 + 0.0) / 2)

"""The label-free one-shortcut check: fires when the first run's order within its first wave disagrees with a
balanced run's, stays silent when they agree, and says when it cannot check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sebra.diagnostics import partition_check, summary_line
from sebra.ranking import order_table


def _table(p_y: np.ndarray, rank: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return order_table(
        pd.DataFrame({"index": np.arange(len(p_y)), "label": labels, "rank": rank, "p_y": p_y})
    )


def _runs(agree: bool, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two classes of 200; the first run's first wave holds 180 of each. ``hidden`` is what the balanced run sees."""
    rng = np.random.default_rng(seed)
    n = 400
    labels = np.repeat([0, 1], 200)
    rank = np.where(np.tile(np.arange(200), 2) < 180, 1, 2)
    hidden = rng.normal(size=n)
    first_p = 0.9 + 0.05 * np.tanh(hidden if agree else rng.normal(size=n))
    probe_rank = np.where(hidden < -1.0, 2, 1)  # low alignment leaves later
    return _table(first_p, rank, labels), _table(0.8 + 0.1 * np.tanh(hidden), probe_rank, labels)


def test_fires_when_the_balanced_run_reorders_the_first_wave():
    first, probe = _runs(agree=False)
    check = partition_check(first, probe)
    assert check.fired and check.status == "partition"
    assert check.first_wave_share == pytest.approx([0.9, 0.9])
    assert max(check.agreement) < 0.2
    line = summary_line(check)
    assert line.startswith("warning: ") and "one shortcut only" in line and "rank_repeats" in line
    assert check.to_dict()["fired"] is True


def test_silent_when_the_runs_agree_within_the_wave():
    first, probe = _runs(agree=True)
    check = partition_check(first, probe)
    assert not check.fired and check.status == "graded"
    assert min(check.agreement) > 0.5
    assert not summary_line(check).startswith("warning")


def test_small_first_waves_are_not_candidates():
    first, probe = _runs(agree=False)
    check = partition_check(first, probe, min_share=0.95)  # the waves hold 90% of their class
    assert check.status == "graded" and check.worst_class is None


def test_without_a_balanced_run_it_says_it_did_not_check():
    first, _ = _runs(agree=False)
    check = partition_check(first, None)
    assert check.status == "unchecked" and not check.fired
    assert "repeat_draws='balanced'" in check.message
    assert check.to_dict()["agreement"] == [None, None]

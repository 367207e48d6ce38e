"""Tables of family.csv: the held-out summary is the mean of per-variant means; no issue's targets in the package."""

from __future__ import annotations

import pandas as pd
import pytest

from sebra.bench.family import FAMILY_COLUMNS
from sebra.bench.family_tables import heldout_summary, markdown_family


def _fam_rows() -> pd.DataFrame:
    rows = []
    # two held-out variants, unequal seed counts; one dev variant that must not enter the summary
    spec = {
        ("h1", "heldout"): {"erm": [10, 20], "jtt": [40, 50, 60], "sebra": [60, 64, 62], "oracle": [80, 80]},
        ("h2", "heldout"): {"erm": [30], "jtt": [50], "sebra": [70], "oracle": [90]},
        ("d", "dev"): {"erm": [0], "sebra": [100]},
    }
    for (v, role), methods in spec.items():
        for m, vals in methods.items():
            for seed, x in enumerate(vals):
                for metric, val in {
                    "worst_group_acc": x,
                    "avg_acc": 80.0,
                    "id_acc": 95.0,
                    "gap_a": -5.0,
                    "gap_b": -5.0 if m != "sebra" else -9.0,
                    "gap_both": -20.0,
                }.items():
                    rows.append((v, role, m, seed, metric, val))
        rows += [
            (v, role, "sebra", 0, "kendall_tau_b_3", 0.8),
            (v, role, "erm_conf_same_budget", 0, "kendall_tau_b_3", 0.7),
        ]
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))


def test_heldout_summary_is_the_mean_of_variant_means_and_targets_are_checked() -> None:
    fam = _fam_rows()
    s = heldout_summary(fam).set_index(["method", "metric"])
    assert s.loc[("erm", "worst_group_acc"), "mean"] == pytest.approx(
        (15 + 30) / 2
    )  # not the mean of 3 seeds
    assert s.loc[("sebra", "worst_group_acc"), "mean"] == pytest.approx((62 + 70) / 2)
    assert s.loc[("sebra", "worst_group_acc"), "variants"] == 2
    md = markdown_family(fam)
    assert "Held-out summary" in md and "*h1* (heldout)" in md and "*d* (dev)" in md
    assert (
        "Target (held-out)" not in md
    )  # the targets are the benchmark script's (benchmarks/family_targets.py)
    calls = []
    md = markdown_family(fam, targets=lambda f, m, r: calls.append((m, r)) or [("a target", "1 vs 2", False)])
    assert calls == [("sebra", "erm_conf_same_budget")] and "| a target | 1 vs 2 | **no** |" in md


def test_a_method_under_trial_gets_its_rows_without_being_registered() -> None:
    fam = _fam_rows()
    extra = fam[fam["method"] == "sebra"].assign(method="sebra_trial")
    md = markdown_family(pd.concat([fam, extra], ignore_index=True))
    assert "| sebra_trial |" in md  # in the summary and the per-variant tables
    assert md.index("| sebra |") < md.index("| sebra_trial |")  # the known methods first

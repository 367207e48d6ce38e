"""Tables of family.csv: the held-out summary is the mean of per-variant means; the targets are checked."""

from __future__ import annotations

import pandas as pd
import pytest

from sebra.bench.family import FAMILY_COLUMNS
from sebra.bench.family_tables import check_targets, heldout_summary, markdown_family


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
    met = {t: ok for t, _, ok in check_targets(fam)}
    assert met["Sebra worst-group ≥ ERM + 25"] is True  # 66 vs 47.5
    assert met["Sebra worst-group ≥ JTT + 5"] is True  # 66 vs 55 + 5
    assert (
        met["Sebra closes ≥ 60% of the ERM → group-balanced gap"] is True
    )  # (66 - 22.5) / (85 - 22.5) = 70%
    assert met["h1: Sebra gap A and gap B each ≥ ERM's − 3"] is False  # gap B -9 vs -5: Whac-A-Mole
    assert met["h1: Sebra worst-group std ≤ 5 over seeds"] is True  # std 2 over 3 seeds
    assert met["h2: Sebra worst-group std ≤ 5 over seeds"] is None  # one seed: no std
    md = markdown_family(fam)
    assert "Held-out summary" in md and "*h1* (heldout)" in md and "*d* (dev)" in md

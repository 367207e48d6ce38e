"""Issue 11's and issue 17's targets for the benchmark family, checked on ``family.csv``, and the family tables
with them (the library's tables, :mod:`sebra.bench.family_tables`, hold no issue's targets).

    python benchmarks/family_targets.py --results benchmarks/results/heldout3/family.csv [--markdown BENCHMARKS.md]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sebra.bench.family_tables import get_mean, heldout_summary, variant_means
from sebra.bench.family_tables import main as family_tables_main


def check_targets(
    fam: pd.DataFrame, method: str = "sebra", ranker_ref: str = "erm_conf_same_budget", role: str = "heldout"
) -> list[tuple[str, str, bool | None]]:
    """Issue 11's and 17's targets on the ``role`` variants for ``method`` (its Stage 1 compared with ``ranker_ref``):
    ``(target, measured, met)``; ``met`` is None without data."""
    s = heldout_summary(fam, role).set_index(["method", "metric"])["mean"]
    vm = variant_means(fam)
    names = sorted(set(vm.loc[vm["role"] == role, "variant"]))

    def g(m, k):
        return float(s.get((m, k), np.nan))

    out: list[tuple[str, str, bool | None]] = []

    def add(target: str, measured: str, ok: float | bool) -> None:
        out.append((target, measured, None if isinstance(ok, float) and np.isnan(ok) else bool(ok)))

    erm, jtt, seb, ora = (g(m, "worst_group_acc") for m in ("erm", "jtt", method, "oracle"))
    add(
        "Sebra worst-group ≥ ERM + 25",
        f"{seb:.1f} vs {erm:.1f} + 25 = {erm + 25:.1f}",
        np.nan if np.isnan(seb + erm) else seb >= erm + 25,
    )
    add(
        "Sebra worst-group ≥ JTT + 5",
        f"{seb:.1f} vs {jtt:.1f} + 5 = {jtt + 5:.1f}",
        np.nan if np.isnan(seb + jtt) else seb >= jtt + 5,
    )
    closed = (seb - erm) / (ora - erm) if ora != erm else np.nan
    add(
        "Sebra closes ≥ 60% of the ERM → group-balanced gap",
        f"{100 * closed:.0f}% ({erm:.1f} → {ora:.1f})",
        np.nan if np.isnan(closed) else closed >= 0.6,
    )
    ts, te = g(method, "kendall_tau_b_3"), g(ranker_ref, "kendall_tau_b_3")
    add(
        "Sebra Stage 1 τ-b (3 levels) above ERM confidence at the same budget",
        f"{ts:.3f} vs {te:.3f}",
        np.nan if np.isnan(ts + te) else ts > te,
    )
    tb = g("erm_conf_best_epoch", "kendall_tau_b_3")
    add(
        "Sebra Stage 1 τ-b (3 levels) within 0.03 of ERM confidence at its best epoch (upper reference)",
        f"{ts:.3f} vs {tb:.3f} − 0.03 = {tb - 0.03:.3f}",
        np.nan if np.isnan(ts + tb) else ts >= tb - 0.03,
    )
    for v in names:
        wj = [get_mean(vm, v, m, "worst_group_acc") for m in (method, "jtt")]
        add(
            f"{v}: Sebra worst-group ≥ JTT's",
            f"{wj[0]:.1f} vs {wj[1]:.1f}",
            np.nan if np.isnan(sum(wj)) else wj[0] >= wj[1],
        )
        tv = [get_mean(vm, v, m, "kendall_tau_b_3") for m in (method, ranker_ref)]
        add(
            f"{v}: Sebra Stage 1 τ-b above ERM confidence at the same budget",
            f"{tv[0]:.3f} vs {tv[1]:.3f}",
            np.nan if np.isnan(sum(tv)) else tv[0] > tv[1],
        )
        ga = [get_mean(vm, v, m, "gap_a") for m in (method, "erm")]
        gb = [get_mean(vm, v, m, "gap_b") for m in (method, "erm")]
        add(
            f"{v}: Sebra gap A and gap B each ≥ ERM's − 3",
            f"A {ga[0]:.1f} vs {ga[1]:.1f}; B {gb[0]:.1f} vs {gb[1]:.1f}",
            np.nan if np.isnan(sum(ga + gb)) else (ga[0] >= ga[1] - 3 and gb[0] >= gb[1] - 3),
        )
        avg = [get_mean(vm, v, m, "avg_acc") for m in (method, "erm")]
        idd = [get_mean(vm, v, m, "id_acc") for m in (method, "erm")]
        add(
            f"{v}: Sebra average ≥ ERM's, I.D. at most 5 below",
            f"avg {avg[0]:.1f} vs {avg[1]:.1f}; I.D. {idd[0]:.1f} vs {idd[1]:.1f}",
            np.nan if np.isnan(sum(avg + idd)) else (avg[0] >= avg[1] and idd[0] >= idd[1] - 5),
        )
        sd, n = (
            get_mean(vm, v, method, "worst_group_acc", "std"),
            get_mean(vm, v, method, "worst_group_acc", "n"),
        )
        add(
            f"{v}: Sebra worst-group std ≤ 5 over seeds",
            f"{sd:.1f} ({n:.0f} seeds)",
            np.nan if np.isnan(sd) else (sd <= 5 and n >= 3),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """The family tables with these targets checked (``--results``, ``--markdown`` as the library's command)."""
    return family_tables_main(argv, targets=check_targets)


if __name__ == "__main__":
    raise SystemExit(main())

"""Tables of ``family.csv``: one per variant, one summary over the held-out variants, and the targets checked.

    python -m sebra.bench.family_tables --results benchmarks/results/family.csv [--markdown BENCHMARKS.md]

The held-out summary is the mean over variants of the per-variant seed means (each variant counts once, whatever
its number of seeds). ``<method>_val_acc`` rows are the same runs tested at their best validation *accuracy* (no group
labels anywhere: the practitioner's protocol), beside the paper's ``val_wga``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from sebra.bench.tables import format_mean_std, update_markdown_block

__all__ = ["check_targets", "heldout_summary", "main", "markdown_family", "variant_means"]

ACC = ("worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both")
ACC_NAMES = ("Worst-group", "Average", "I.D.", "Gap A", "Gap B", "Gap both")
METHODS = (
    "erm",
    "erm_val_acc",
    "jtt",
    "jtt_val_acc",
    "sebra",
    "sebra_val_acc",
    "sebra_single_rank",
    "sebra_single_rank_val_acc",
    "groupdro",
    "oracle",
)
RANKERS = (
    "sebra",
    "erm_conf_same_budget",
    "sebra_single_rank",
    "erm_conf_same_budget_single_rank",
    "erm_conf_best_epoch",
    "jtt_error_set",
)
NOTES = {
    "oracle": "oracle (group-balanced, uses training group labels)",
    "groupdro": "groupdro (uses training group labels)",
    "erm_val_acc": "erm, selected by val accuracy",
    "jtt_val_acc": "jtt, selected by val accuracy",
    "sebra_val_acc": "sebra, selected by val accuracy",
    "sebra_single_rank": "sebra, one Stage 1 run (first family configuration)",
    "sebra_single_rank_val_acc": "sebra, one Stage 1 run, selected by val accuracy",
}


def variant_means(fam: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, role, method, metric): seed mean, sample std and number of seeds."""
    df = fam.dropna(subset=["value"])
    return (
        df.groupby(["variant", "role", "method", "metric"])["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )


def heldout_summary(fam: pd.DataFrame, role: str = "heldout") -> pd.DataFrame:
    """Per (method, metric): the mean over ``role`` variants of the per-variant seed means, and how many variants."""
    vm = variant_means(fam)
    vm = vm[vm["role"] == role]
    return vm.groupby(["method", "metric"])["mean"].agg(mean="mean", variants="count").reset_index()


def _get(vm: pd.DataFrame, variant: str, method: str, metric: str, col: str = "mean") -> float:
    r = vm[(vm["variant"] == variant) & (vm["method"] == method) & (vm["metric"] == metric)]
    return float(r[col].iloc[0]) if len(r) else float("nan")


def check_targets(
    fam: pd.DataFrame, role: str = "heldout", method: str = "sebra", ranker_ref: str = "erm_conf_same_budget"
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
        wj = [_get(vm, v, m, "worst_group_acc") for m in (method, "jtt")]
        add(
            f"{v}: Sebra worst-group ≥ JTT's",
            f"{wj[0]:.1f} vs {wj[1]:.1f}",
            np.nan if np.isnan(sum(wj)) else wj[0] >= wj[1],
        )
        tv = [_get(vm, v, m, "kendall_tau_b_3") for m in (method, ranker_ref)]
        add(
            f"{v}: Sebra Stage 1 τ-b above ERM confidence at the same budget",
            f"{tv[0]:.3f} vs {tv[1]:.3f}",
            np.nan if np.isnan(sum(tv)) else tv[0] > tv[1],
        )
        ga = [_get(vm, v, m, "gap_a") for m in (method, "erm")]
        gb = [_get(vm, v, m, "gap_b") for m in (method, "erm")]
        add(
            f"{v}: Sebra gap A and gap B each ≥ ERM's − 3",
            f"A {ga[0]:.1f} vs {ga[1]:.1f}; B {gb[0]:.1f} vs {gb[1]:.1f}",
            np.nan if np.isnan(sum(ga + gb)) else (ga[0] >= ga[1] - 3 and gb[0] >= gb[1] - 3),
        )
        avg = [_get(vm, v, m, "avg_acc") for m in (method, "erm")]
        idd = [_get(vm, v, m, "id_acc") for m in (method, "erm")]
        add(
            f"{v}: Sebra average ≥ ERM's, I.D. at most 5 below",
            f"avg {avg[0]:.1f} vs {avg[1]:.1f}; I.D. {idd[0]:.1f} vs {idd[1]:.1f}",
            np.nan if np.isnan(sum(avg + idd)) else (avg[0] >= avg[1] and idd[0] >= idd[1] - 5),
        )
        sd, n = _get(vm, v, method, "worst_group_acc", "std"), _get(vm, v, method, "worst_group_acc", "n")
        add(
            f"{v}: Sebra worst-group std ≤ 5 over seeds",
            f"{sd:.1f} ({n:.0f} seeds)",
            np.nan if np.isnan(sd) else (sd <= 5 and n >= 3),
        )
    return out


def _variant_table(vm: pd.DataFrame, variant: str) -> list[str]:
    lines = [
        f"| {variant}: method | " + " | ".join(ACC_NAMES) + " | Seeds |",
        "|---|" + "---|" * (len(ACC) + 1),
    ]
    present = set(vm.loc[vm["variant"] == variant, "method"])
    for m in [m for m in METHODS if m in present]:
        cells = []
        for k in ACC:
            mean, sd = _get(vm, variant, m, k), _get(vm, variant, m, k, "std")
            cells.append(format_mean_std(mean, sd))
        n = _get(vm, variant, m, "worst_group_acc", "n")
        lines.append(f"| {NOTES.get(m, m)} | " + " | ".join(cells) + f" | {0 if np.isnan(n) else int(n)} |")
    rk = [
        m
        for m in RANKERS
        if ((vm["variant"] == variant) & (vm["method"] == m) & (vm["metric"] == "kendall_tau_b_3")).any()
    ]
    if rk:
        lines += ["", f"| {variant}: ranker | τ-b (3 levels) | τ-b (4 levels) | Seeds |", "|---|---|---|---|"]
        for m in rk:
            t3 = format_mean_std(
                _get(vm, variant, m, "kendall_tau_b_3"), _get(vm, variant, m, "kendall_tau_b_3", "std"), 3
            )
            t4 = format_mean_std(
                _get(vm, variant, m, "kendall_tau_b"), _get(vm, variant, m, "kendall_tau_b", "std"), 3
            )
            lines.append(f"| {m} | {t3} | {t4} | {int(_get(vm, variant, m, 'kendall_tau_b_3', 'n'))} |")
    return lines


def markdown_family(fam: pd.DataFrame) -> str:
    """Per-variant tables (held-out first), the held-out summary and the targets."""
    vm = variant_means(fam)
    out: list[str] = []
    summary = heldout_summary(fam)
    if not summary.empty:
        n_var = int(summary["variants"].max())
        out += [
            f"**Held-out summary** (mean over {n_var} held-out variant(s) of the per-variant seed means; %):",
            "",
            "| Method | " + " | ".join(ACC_NAMES) + " | τ-b (3) | Variants |",
            "|---|" + "---|" * (len(ACC) + 2),
        ]
        s = summary.set_index(["method", "metric"])
        methods = [
            m
            for m in (
                *METHODS,
                "erm_conf_same_budget",
                "erm_conf_same_budget_single_rank",
                "erm_conf_best_epoch",
                "jtt_error_set",
            )
            if m in set(summary["method"])
        ]
        for m in methods:
            cells = [f"{s['mean'].get((m, k), np.nan):.1f}" if (m, k) in s.index else "–" for k in ACC]
            tau = f"{s['mean'][(m, 'kendall_tau_b_3')]:.3f}" if (m, "kendall_tau_b_3") in s.index else "–"
            nv = int(s["variants"].get((m, "worst_group_acc"), s["variants"].get((m, "kendall_tau_b_3"), 0)))
            out.append(f"| {NOTES.get(m, m)} | " + " | ".join(cells) + f" | {tau} | {nv} |")
        present = set(summary["method"])
        for method, ref, title in (
            ("sebra", "erm_conf_same_budget", "Sebra (shipped configuration)"),
            (
                "sebra_single_rank",
                "erm_conf_same_budget_single_rank",
                "Sebra with one Stage 1 run (the first family configuration)",
            ),
        ):
            if method not in present:
                continue
            out += ["", f"| Target (held-out): {title} | Measured | Met? |", "|---|---|---|"]
            for target, measured, ok in check_targets(fam, method=method, ranker_ref=ref):
                out.append(
                    f"| {target} | {measured} | {'–' if ok is None else ('yes' if ok else '**no**')} |"
                )
        out.append("")
    for role in ("heldout", "dev", "spent"):
        for v in sorted(set(vm.loc[vm["role"] == role, "variant"])):
            out += [f"*{v}* ({role}):", ""] + _variant_table(vm, v) + [""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Write the family tables into a Markdown file; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m sebra.bench.family_tables", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--results", default="benchmarks/results/family.csv")
    p.add_argument(
        "--markdown", default=None, help="rewrite the bench:family block of this file (BENCHMARKS.md)"
    )
    a = p.parse_args(argv)
    fam = pd.read_csv(a.results)
    md = markdown_family(fam)
    if a.markdown:
        update_markdown_block(a.markdown, "family", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

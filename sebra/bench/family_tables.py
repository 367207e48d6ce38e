"""Tables of ``family.csv``: one per variant and one summary over the held-out variants.

    python -m sebra.bench.family_tables --results benchmarks/results/family.csv [--markdown BENCHMARKS.md]

An issue's targets are not the library's: ``benchmarks/family_targets.py`` passes them to :func:`markdown_family`
(``targets=``) and prints the same tables with them checked.

The held-out summary is the mean over variants of the per-variant seed means (each variant counts once, whatever
its number of seeds). ``<method>_val_acc`` rows are the same runs tested at their best validation *accuracy* (no group
labels anywhere: the practitioner's protocol), beside the paper's ``val_wga``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import pandas as pd

from sebra.bench.tables import format_mean_std, update_markdown_block

__all__ = ["Targets", "get_mean", "heldout_summary", "main", "markdown_family", "variant_means"]

#: ``(family rows, method, its same-budget ranker) -> [(target, measured, met or None)]``
Targets = Callable[[pd.DataFrame, str, str], list[tuple[str, str, bool | None]]]

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


def get_mean(vm: pd.DataFrame, variant: str, method: str, metric: str, col: str = "mean") -> float:
    """``col`` (mean, std, n) of ``metric`` for ``method`` on ``variant`` in :func:`variant_means` rows (NaN if absent)."""
    r = vm[(vm["variant"] == variant) & (vm["method"] == method) & (vm["metric"] == metric)]
    return float(r[col].iloc[0]) if len(r) else float("nan")


def _variant_table(vm: pd.DataFrame, variant: str) -> list[str]:
    lines = [
        f"| {variant}: method | " + " | ".join(ACC_NAMES) + " | Seeds |",
        "|---|" + "---|" * (len(ACC) + 1),
    ]
    for m in ordered(vm[vm["variant"] == variant], METHODS, "worst_group_acc"):
        cells = []
        for k in ACC:
            mean, sd = get_mean(vm, variant, m, k), get_mean(vm, variant, m, k, "std")
            cells.append(format_mean_std(mean, sd))
        n = get_mean(vm, variant, m, "worst_group_acc", "n")
        lines.append(f"| {NOTES.get(m, m)} | " + " | ".join(cells) + f" | {0 if np.isnan(n) else int(n)} |")
    rk = ordered(vm[vm["variant"] == variant], RANKERS, "kendall_tau_b_3")
    if rk:
        lines += ["", f"| {variant}: ranker | τ-b (3 levels) | τ-b (4 levels) | Seeds |", "|---|---|---|---|"]
        for m in rk:
            t3 = format_mean_std(
                get_mean(vm, variant, m, "kendall_tau_b_3"),
                get_mean(vm, variant, m, "kendall_tau_b_3", "std"),
                3,
            )
            t4 = format_mean_std(
                get_mean(vm, variant, m, "kendall_tau_b"), get_mean(vm, variant, m, "kendall_tau_b", "std"), 3
            )
            lines.append(f"| {m} | {t3} | {t4} | {int(get_mean(vm, variant, m, 'kendall_tau_b_3', 'n'))} |")
    return lines


def ordered(rows: pd.DataFrame, known: tuple[str, ...], metric: str) -> list[str]:
    """The methods of ``rows`` that have ``metric``: the ``known`` ones in their order, then any other (e.g. a
    configuration under trial) by name."""
    have = set(rows.loc[rows["metric"] == metric, "method"])
    return [m for m in known if m in have] + sorted(have - set(known))


def markdown_family(fam: pd.DataFrame, targets: Targets | None = None) -> str:
    """Per-variant tables (held-out first), the held-out summary and, given ``targets``, the targets checked."""
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
        methods = ordered(summary, METHODS, "worst_group_acc")
        methods += [m for m in ordered(summary, RANKERS, "kendall_tau_b_3") if m not in methods]
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
            if targets is None or method not in present:
                continue
            out += ["", f"| Target (held-out): {title} | Measured | Met? |", "|---|---|---|"]
            for target, measured, ok in targets(fam, method, ref):
                out.append(
                    f"| {target} | {measured} | {'–' if ok is None else ('yes' if ok else '**no**')} |"
                )
        out.append("")
    for role in ("heldout", "dev", "spent"):
        for v in sorted(set(vm.loc[vm["role"] == role, "variant"])):
            out += [f"*{v}* ({role}):", ""] + _variant_table(vm, v) + [""]
    return "\n".join(out)


def main(argv: list[str] | None = None, targets: Targets | None = None) -> int:
    """Print the family tables (with ``targets`` checked, when given) and rewrite the ``family`` block of
    ``--markdown``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m sebra.bench.family_tables", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--results", default="benchmarks/results/family.csv")
    p.add_argument(
        "--markdown", default=None, help="rewrite the bench:family block of this file (BENCHMARKS.md)"
    )
    a = p.parse_args(argv)
    fam = pd.read_csv(a.results)
    md = markdown_family(fam, targets=targets)
    if a.markdown:
        update_markdown_block(a.markdown, "family", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Summarise the Stage 1 (rank-only) dev trials of ``benchmarks/results/family_trials.csv`` as a Markdown table.

    python benchmarks/family_trials_summary.py --variants gradient-dot,farm-dot-border,builtin

One row per settings string, one column per variant: mean tau-b (3 levels) over the trial seeds, their count, and the
least spurious decile's content (A-, B-conflicting samples of 380 each), as the trial script recorded them.
"""

from __future__ import annotations

import argparse

import pandas as pd


def summary(path: str, variants: list[str], since: int = 0) -> str:
    """The Markdown table of the rank-only trials on ``variants`` (rows from line ``since`` of the file on)."""
    df = pd.read_csv(path).iloc[since:]
    df = df[(df["mode"] == "rank") & df["variant"].isin(variants)]
    rows = []
    for settings, g in df.groupby("settings", sort=False):
        cells = []
        for v in variants:
            t = g[g["variant"] == v]
            if t.empty:
                cells.append("–")
                continue
            tau = t["kendall_tau_b_3"]
            cells.append(
                f"{tau.mean():.3f} ({len(t)}; A {t['top_a_conf'].mean():.0f}, B {t['top_b_conf'].mean():.0f})"
            )
        rows.append(f"| `{settings}` | " + " | ".join(cells) + " |")
    head = "| settings | " + " | ".join(variants) + " |\n|---|" + "---|" * len(variants)
    return head + "\n" + "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--results", default="benchmarks/results/family_trials.csv")
    p.add_argument("--variants", required=True)
    p.add_argument("--since", type=int, default=0, help="skip the first N rows (earlier sessions' trials)")
    a = p.parse_args()
    print(summary(a.results, a.variants.split(","), a.since))


if __name__ == "__main__":
    main()

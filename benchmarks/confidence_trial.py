"""Dev-only trial: which early-ERM confidence order, fused with Stage 1, ranks best (issue 17, tenth session).

The fused ranking of §7.9 takes ERM confidence after one epoch of one seed, and on the held-out variants that one
order saw the slow shortcut on some seeds only. Two cheaper-than-a-new-method ways to damp that, both label-free:

* ``epochs``: the mean ``p_y`` over the first ``k`` epochs of one ERM run (a per-sample learning-speed statistic: a
  sample learned early scores high at every point, one learned late only at the last ones);
* ``seeds``: the mean position percentile of the epoch-1 orders of several independently seeded ERM runs.

It reads the grid's ERM runs (``runs/grid/<variant>/erm_base/erm/seed<s>/confidence_by_epoch.csv``: every training
sample scored after every epoch) and Stage 1 tables (``runs/grid/<variant>/seed<s>/rankings_sebra.csv``), so it
trains nothing, and scores each order by tau-b (3 levels) against the training set's true levels, which a dev
variant may use. It refuses any variant whose role is not ``dev``.

    python benchmarks/confidence_trial.py --out benchmarks/results/confidence_trials.csv
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd

from sebra.bench.grid import curve_rankings
from sebra.cli.results import level_scores
from sebra.datasets.family import FamilyDataModule, variant, variants
from sebra.export import load_rankings
from sebra.ranking import combine_rankings


def _scores(runs: Path, name: str, seed: int) -> pd.DataFrame:
    return pd.read_csv(runs / name / "erm_base" / "erm" / f"seed{seed}" / "confidence_by_epoch.csv")


def _order(frame: pd.DataFrame, epochs: range) -> pd.DataFrame:
    return curve_rankings(frame[frame["epoch"].isin(list(epochs))])


def trial_rows(runs: Path, name: str, seeds: list[int], max_epochs: int) -> list[dict]:
    if variant(name).role != "dev":
        raise SystemExit(
            f"confidence_trial: {name!r} is a {variant(name).role} variant; trials run on dev only"
        )
    dm = FamilyDataModule(name)
    dm.setup("fit")
    train = dm.train_dataset
    frames = {s: _scores(runs, name, s) for s in seeds}
    rows = []

    def emit(order: str, seed: int, table: pd.DataFrame, fused_with: pd.DataFrame) -> None:
        alone = level_scores(table, train, (3,))["kendall_tau_b_3"]
        fused = level_scores(combine_rankings([fused_with, table]), train, (3,))["kendall_tau_b_3"]
        rows.append({"variant": name, "seed": seed, "order": order, "tau_b_3": alone, "fused_tau_b_3": fused})

    for s in seeds:
        stage1 = load_rankings(runs / name / f"seed{s}" / "rankings_sebra.csv")
        rows.append(
            {
                "variant": name,
                "seed": s,
                "order": "stage1",
                "tau_b_3": level_scores(stage1, train, (3,))["kendall_tau_b_3"],
                "fused_tau_b_3": float("nan"),
            }
        )
        for k in range(1, max_epochs + 1):
            emit(f"epochs_1-{k}", s, _order(frames[s], range(1, k + 1)), stage1)
        for k in (2, 3):
            emit(f"epoch_{k}", s, _order(frames[s], range(k, k + 1)), stage1)
        # several seeds' epoch-1 orders, averaged: every subset of the seeds that holds s
        others = [o for o in seeds if o != s]
        for n in range(1, len(others) + 1):
            for group in itertools.combinations(others, n):
                tables = [_order(frames[g], range(1, 2)) for g in (s, *group)]
                emit(f"seeds_{n + 1}", s, combine_rankings(tables), stage1)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--variants", nargs="*", default=None, help="default: every dev variant")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=4)
    p.add_argument("--runs-dir", default="runs/grid")
    p.add_argument("--out", default="benchmarks/results/confidence_trials.csv")
    a = p.parse_args()
    rows = []
    for name in a.variants or variants("dev"):
        rows += trial_rows(Path(a.runs_dir), name, a.seeds, a.max_epochs)
    df = pd.DataFrame(rows)
    df.to_csv(a.out, index=False)
    summary = df.groupby(["order", "variant"])[["tau_b_3", "fused_tau_b_3"]].mean().unstack("variant")
    pd.set_option("display.width", 250)
    print(summary.round(3))
    print(df.groupby("order")[["tau_b_3", "fused_tau_b_3"]].mean().round(3))


if __name__ == "__main__":
    main()

"""Colored MNIST: how much of each class's least spurious tenth is bias-conflicting, by ranker (issue 18).

Stage 2 draws its positives from the least spurious bins of each class; at 0.5% conflicting a class of ~5,400 has
~27 conflicting samples, so its least spurious tenth (~540) can hold at most 5% of them. Two numbers per ranking:
``decile_conflicting_share`` (the tenth's share that conflicts: its purity) and ``decile_recall`` (the share of the
class's conflicting samples that land in it), both averaged over the ten classes. Rankers: Sebra's Stage 1
(``rankings.csv`` of a ``sebra`` run) and ERM confidence (``confidence_by_epoch.csv`` of the same seed's ``erm``
run) at its epoch closest to Sebra's Stage 1 optimizer-step budget and at its best epoch by this purity.

    python benchmarks/colored_mnist_deciles.py --runs-dir runs/cmnist --ratio 0.005 --seeds 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sebra.scoring import confidence_rankings


def decile_scores(table: pd.DataFrame, conflicting: pd.Series, share: float = 0.1) -> dict[str, float]:
    """Mean over classes of the least spurious ``share``'s conflicting share and of the conflicting samples' recall."""
    size = table.groupby("label")["position"].transform("max")
    tail = (table["position"] > (1 - share) * size).to_numpy()
    conf = conflicting.loc[table["index"]].to_numpy()
    purity, recall = [], []
    for c in sorted(table["label"].unique()):
        mine = (table["label"] == c).to_numpy()
        purity.append(conf[mine & tail].mean())
        recall.append(conf[mine & tail].sum() / max(conf[mine].sum(), 1))
    return {"decile_conflicting_share": float(np.mean(purity)), "decile_recall": float(np.mean(recall))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs-dir", default="runs/cmnist")
    p.add_argument("--ratio", default="0.005")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument(
        "--results", default="benchmarks/results/colored_mnist.csv", help="for Sebra's Stage 1 budget"
    )
    a = p.parse_args(argv)
    root = Path(a.runs_dir) / f"colored_mnist_r{a.ratio}"
    results = pd.read_csv(a.results)
    results = results[results["ratio"].astype(float) == float(a.ratio)]
    rows = []
    for seed in a.seeds:
        seb = pd.read_csv(root / "sebra" / f"seed{seed}" / "rankings.csv")
        conflicting = pd.Series((seb["color"] != seb["label"]).to_numpy(), index=seb["index"].to_numpy())
        rows.append({"seed": seed, "ranker": "sebra", **decile_scores(seb, conflicting)})
        conf = pd.read_csv(root / "erm" / f"seed{seed}" / "confidence_by_epoch.csv")
        per_epoch = []
        for epoch, part in conf.groupby("epoch"):
            table = confidence_rankings(part["index"], part["label"], part["p_y"])
            per_epoch.append(
                {"epoch": int(epoch), "step": int(part["step"].iloc[0]), **decile_scores(table, conflicting)}
            )
        pe = pd.DataFrame(per_epoch)
        res = results[(results["method"] == "sebra") & (results["seed"] == seed)]
        budget = res.loc[res["metric"] == "rank_optimizer_steps", "value"]
        keys = ["decile_conflicting_share", "decile_recall"]
        if len(budget):
            same = pe.loc[(pe["step"] - float(budget.iloc[-1])).abs().idxmin()]
            rows.append(
                {
                    "seed": seed,
                    "ranker": f"erm_conf_same_budget (epoch {int(same['epoch'])})",
                    **same[keys].to_dict(),
                }
            )
        best = pe.loc[pe["decile_conflicting_share"].idxmax()]
        rows.append(
            {
                "seed": seed,
                "ranker": f"erm_conf_best_epoch (epoch {int(best['epoch'])})",
                **best[keys].to_dict(),
            }
        )
    out = pd.DataFrame(rows)
    print(out.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

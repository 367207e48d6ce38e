"""Dev-only trial: a second look with the first shortcut balanced away ("peeling"; issue 17, twelfth session).

Why: on a variant whose second shortcut is learned several passes after the first (dev gradient-dot,
farm-dot-border, stripes-faintpatch), Stage 1's first wave is the first shortcut's aligned samples, and no order
made inside that wave carries the slow shortcut: the network that made it had not learned it yet (§7.5). Waiting
does not help either: by the time the slow shortcut is learned, the aligned samples are memorised.

The trial: after the shipped Stage 1 (``rank_by: fused``), train a fresh ERM network for a few epochs on draws in
which each class's first elimination wave and the rest of the class are equally frequent
(:class:`~sebra.methods.rank_upsampled.RankUpsampledModule`, ``weighting="first_wave"``). In those draws the first
shortcut no longer predicts the label, so the next thing the network learns is the next shortcut, and its
confidence orders each class by it. The two orders are then fused, by the mean or by the maximum position
percentile (:func:`sebra.ranking.combine_rankings`; ``max``: a sample is as little spurious as the order that
finds it least spurious, so a sample conflicting with *either* shortcut goes to the tail Stage 2 draws from).

Every order is scored against the true levels (dev variants may use them): Kendall tau-b (3 levels), and the share
of each attribute's conflicting training samples that land in their class's least spurious tenth (the bin Stage 2's
positives come from). Label-free: the second look reads only the first ranking. Refuses any non-dev variant.

    python benchmarks/peel_trial.py --variants stripes-faintpatch gradient-dot --seeds 0 \\
        --out benchmarks/results/peel_trials.csv
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sebra.bench.family import family_config
from sebra.bench.grid import _mitigation_entry, curve_rankings, rank_with_sebra
from sebra.bench.presets import builtin_config
from sebra.bench.run import run_dir, run_one
from sebra.cli.results import level_scores
from sebra.datasets.family import variant
from sebra.export import save_rankings
from sebra.ranking import combine_rankings, first_wave, second_look_order
from sebra.scoring import confidence_rankings
from sebra.utils.files import atomic_write

COLUMNS = ["variant", "seed", "order", "metric", "value"]


def tail_recall(table: pd.DataFrame, train: Any, share: float = 0.1) -> dict[str, float]:
    """Per bias attribute: the share of its conflicting training samples in their class's least spurious
    ``share`` of the ranked order (and the same for samples aligned on every attribute: the tail's impurity)."""
    pct = table["position"] / table.groupby("label")["position"].transform("max")
    tail = pd.Series((pct > 1 - share).to_numpy(), index=table["index"].to_numpy()).loc[train.indices.numpy()]
    aligned = train.bias.aligned(train.labels, train.attrs).numpy()
    out = {}
    for k, name in enumerate(train.bias.attr_names):
        out[f"tail_recall_{name}"] = float(tail.to_numpy()[~aligned[:, k]].mean())
    out["tail_aligned_share"] = float(aligned.all(axis=1)[tail.to_numpy()].mean())
    return out


def error_moves(shipped: pd.DataFrame, stage1: pd.DataFrame, peel_p_y: pd.Series) -> pd.DataFrame:
    """The self-gated fusion (:func:`sebra.ranking.second_look_order`): only the first-wave samples of ``stage1``
    that the second-look network gets wrong (mean ``p_y`` below 0.5) move in the ``shipped`` order."""
    first = first_wave(stage1).set_axis(stage1["index"]).loc[shipped["index"]].to_numpy()
    return second_look_order(shipped, first, peel_p_y.loc[shipped["index"]].to_numpy())[0]


def peel_entry(cfg: dict[str, Any], rankings: Path, epochs: int) -> dict[str, Any]:
    """The config's ERM settings, trained ``epochs`` on first-wave-balanced draws, scored after every epoch."""
    args = copy.deepcopy(cfg["methods"]["erm"]["model"]["init_args"])
    args.update(sampling="uniform", rankings=str(rankings), weighting="first_wave", epochs=epochs)
    return {
        "model": {"class_path": "sebra.methods.rank_upsampled.RankUpsampledModule", "init_args": args},
        "trainer": copy.deepcopy(cfg["methods"]["erm"].get("trainer", {})),
        "bench": {"also_select": [], "confidence_ranker": {}},
    }


def trial_rows(name: str, seed: int, runs: Path, epochs: int, stage2: list[str]) -> list[dict[str, Any]]:
    if variant(name).role != "dev":
        raise SystemExit(f"peel_trial: {name!r} is a {variant(name).role} variant; trials run on dev only")
    cfg = family_config(builtin_config(), name)
    cell = runs / name / f"seed{seed}"
    cell.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module, rank_seconds = rank_with_sebra(cfg, seed)
    train = module.datamodule.train_dataset
    shipped, stage1 = module.rankings, module.ranking.elimination_table
    save_rankings(stage1, cell / "rankings_stage1.csv")
    save_rankings(shipped, cell / "rankings_shipped.csv")
    t1 = time.perf_counter()
    local = {
        **cfg,
        "methods": {**cfg["methods"], "peel": peel_entry(cfg, cell / "rankings_stage1.csv", epochs)},
    }
    run_one(local, "peel", seed, cell, "fits")
    peel_seconds = time.perf_counter() - t1
    scores = pd.read_csv(run_dir(cell, "fits", "peel", seed) / "confidence_by_epoch.csv")
    orders: dict[str, pd.DataFrame] = {"stage1": stage1, "shipped": shipped}
    for e in range(1, epochs + 1):
        s = scores[scores["epoch"] == e]
        orders[f"peel_e{e}"] = confidence_rankings(s["index"], s["label"], s["p_y"])
    orders["peel_curve"] = curve_rankings(scores[scores["epoch"] <= epochs])
    orders["errors"] = error_moves(
        shipped, stage1, scores[scores["epoch"] <= epochs].groupby("index")["p_y"].mean()
    )
    for second in [k for k in orders if k.startswith("peel")]:
        for reduce in ("mean", "max"):
            orders[f"shipped+{second}:{reduce}"] = combine_rankings([shipped, orders[second]], reduce=reduce)
    check = (
        module.ranking.first_check
    )  # the shipped label-free ranking check (sebra.diagnostics.tail_agreement)
    fired = bool(check is not None and check.fired)
    # the gated order: the second look only where the shipped check says the ranking may be blind
    orders["gated"] = orders["shipped+peel_curve:max"] if fired else shipped
    rows = [
        {"variant": name, "seed": seed, "order": "shipped", "metric": "check_fired", "value": float(fired)},
        {
            "variant": name,
            "seed": seed,
            "order": "shipped",
            "metric": "check_min_overlap",
            "value": float(min(check.agreement)) if check is not None and check.agreement else float("nan"),
        },
    ]
    for order, table in orders.items():
        values = {**level_scores(table, train, (3,)), **tail_recall(table, train)}
        if order == "shipped":
            values["seconds"] = rank_seconds
        if order == "peel_curve":
            values["seconds"] = peel_seconds
        rows += [
            {"variant": name, "seed": seed, "order": order, "metric": k, "value": float(v)}
            for k, v in values.items()
        ]
    for order in stage2:  # the shipped Stage 2 on that ranking (validation selection, test reported)
        path = cell / f"rankings_{order.replace(':', '_').replace('+', '_')}.csv"
        save_rankings(orders[order], path)
        entry = _mitigation_entry(cfg, "stage2", path, Path("unused"), {})
        key = f"stage2@{order.replace(':', '_').replace('+', '_')}"
        got = run_one({**cfg, "methods": {**cfg["methods"], key: entry}}, key, seed, cell, "fits")
        rows += [
            {
                "variant": name,
                "seed": seed,
                "order": f"stage2@{order}",
                "metric": r["metric"],
                "value": float(r["value"]),
            }
            for r in got
            if r["method"] == key and r["value"] == r["value"]
        ]
    print(f"peel_trial: {name} seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs of the second look (each one scored)")
    p.add_argument(
        "--stage2", nargs="*", default=[], help="orders to run the shipped Stage 2 on (e.g. shipped)"
    )
    p.add_argument("--out", default="benchmarks/results/peel_trials.csv")
    p.add_argument("--runs-dir", default="runs/peel")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    held = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=COLUMNS)
    for seed in a.seeds:
        for name in a.variants:
            mine = held[(held["variant"] == name) & (held["seed"] == seed)]
            if len(mine) and all((mine["order"] == f"stage2@{o}").any() for o in a.stage2):
                continue  # resumable: a cell already in the file is skipped
            held = held.drop(mine.index)  # a cell without the Stage 2 rows asked for is redone whole
            new = pd.DataFrame(trial_rows(name, seed, Path(a.runs_dir), a.epochs, a.stage2), columns=COLUMNS)
            held = pd.concat([held, new], ignore_index=True)
            atomic_write(out, lambda tmp, frame=held: frame.to_csv(tmp, index=False))
    if len(held):
        tau = held[held["metric"] == "kendall_tau_b_3"].pivot_table(
            index="order", columns="variant", values="value"
        )
        print(tau.assign(mean=tau.mean(axis=1)).round(3).to_string())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

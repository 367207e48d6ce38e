"""Cross-fitted confidence on a **dev** variant: does a network that never trained on a sample grade it by both shortcuts?

    python benchmarks/crossfit_trial.py --variant gradient-dot
    python benchmarks/crossfit_trial.py --variant gradient-dot --rankings runs/family_trials/gradient-dot/shipped_seed0/rankings.csv --first-wave-weight 0.1

Why (BENCHMARKS.md §7.7): re-grading Stage 1's first wave with a later, in-sample network (``within_step="final"``)
sees the slow shortcut on gradient-dot but memorises the conflicting samples on the graded variants. Scoring each
sample with a network trained on the *other* folds cannot memorise it. Each fold's network is the benchmark's ERM
network (test_resnet, AdamW 1e-3, weight decay 0.05, batch 128, crop+flip); with ``--rankings`` the samples of that
ranking's first wave (``rank == 1``) are drawn at ``--first-wave-weight`` of the others' rate, so the network trains
mostly on what Stage 1 left (where the slow shortcut is still aligned), as ``retain_eliminated`` does. With
``--balance-waves`` each class's first wave and its remainder weigh the same: the fast shortcut is aligned in the one
and inverted in the other, so it predicts nothing, while the slow one is aligned in both.

Printed and appended to ``--out`` per epoch: tau-b (3 levels) of the held-out ``p_y`` order alone (``pure``), of
Stage 1's waves re-ordered inside by it (``lex``), and of both orders combined by mean position (``combined``);
``cum`` uses the mean held-out ``p_y`` over the epochs so far (no epoch to choose). Dev variants only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sebra.backbones import Classifier
from sebra.bench.family import family_config
from sebra.bench.presets import builtin_config
from sebra.cli.results import level_scores
from sebra.datasets.family import FamilyDataModule, variant
from sebra.export import load_rankings
from sebra.ranking import combine_rankings, order_table
from sebra.scoring import confidence_rankings, score_dataset
from sebra.utils.files import append_record


def folds_of(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A class-stratified fold number per sample (seeded)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % folds
    return fold


def tau3(table: pd.DataFrame, dataset) -> float:
    return round(float(level_scores(table, dataset, (3,))["kendall_tau_b_3"]), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rankings", default=None, help="a Stage 1 rankings.csv whose first wave is down-weighted"
    )
    p.add_argument("--first-wave-weight", type=float, default=1.0)
    p.add_argument(
        "--balance-waves",
        action="store_true",
        help="weight each class's first wave and the rest of it equally (the fast shortcut carries nothing)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/crossfit_trials.csv")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if variant(a.variant).role != "dev":
        raise SystemExit(
            f"crossfit_trial: {a.variant!r} is not a dev variant; trials run on dev variants only"
        )
    torch.set_num_threads(a.threads)
    cfg = family_config(builtin_config(), a.variant)
    dm = FamilyDataModule(**{**cfg["data"]["init_args"], "seed": a.seed})
    dm.setup("fit")
    train, evalds = dm.train_dataset, dm.train_eval_dataset
    labels, idx = train.labels.numpy(), evalds.indices.numpy()
    base = load_rankings(a.rankings) if a.rankings else None
    weights = np.ones(len(train))
    ranks = base.set_index("index").loc[idx, "rank"].to_numpy() if base is not None else None
    if ranks is not None and a.balance_waves:
        for c in np.unique(labels):
            for wave in (ranks == 1, ranks != 1):
                members = (labels == c) & wave
                weights[members] = 1.0 / max(1, int(members.sum()))
    elif ranks is not None:
        weights[ranks == 1] = a.first_wave_weight
    elif a.balance_waves:
        raise SystemExit("crossfit_trial: --balance-waves needs --rankings (the waves are Stage 1's)")
    fold = folds_of(labels, a.folds, a.seed)
    scores = np.zeros((a.epochs, len(train)))
    t0 = time.perf_counter()
    for k in range(a.folds):
        fit_pos, held_pos = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        torch.manual_seed(a.seed * 100 + k)
        net = Classifier("test_resnet", dm.num_classes)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
        gen = torch.Generator().manual_seed(a.seed * 100 + k)
        sampler = torch.utils.data.WeightedRandomSampler(
            torch.as_tensor(weights[fit_pos]), len(fit_pos), replacement=True, generator=gen
        )
        for e in range(a.epochs):
            net.train()
            for b in dm.loader(train.subset(fit_pos), batch_size=128, sampler=sampler):
                loss = F.cross_entropy(net(dm.batch_transform(b["image"], train=True)), b["label"])
                opt.zero_grad()
                loss.backward()
                opt.step()
            scores[e, held_pos] = score_dataset(net, dm, evalds.subset(held_pos)).numpy()
    seconds = time.perf_counter() - t0
    for e in range(a.epochs):
        for kind, s in (("epoch", scores[e]), ("cum", scores[: e + 1].mean(0))):
            pure = confidence_rankings(idx, labels, s)
            record = {
                "variant": a.variant,
                "seed": a.seed,
                "rankings": a.rankings or "",
                "first_wave_weight": "balanced" if a.balance_waves else a.first_wave_weight,
                "folds": a.folds,
                "epoch": e + 1,
                "scores": kind,
                "pure": tau3(pure, evalds),
                "seconds": round(seconds, 1),
            }
            if ranks is not None:
                lex = order_table(pd.DataFrame({"index": idx, "label": labels, "rank": ranks, "p_y": s}))
                record.update(
                    stage1=tau3(base, evalds),
                    lex=tau3(lex, evalds),
                    combined=tau3(combine_rankings([base, pure]), evalds),
                )
            print(json.dumps(record))
            append_record(a.out, record)


if __name__ == "__main__":
    main()

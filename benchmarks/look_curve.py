"""How the second look's separation of the slow shortcut's conflicting samples changes with its length.

Runs Stage 1 only (``rank_only``) of the shipped ``sebra`` on a family variant, with a second look of ``--epochs``
epochs, and records the look's ``p_y`` for every sample after each of its epochs. For each epoch it then prints
one JSON line: the look's wrong share on the first wave, and, within the first wave, the ROC AUC of a lower look
``p_y`` for B-only conflicting samples against aligned ones (that epoch alone, and the mean of its last 3 epochs,
which is what a look stopping there orders by), with that mean's recall and precision at 0.5. It reads the bias
labels, so it is an audit of the look, never an input to one (BENCHMARKS.md §7.16)::

    python benchmarks/look_curve.py --variant farm-tint-faintpatch --seed 0 --epochs 9
"""

from __future__ import annotations

import argparse
import json

import lightning as L
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import sebra.methods.sebra_stage1 as stage1
from sebra.bench.config import build_run, load_config
from sebra.bench.family import family_config


def _auc(p: np.ndarray, kind: np.ndarray, pool: np.ndarray) -> float | None:
    """AUC of a lower ``p`` for ``kind`` within ``pool`` (``None`` when one side is empty)."""
    k = kind[pool]
    return round(float(roc_auc_score(k, -p[pool])), 3) if 0 < k.sum() < len(k) else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=9, help="second-look epochs to run")
    ap.add_argument("--config", default="sebra/configs/builtin.yaml")
    ap.add_argument("--save", help="also write every epoch's look p_y and the audit masks to this .npz")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    snaps: list[np.ndarray] = []
    seen: dict[str, np.ndarray] = {}
    close = stage1.SelfGuidedRanking._close_second_look_step

    def record(self, host):  # the look's scores after each epoch, as the ranker computed them
        out = close(self, host)
        snaps.append(self.second_look_recent[-1].numpy().copy())
        seen["first"], seen["index"] = self._look_first.numpy().copy(), self.controller.indices.numpy().copy()
        return out

    stage1.SelfGuidedRanking._close_second_look_step = record
    sets = [
        "methods.sebra.model.init_args.rank_only=true",
        f"methods.sebra.model.init_args.second_look_epochs={args.epochs}",
    ]
    cfg = family_config(load_config(args.config, sets), args.variant)
    L.seed_everything(args.seed, workers=True, verbose=False)
    dm, module = build_run(cfg, "sebra", args.seed)
    trainer = L.Trainer(
        max_epochs=-1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    attrs = dm.train_dataset.attr_names
    rows = module.rankings.set_index("index").loc[seen["index"]]
    label = rows["label"].to_numpy()
    conf_a, conf_b = rows[attrs[0]].to_numpy() != label, rows[attrs[1]].to_numpy() != label
    first = seen["first"]
    b_only = first & conf_b & ~conf_a
    pool = first & (b_only | ~(conf_a | conf_b))
    if args.save:  # for reading other reduce rules offline, without training again
        np.savez_compressed(
            args.save, snaps=np.stack(snaps), first=first, b_only=b_only, pool=pool, index=seen["index"]
        )
    for e, p in enumerate(snaps):
        mean3 = np.mean(snaps[max(0, e - 2) : e + 1], axis=0)
        moved = first & (mean3 < 0.5)
        print(
            json.dumps(
                {
                    "variant": args.variant,
                    "seed": args.seed,
                    "epoch": e + 1,
                    "wrong_share": round(float((p[first] < 0.5).mean()), 4),
                    "auc_b": _auc(p, b_only, pool),
                    "auc_b_mean3": _auc(mean3, b_only, pool),
                    "mean3_recall_b": round(float((moved & b_only).sum() / max(b_only.sum(), 1)), 3),
                    "mean3_precision_b": round(float((moved & b_only).sum() / max(moved.sum(), 1)), 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Calibrate the built-in benchmark: core-task accuracy, ERM, the label-using reference, shortcut strengths.

    python benchmarks/calibrate_builtin.py --seeds 0 1 2 --out benchmarks/results/calibration_builtin.csv

* core: ERM on a variant whose training set has no shortcut correlation (1000 samples per cell and class),
  tested on the balanced test set — bounds what any method can reach;
* erm: plain ERM on the biased training set;
* oracle: group-balanced sampling (uses training group labels);
all with the same augmentation, AdamW + weight decay, model chosen on validation worst-group accuracy. The shortcut
strengths are ERM's test gaps: the attribute whose conflict costs more accuracy is the stronger one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from sebra.datasets.builtin import BuiltinDataModule, BuiltinSpec
from sebra.methods import ERMModule
from sebra.utils.files import atomic_write


class _CoreDataModule(BuiltinDataModule):
    """The built-in benchmark with shortcut-free training cells (1000 per cell and class)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.spec = BuiltinSpec(
            seed=self.spec.seed,
            tint=self.spec.tint,
            symbol=self.spec.symbol,
            ratio=0.5,
            counts_train=(1000, 1000, 1000, 1000),
        )


def run(kind: str, seed: int, epochs: int, root: Path, backbone: str, tint: float, symbol: float) -> dict:
    L.seed_everything(seed, verbose=False)
    cls = _CoreDataModule if kind == "core" else BuiltinDataModule
    dm = cls(root=str(root / ("core" if kind == "core" else "biased")), tint=tint, symbol=symbol)
    model = ERMModule(
        backbone=backbone,
        epochs=epochs,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        sampling="group_balanced" if kind == "oracle" else "uniform",
        seed=seed,
    )
    run_dir = root / "runs" / f"{kind}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a stale best checkpoint must not survive into this run
    trainer = L.Trainer(
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )
    t = time.time()
    trainer.fit(model, datamodule=dm)
    res = trainer.test(model, datamodule=dm, ckpt_path="best", verbose=False)[0]
    return {"kind": kind, "seed": seed, "seconds": time.time() - t, **res}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--kinds", nargs="+", default=["core", "erm", "oracle"])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--backbone", default="test_resnet")
    p.add_argument("--tint", type=float, default=BuiltinSpec.tint)
    p.add_argument("--symbol", type=float, default=BuiltinSpec.symbol)
    p.add_argument(
        "--root", default=os.environ.get("SEBRA_DATA", str(Path.home() / ".cache" / "sebra")) + "/calibration"
    )
    p.add_argument("--out", default="benchmarks/results/calibration_builtin.csv")
    a = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = [run(k, s, a.epochs, Path(a.root), a.backbone, a.tint, a.symbol) for k in a.kinds for s in a.seeds]
    df = pd.DataFrame(rows)
    keep = [
        "kind",
        "seed",
        "test_wga",
        "test_acc",
        "test_id_acc",
        "test_gap_a",
        "test_gap_b",
        "test_gap_both",
        "seconds",
    ]
    df = df[[c for c in keep if c in df.columns]]
    atomic_write(a.out, lambda tmp: df.to_csv(tmp, index=False))
    print(df.to_string(index=False))
    print(df.groupby("kind").mean(numeric_only=True).round(4).to_string())


if __name__ == "__main__":
    main()

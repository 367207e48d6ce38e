"""A toy benchmark config on the tiny data module, and a fake run that writes rows without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sebra.bench.run import run_dir
from sebra.bench.sweep import run_bench

CONFIG: dict[str, Any] = {
    "dataset": "toy",
    "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    "trainer": {"accelerator": "cpu"},
    "methods": {
        "erm": {
            "model": {
                "class_path": "sebra.methods.erm.ERMModule",
                "init_args": {"backbone": "test_resnet", "epochs": 3},
            },
            "bench": {"confidence_ranker": {"budget_from": "sebra"}},
        },
        "jtt": {
            "model": {
                "class_path": "sebra.methods.jtt.JTTModule",
                "init_args": {"backbone": "test_resnet", "id_epochs": 1, "epochs": 1, "upweight": 4},
            }
        },
        "groupdro": {
            "model": {
                "class_path": "sebra.methods.group_dro.GroupDROModule",
                "init_args": {"backbone": "test_resnet", "epochs": 1, "eta": 0.1},
            }
        },
        "sebra": {
            "model": {
                "class_path": "sebra.methods.sebra.SebraModule",
                "init_args": {
                    "backbone": "test_resnet",
                    "max_steps": 2,
                    "epochs": 1,
                    "gap": 1,
                    "rank_lr": 0.01,
                },
            }
        },
        "oracle": {
            "model": {
                "class_path": "sebra.methods.erm.ERMModule",
                "init_args": {"backbone": "test_resnet", "epochs": 1, "sampling": "group_balanced"},
            }
        },
    },
}


class FakeRun:
    """Stands in for run_one: records calls, returns rows derived from (method, seed), optionally dies."""

    def __init__(self, die_at: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.die_at = die_at

    def __call__(self, cfg: dict, method: str, seed: int, runs_dir: Path, dataset: str) -> list[dict]:
        if self.die_at is not None and len(self.calls) == self.die_at:
            raise KeyboardInterrupt
        self.calls.append((method, seed))
        rows = {"worst_group_acc": 10.0 * seed + len(method), "avg_acc": 90.0, "seconds": 60.0}
        out = []
        if method == "sebra":
            rows.update(
                kendall_tau_b=0.5,
                weighted_tau=0.6,
                kendall_tau_b_3=0.4,
                weighted_tau_3=0.45,
                rank_optimizer_steps=5.0 + seed,
                rank_seconds=7.0,
            )
        if method == "jtt":
            out += [
                {"method": "jtt_error_set", "seed": seed, "metric": k, "value": v}
                for k, v in {"kendall_tau_b": 0.3, "weighted_tau": 0.2, "seconds": 3.0}.items()
            ]
        if method == "erm":
            d = run_dir(runs_dir, dataset, method, seed)
            d.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {
                    "epoch": [1, 2, 3],
                    "step": [2, 4, 6],
                    "seconds": [1.0, 2.0, 3.0],
                    "kendall_tau_b": [0.1, 0.9, 0.2],
                    "weighted_tau": [0.1, 0.8, 0.2],
                    "kendall_tau_b_3": [0.3, 0.2, 0.1],
                    "weighted_tau_3": [0.3, 0.2, 0.1],
                }
            ).to_csv(d / "confidence_quality.csv", index=False)
        return [{"method": method, "seed": seed, "metric": k, "value": v} for k, v in rows.items()] + out


def sweep(cfg: dict, tmp_path: Path, run_fn, methods=("erm", "jtt", "sebra"), seeds=(0, 1)) -> pd.DataFrame:
    """``run_bench`` into ``tmp_path`` (res.csv, rank.csv, runs/), no progress bar."""
    return run_bench(
        cfg,
        list(methods),
        list(seeds),
        out=tmp_path / "res.csv",
        ranking_out=tmp_path / "rank.csv",
        runs_dir=tmp_path / "runs",
        dataset="toy",
        run_fn=run_fn,
        progress=False,
    )


def no_duplicates(df: pd.DataFrame) -> None:
    """Each (method, seed, metric) once."""
    assert not df.duplicated(["method", "seed", "metric"]).any()

"""Reference rankers for the ranking table, scored against the true spuriosity levels.

The ranking tables themselves are core (:mod:`sebra.scoring`: ERM confidence, JTT's error set); this module is what
the benchmark adds around them:

* **ERM confidence per epoch**: :class:`ConfidenceRecorder` scores the training set after every epoch; the benchmark
  reads it at Sebra's Stage 1 budget (the same number of optimizer steps: :func:`record_at_budget`,
  :func:`same_budget_rows`) and at its best epoch (:func:`best_record`, :func:`best_epoch_values`: the epoch whose
  ranking has the best tau-b against the true levels; it peeks at bias labels, so it is an **upper reference**, not
  a method).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from sebra.bench.store import result_rows
from sebra.cli.results import level_scores
from sebra.datasets.base import ImageDataset
from sebra.scoring import confidence_rankings, score_dataset

__all__ = [
    "TAU_METRICS",
    "ConfidenceRecorder",
    "best_epoch_values",
    "best_record",
    "record_at_budget",
    "record_quality",
    "same_budget_rows",
]

TAU_METRICS = ("kendall_tau_b", "weighted_tau", "kendall_tau_b_3", "weighted_tau_3")


class ConfidenceRecorder(Callback):
    """Scores the training set (``dm.train_eval_dataset``, eval mode) at the end of every training epoch.

    Each record holds ``epoch`` (1-based), ``step`` (optimizer steps so far), ``seconds`` (training time so far,
    without validation and without this callback's scoring, plus one scoring pass: what this ranking cost) and
    ``p_y``. :meth:`frame` lays the records out as a long table (``epoch, step, seconds, index, label, p_y``).
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.scoring_seconds = 0.0  # total time spent scoring (what the recorder adds to the run)
        self.indices: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self._start = 0.0
        self._excluded = 0.0
        self._val_start: float | None = None

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._excluded = time.perf_counter(), 0.0

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            self._excluded += time.perf_counter() - self._val_start
            self._val_start = None

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        t0 = time.perf_counter()
        p_y = score_dataset(
            pl_module, dm, device=pl_module.device, forward_context=trainer.precision_plugin.forward_context
        )
        scoring = time.perf_counter() - t0
        trained = t0 - self._start - self._excluded
        self._excluded += scoring
        self.scoring_seconds += scoring
        if self.indices is None:
            self.indices, self.labels = (
                dm.train_eval_dataset.indices.clone(),
                dm.train_eval_dataset.labels.clone(),
            )
        self.records.append(
            {
                "epoch": trainer.current_epoch + 1,
                "step": int(trainer.global_step),
                "seconds": trained + scoring,
                "p_y": p_y,
            }
        )

    def rankings(self, record: dict[str, Any]) -> pd.DataFrame:
        """The confidence rankings of one recorded epoch."""
        return confidence_rankings(self.indices, self.labels, record["p_y"])

    def frame(self) -> pd.DataFrame:
        """Every recorded epoch's p_y as one long table (index, label, epoch, p_y)."""
        parts = [
            pd.DataFrame(
                {
                    "epoch": r["epoch"],
                    "step": r["step"],
                    "seconds": r["seconds"],
                    "index": self.indices.numpy(),
                    "label": self.labels.numpy(),
                    "p_y": r["p_y"].numpy(),
                }
            )
            for r in self.records
        ]
        cols = ["epoch", "step", "seconds", "index", "label", "p_y"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

    @staticmethod
    def records_from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Records back from :meth:`frame`'s table (as read from CSV), each with its ``index`` and ``label``."""
        out = []
        for epoch, sub in frame.groupby("epoch", sort=True):
            out.append(
                {
                    "epoch": int(epoch),
                    "step": int(sub["step"].iloc[0]),
                    "seconds": float(sub["seconds"].iloc[0]),
                    "index": torch.from_numpy(np.array(sub["index"], dtype=np.int64)),
                    "label": torch.from_numpy(np.array(sub["label"], dtype=np.int64)),
                    "p_y": torch.from_numpy(np.array(sub["p_y"], dtype=np.float64)),
                }
            )
        return out


def record_at_budget(records: Sequence[dict[str, Any]], steps: int) -> dict[str, Any]:
    """The record whose optimizer step count is closest to ``steps`` (the earlier one on a tie).

    With ERM and Sebra's Stage 1 at the same batch size and ``draws_per_step`` = training-set size, one ranking step
    is one epoch's worth of optimizer steps and the match is exact; otherwise the nearest epoch end is used (the
    benchmark reports both step counts).
    """
    if not records:
        raise ValueError("record_at_budget: no records (was the recorder attached to a fit?)")
    return min(records, key=lambda r: (abs(int(r["step"]) - int(steps)), int(r["step"])))


def best_record(records: Sequence[dict[str, Any]], score: Any) -> tuple[dict[str, Any], float]:
    """``(record, value)`` maximising ``score(record)`` (NaN never wins; the earlier record on a tie)."""
    best, best_v = None, -np.inf
    for r in records:
        v = float(score(r))
        if not np.isnan(v) and v > best_v:
            best, best_v = r, v
    if best is None:
        raise ValueError("best_record: every record scored NaN (does each class hold more than one level?)")
    return best, best_v


def record_quality(recorder: ConfidenceRecorder, train: ImageDataset) -> pd.DataFrame:
    """Per recorded epoch: ``epoch, step, seconds`` and the tau values of its confidence ranking."""
    rows = []
    for r in recorder.records:
        rows.append(
            {
                "epoch": r["epoch"],
                "step": r["step"],
                "seconds": r["seconds"],
                **level_scores(recorder.rankings(r), train),
            }
        )
    return pd.DataFrame(rows)


def best_epoch_values(quality: pd.DataFrame) -> dict[str, float]:
    """The best recorded epoch per level scheme present (a data set with one or three bias attributes has only the
    3-level scores); ``rank_optimizer_steps`` and ``seconds`` of the first scheme's best epoch."""
    records = quality.to_dict("records")
    out: dict[str, float] = {}
    for suffix in ("", "_3"):
        key = f"kendall_tau_b{suffix}"
        if key not in quality.columns:
            continue
        rec, _ = best_record(records, lambda r, key=key: r[key])
        out[f"kendall_tau_b{suffix}"] = rec[f"kendall_tau_b{suffix}"]
        out[f"weighted_tau{suffix}"] = rec[f"weighted_tau{suffix}"]
        out[f"best_epoch{suffix}"] = float(rec["epoch"])
        if "rank_optimizer_steps" not in out:
            out["rank_optimizer_steps"] = float(rec["step"])
            out["seconds"] = float(rec["seconds"])
    return out


def same_budget_rows(quality: pd.DataFrame, method: str, seed: int, budget: float) -> list[dict[str, Any]]:
    """``<method>_conf_same_budget`` rows: the recorded epoch closest to ``budget`` optimizer steps."""
    rec = record_at_budget(quality.to_dict("records"), round(budget))
    values = {k: rec[k] for k in TAU_METRICS if k in rec}  # the schemes the data set's attributes allow
    values.update(
        epoch=float(rec["epoch"]),
        rank_optimizer_steps=float(rec["step"]),
        budget_steps=float(budget),
        seconds=float(rec["seconds"]),
    )
    return result_rows(f"{method}_conf_same_budget", seed, values)

"""One benchmark run: fit and test one (method, seed) and return its result rows.

Each run builds the data module and the method's module from the config (:func:`~sebra.bench.config.build_run`),
seeds (``lightning.seed_everything(seed)`` and the module's ``seed`` argument), fits with a quiet Trainer (no progress
bars, no model summary, a CSVLogger under the runs folder), tests the checkpoint the module's selection rule kept
(and, for ``bench.also_select``, the checkpoints other rules kept), and returns rows ``method,seed,metric,value``.

Metrics (accuracies and gaps x100, from :class:`~sebra.metrics.GroupAccuracy` on the test split): ``worst_group_acc``,
``avg_acc`` (plain test accuracy; on a group-balanced test set it equals the group mean), ``id_acc``, ``gap_a``,
``gap_b``, ``gap_both``, ``gap_mean``, ``seconds`` (wall time of fit + test; for a method with a confidence ranker
it includes the per-epoch scoring, reported as ``ranker_scoring_seconds``). A method adds what its
:meth:`~sebra.methods.base.BaseMethod.extra_metrics` reports, and every ranking its
:meth:`~sebra.methods.base.BaseMethod.produced_rankings` returns is scored (:func:`~sebra.cli.results.level_scores`:
``kendall_tau_b``, ``weighted_tau`` for 4 levels, ``kendall_tau_b_3``, ``weighted_tau_3`` for 3):

* its own ranking (Sebra's Stage 1) on its own row, with ``rank_optimizer_steps`` and ``rank_seconds`` (the cost of
  the epochs the module marks as not selectable: :class:`PhaseMeter`);
* any other as ``<method>_<suffix>`` (JTT's error set: ``jtt_error_set``; with two classes an error is
  ``p_y < 0.5``, so with ``p_y`` order inside a level it equals the identification network's confidence ranking).

A method with ``bench.confidence_ranker`` (``erm``) also gets ``<method>_conf_best_epoch`` (ERM-confidence rankings
at the epoch with the best tau-b: an upper reference, it peeks at the true levels); the per-epoch qualities are kept
in ``confidence_quality.csv`` for the same-budget rows the sweep derives (:mod:`sebra.bench.sweep`).
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from sebra.bench.config import build_run
from sebra.bench.store import result_rows
from sebra.cli.console import quiet_lightning
from sebra.cli.results import TEST_METRICS, level_scores
from sebra.methods import SelectionCheckpoint
from sebra.methods.checkpoints import is_module_checkpoint
from sebra.utils.files import atomic_write

__all__ = ["AlsoSelectCheckpoint", "PhaseMeter", "run_dir", "run_one"]


class PhaseMeter(Callback):
    """Measures the epochs a module marks as not selectable (Sebra's Stage 1, JTT's identification): optimizer
    steps (training batches), epochs and seconds (validation excluded; work the module does in its own
    ``on_train_epoch_end``, e.g. Stage 1 scoring or JTT's error-set pass, included: an epoch lasts until the next
    one starts)."""

    def __init__(self) -> None:
        self.steps = self.epochs = 0
        self.seconds = 0.0
        self._t: float | None = None
        self._val = 0.0
        self._val_t: float | None = None
        self._batches = 0
        self._selectable: bool | None = None

    def _close(self) -> None:
        if self._t is not None and self._selectable is False:
            self.seconds += time.perf_counter() - self._t - self._val
            self.steps += self._batches
            self.epochs += 1
        self._t = None

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._close()
        self._t, self._val, self._batches, self._selectable = time.perf_counter(), 0.0, 0, None

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if (
            self._selectable is None
        ):  # read here: modules fix it in their own on_train_epoch_start, after ours
            self._selectable = bool(getattr(pl_module, "selectable", True))
        self._batches += 1

    @override
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._val_t = time.perf_counter()

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._val_t is not None:
            self._val += time.perf_counter() - self._val_t
            self._val_t = None

    @override
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()


class AlsoSelectCheckpoint(SelectionCheckpoint):
    """A second checkpoint callback keeping the best epoch under another selection rule (e.g. ``val_acc``, which uses
    no group labels), so one run reports both protocols. A subclass of the module's own
    :class:`~sebra.methods.base.SelectionCheckpoint`, so Lightning keeps it beside that one."""

    @classmethod
    def for_rule(cls, rule: str) -> AlsoSelectCheckpoint:
        """The callback for one rule: ``val_acc``/``val_wga`` (best epoch by that metric) or ``last``."""
        if rule == "last":
            return cls(monitor=None, save_last=False, filename="also-last-{epoch}")
        return cls(
            monitor=rule,
            mode="max",
            save_top_k=1,
            filename=f"also-{rule}-{{epoch}}",
            auto_insert_metric_name=False,
        )


def run_dir(runs_dir: str | Path, dataset: str, method: str, seed: int) -> Path:
    """Where a run's logs, checkpoints and per-sample files go."""
    return Path(runs_dir) / dataset / method / f"seed{seed}"


def _test_values(module: Any, dm: Any = None) -> dict[str, float]:
    """The test metrics in %; a data module with ``report_metrics(test_results)`` adds its own (Colored MNIST's
    ``unbiased_acc`` and ``conflicting_acc``)."""
    res = getattr(module, "test_results", {}) or {}
    out = {name: 100.0 * float(res.get(f"test_{key}", float("nan"))) for name, key in TEST_METRICS.items()}
    report = getattr(dm, "report_metrics", None)
    if callable(report):
        out.update(report(res))
    return out


def run_one(
    cfg: dict[str, Any], method: str, seed: int, runs_dir: str | Path, dataset: str
) -> list[dict[str, Any]]:
    """Fit and test one (method, seed); return its result rows (the method's own and its rankers')."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from sebra.bench.rankers import ConfidenceRecorder, best_epoch_values, record_quality

    t0 = time.perf_counter()
    m = cfg["methods"][method]
    out_dir = run_dir(runs_dir, dataset, method, seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # an unfinished earlier attempt: start clean
    with quiet_lightning(own_messages=False):  # many runs in one log: no per-step messages
        L.seed_everything(seed, workers=True, verbose=False)
        dm, module = build_run(cfg, method, seed)
        meter = PhaseMeter()
        callbacks = [meter]
        recorder = ConfidenceRecorder() if m["bench"]["confidence_ranker"] is not None else None
        if recorder is not None:
            callbacks.append(recorder)
        also = {
            rule: AlsoSelectCheckpoint.for_rule(rule)
            for rule in m["bench"]["also_select"]
            if rule != module.selection
        }
        callbacks += list(also.values())
        trainer_args = {
            "max_epochs": -1,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 10,
            **cfg["trainer"],
            **m["trainer"],
        }
        trainer = L.Trainer(
            logger=CSVLogger(out_dir.parent.parent, name=method, version=f"seed{seed}"),
            default_root_dir=str(out_dir),
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
            **trainer_args,
        )
        trainer.fit(module, datamodule=dm)
        rows: list[dict[str, Any]] = []
        # Read every best path before testing: loading a checkpoint restores the callbacks' state saved in it.
        ckpt = next(
            (
                c
                for c in trainer.checkpoint_callbacks
                if isinstance(c, SelectionCheckpoint) and is_module_checkpoint(c)
            ),
            None,
        )
        best = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
        also_best = {rule: cb.best_model_path for rule, cb in also.items()}
        for rule, path in also_best.items():  # the same run under another selection rule, tested first
            if path:
                trainer.test(module, datamodule=dm, ckpt_path=path, verbose=False)
                rows += result_rows(f"{method}_{rule}", seed, _test_values(module, dm))
        if best:
            trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)
        else:
            warnings.warn(
                f"bench: {method} seed {seed} saved no checkpoint; testing the final weights", stacklevel=2
            )
            trainer.test(module, datamodule=dm, verbose=False)
    values = _test_values(module, dm)
    train = dm.train_dataset
    extra = module.extra_metrics()
    rankings = module.produced_rankings()
    if "" in rankings:
        values.update(level_scores(rankings[""], train))
    values.update(extra)
    if "" in rankings:
        values.update(rank_optimizer_steps=float(meter.steps), rank_seconds=meter.seconds)
    for suffix, rk in rankings.items():
        if suffix:
            phase = {"rank_optimizer_steps": float(meter.steps), "seconds": meter.seconds}
            rows += result_rows(f"{method}_{suffix}", seed, {**level_scores(rk, train), **extra, **phase})
    if recorder is not None and recorder.records:
        quality = record_quality(recorder, train)
        atomic_write(out_dir / "confidence_quality.csv", lambda tmp: quality.to_csv(tmp, index=False))
        frame = recorder.frame()
        atomic_write(
            out_dir / "confidence_by_epoch.csv",
            lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"),
        )
        rows += result_rows(f"{method}_conf_best_epoch", seed, best_epoch_values(quality))
        values["ranker_scoring_seconds"] = recorder.scoring_seconds  # included in this run's seconds
    values["seconds"] = time.perf_counter() - t0
    return result_rows(method, seed, values) + rows

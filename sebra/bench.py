"""``sebra bench``: run methods x seeds on one data set from a YAML config, append tidy results, resume when killed.

    sebra bench --dataset builtin --methods erm,jtt,groupdro,sebra,oracle --seeds 3
        [--config sebra/configs/builtin.yaml] [--out benchmarks/results/builtin.csv]

Each (method, seed) *run* builds the data module and the method's LightningModule from the config, seeds
(``lightning.seed_everything(seed)`` and the module's ``seed`` argument), fits with a quiet Trainer (no progress bars,
no model summary, a CSVLogger under ``--runs-dir``), tests the checkpoint the module's selection rule kept, and appends
its rows ``method,seed,metric,value`` to the results CSV in **one atomic replace**. A run counts as finished when its
``seconds`` row is there; a re-run skips finished runs and redoes the others (dropping any leftover rows of theirs),
so a killed sweep is completed, never duplicated. Two sweeps must not write the same results file at once.

Metrics (accuracies and gaps x100, from :class:`~sebra.metrics.GroupAccuracy` on the test split): ``worst_group_acc``,
``avg_acc`` (plain test accuracy; on a group-balanced test set it equals the group mean), ``id_acc``, ``gap_a``,
``gap_b``, ``gap_both``, ``gap_mean``, ``seconds`` (wall time of fit + test; for a method with a confidence
ranker it includes the per-epoch scoring, reported as ``ranker_scoring_seconds``). Rankers add ``kendall_tau_b`` and
``weighted_tau`` (4 levels) and ``kendall_tau_b_3``, ``weighted_tau_3`` (3 levels):

* ``sebra``: its Stage 1 ranking, plus ``rank_steps``, ``rank_optimizer_steps``, ``rank_seconds`` (Stage 1 cost).
* ``<m>_error_set`` for a JTT method ``m`` (``jtt_error_set``): the error set read as a two-level ranking (with two
  classes an error is ``p_y < 0.5``, so with ``p_y`` order inside a level it equals the identification network's
  confidence ranking after ``id_epochs``).
* ``<m>_conf_best_epoch`` / ``<m>_conf_same_budget`` for a method with ``confidence_ranker`` in its config (``erm``):
  ERM-confidence rankings at the epoch with the best tau-b (an upper reference: it peeks at the true levels) and at
  the epoch end closest to the Stage 1 optimizer-step budget of the method named by ``budget_from`` (``sebra``, same
  seed; derived as soon as both runs are finished) or to a fixed ``budget_steps``.

The ranking table ``ranking_<dataset>.csv`` (``method,seed,levels,kendall_tau_b,weighted_tau,seconds``) is rewritten
from the results file after every run, so the two never disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from lightning.pytorch.callbacks import Callback

from sebra.methods.base import SelectionCheckpoint
from sebra.utils.files import atomic_write, read_csv_file

__all__ = [
    "COLUMNS",
    "RANKING_COLUMNS",
    "BenchError",
    "completed_runs",
    "load_config",
    "main",
    "parse_seeds",
    "ranking_table",
    "run_bench",
    "run_one",
    "write_run_rows",
]

COLUMNS = ("method", "seed", "metric", "value")
RANKING_COLUMNS = ("method", "seed", "levels", "kendall_tau_b", "weighted_tau", "seconds")
#: results metric -> key of the test metrics :class:`~sebra.methods.base.BaseMethod` logs (``test_<key>``).
TEST_METRICS = {
    "worst_group_acc": "wga",
    "avg_acc": "acc",
    "id_acc": "id_acc",
    "gap_a": "gap_a",
    "gap_b": "gap_b",
    "gap_both": "gap_both",
    "gap_mean": "gap_mean",
}
TAU_METRICS = ("kendall_tau_b", "weighted_tau", "kendall_tau_b_3", "weighted_tau_3")
DONE_METRIC = "seconds"
_RUN_KEYS = {"class_path", "init_args", "data", "trainer", "confidence_ranker", "also_select"}
_TOP_KEYS = {"dataset", "data", "trainer", "methods"}


class BenchError(ValueError):
    """A benchmark config or results file is not as expected (the message names the file and field)."""


# ---------------------------------------------------------------------------------------------------------- config
def _import(class_path: str, where: str) -> type:
    module, _, name = str(class_path).rpartition(".")
    if not module:
        raise BenchError(
            f"{where}: class_path {class_path!r} is not a dotted path like 'sebra.methods.erm.ERMModule'"
        )
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise BenchError(f"{where}: class_path {class_path!r} cannot be imported: {e}") from e


def default_config(dataset: str) -> Path:
    """The packaged benchmark config of a data set (``sebra/configs/<dataset>.yaml``)."""
    return Path(__file__).parent / "configs" / f"{dataset}.yaml"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a benchmark config.

    Layout::

        dataset: builtin                 # optional; must match --dataset when given
        data: {class_path: ..., init_args: {...}}
        trainer: {accelerator: auto, precision: 32-true, ...}        # Trainer kwargs shared by every run
        methods:
          <name>:
            class_path: sebra.methods.erm.ERMModule
            init_args: {...}             # the module's arguments (``seed`` is set per run)
            data: {...}                  # optional overrides of data.init_args for this method
            trainer: {...}               # optional overrides of trainer
            confidence_ranker: {budget_from: sebra, budget_steps: null}   # optional (ERM-confidence rankings)

    Raises:
        FileNotFoundError: no such file.
        BenchError: a section or field is missing or of the wrong type (named with the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark config {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BenchError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise BenchError(f"{path}: expected a mapping with {sorted(_TOP_KEYS)}, got {type(cfg).__name__}")
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise BenchError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    for key in ("data", "methods"):
        if not isinstance(cfg.get(key), dict) or not cfg[key]:
            raise BenchError(f"{path}: '{key}' must be a non-empty mapping")
    if "class_path" not in cfg["data"]:
        raise BenchError(f"{path}: data.class_path is missing")
    cfg["data"].setdefault("init_args", {})
    cfg["trainer"] = dict(cfg.get("trainer") or {})
    for name, m in cfg["methods"].items():
        where = f"{path}: methods.{name}"
        if not isinstance(m, dict) or "class_path" not in m:
            raise BenchError(f"{where}.class_path is missing")
        bad = set(m) - _RUN_KEYS
        if bad:
            raise BenchError(f"{where}: unknown key(s) {sorted(bad)}; expected {sorted(_RUN_KEYS)}")
        for key in ("init_args", "data", "trainer"):
            m[key] = dict(m.get(key) or {})
        if "seed" in m["init_args"]:
            raise BenchError(f"{where}.init_args.seed is set per run from --seeds; remove it")
        also = m.get("also_select")
        if also is not None:
            also = [also] if isinstance(also, str) else also
            if not isinstance(also, list) or not set(also) <= {"val_acc", "val_wga", "last"}:
                raise BenchError(
                    f"{where}.also_select must be a list of val_acc / val_wga / last, got {also!r}"
                )
            m["also_select"] = also
        ranker = m.get("confidence_ranker")
        if ranker is not None:
            if ranker is True:
                ranker = {}
            if not isinstance(ranker, dict) or set(ranker) - {"budget_from", "budget_steps"}:
                raise BenchError(
                    f"{where}.confidence_ranker must be a mapping with budget_from and/or budget_steps, "
                    f"got {ranker!r}"
                )
            src = ranker.get("budget_from")
            if src is not None and src not in cfg["methods"]:
                raise BenchError(
                    f"{where}.confidence_ranker.budget_from {src!r} is not a method of this config"
                )
            m["confidence_ranker"] = ranker
    cfg["_path"] = str(path)
    return cfg


def selection_rules(cfg: dict[str, Any]) -> dict[str, str]:
    """Each method's ``selection`` (its init argument, else the class default)."""
    out = {}
    for name, m in cfg["methods"].items():
        sel = m["init_args"].get("selection")
        if sel is None:
            try:
                sel = (
                    inspect.signature(_import(m["class_path"], f"methods.{name}"))
                    .parameters["selection"]
                    .default
                )
            except (KeyError, BenchError):
                sel = "?"
        out[name] = str(sel)
    return out


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,5,7"`` (or ``"4,"``) -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise BenchError(
            f"--seeds must be a count (3 -> 0,1,2) or a comma list (0,5,7), got {text!r}"
        ) from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise BenchError(f"--seeds lists a seed twice or none: {text!r}")
    return seeds


# ---------------------------------------------------------------------------------------------------------- one run
@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """No Lightning info lines (GPU available, tips) and none of its 'possible user' warnings; real warnings stay."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*will override existing callbacks.*")
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


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

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._close()
        self._t, self._val, self._batches, self._selectable = time.perf_counter(), 0.0, 0, None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if (
            self._selectable is None
        ):  # read here: modules fix it in their own on_train_epoch_start, after ours
            self._selectable = bool(getattr(pl_module, "selectable", True))
        self._batches += 1

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._val_t = time.perf_counter()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._val_t is not None:
            self._val += time.perf_counter() - self._val_t
            self._val_t = None

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()


class AlsoSelectCheckpoint(SelectionCheckpoint):
    """A second checkpoint callback keeping the best epoch under another selection rule (e.g. ``val_acc``, which uses
    no group labels), so one run reports both protocols. A subclass of the module's own
    :class:`~sebra.methods.base.SelectionCheckpoint`, so Lightning keeps it beside that one."""

    @classmethod
    def for_rule(cls, rule: str) -> AlsoSelectCheckpoint:
        if rule == "last":
            return cls(monitor=None, save_last=False, filename="also-last-{epoch}")
        return cls(
            monitor=rule,
            mode="max",
            save_top_k=1,
            filename=f"also-{rule}-{{epoch}}",
            auto_insert_metric_name=False,
        )


def _build(cfg: dict[str, Any], method: str, seed: int) -> tuple[Any, Any]:
    m = cfg["methods"][method]
    where = f"{cfg.get('_path', 'config')}: methods.{method}"
    data_cls = _import(cfg["data"]["class_path"], f"{cfg.get('_path', 'config')}: data")
    module_cls = _import(m["class_path"], where)
    data_args = {**cfg["data"]["init_args"], **m["data"]}
    if "seed" in inspect.signature(data_cls).parameters and "seed" not in data_args:
        data_args["seed"] = seed  # the data module's own draws (batch augmentation) follow the run seed
    init_args = dict(m["init_args"])
    if "seed" in inspect.signature(module_cls).parameters:
        init_args["seed"] = seed
    try:
        dm = data_cls(**data_args)
    except TypeError as e:
        raise BenchError(
            f"{where}: data arguments {sorted(data_args)} do not fit {data_cls.__name__}: {e}"
        ) from e
    try:
        module = module_cls(**init_args)
    except TypeError as e:
        raise BenchError(f"{where}.init_args do not fit {module_cls.__name__}: {e}") from e
    return dm, module


def run_dir(runs_dir: str | Path, dataset: str, method: str, seed: int) -> Path:
    """Where a run's logs, checkpoints and per-sample files go."""
    return Path(runs_dir) / dataset / method / f"seed{seed}"


def _rows(method: str, seed: int, values: dict[str, float]) -> list[dict[str, Any]]:
    return [{"method": method, "seed": int(seed), "metric": k, "value": float(v)} for k, v in values.items()]


def run_one(
    cfg: dict[str, Any], method: str, seed: int, runs_dir: str | Path, dataset: str
) -> list[dict[str, Any]]:
    """Fit and test one (method, seed); return its result rows (the method's own and its rankers')."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from sebra.methods.jtt import JTTModule
    from sebra.methods.sebra import SebraModule
    from sebra.rankers import ConfidenceRecorder, best_record, error_set_rankings, level_scores

    t0 = time.perf_counter()
    m = cfg["methods"][method]
    out_dir = run_dir(runs_dir, dataset, method, seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # an unfinished earlier attempt: start clean
    with quiet_lightning():
        L.seed_everything(seed, workers=True, verbose=False)
        dm, module = _build(cfg, method, seed)
        meter = PhaseMeter()
        callbacks = [meter]
        recorder = ConfidenceRecorder() if m.get("confidence_ranker") is not None else None
        if recorder is not None:
            callbacks.append(recorder)
        also = {
            rule: AlsoSelectCheckpoint.for_rule(rule)
            for rule in m.get("also_select") or ()
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
        ckpt = next((c for c in trainer.checkpoint_callbacks if type(c) is SelectionCheckpoint), None)
        best = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
        also_best = {rule: cb.best_model_path for rule, cb in also.items()}
        for rule, path in also_best.items():  # the same run under another selection rule, tested first
            if path:
                trainer.test(module, datamodule=dm, ckpt_path=path, verbose=False)
                res = getattr(module, "test_results", {}) or {}
                rows += _rows(
                    f"{method}_{rule}",
                    seed,
                    {
                        name: 100.0 * float(res.get(f"test_{key}", float("nan")))
                        for name, key in TEST_METRICS.items()
                    },
                )
        if best:
            trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)
        else:
            warnings.warn(
                f"bench: {method} seed {seed} saved no checkpoint; testing the final weights", stacklevel=2
            )
            trainer.test(module, datamodule=dm, verbose=False)
    res = getattr(module, "test_results", {}) or {}
    values = {name: 100.0 * float(res.get(f"test_{key}", float("nan"))) for name, key in TEST_METRICS.items()}
    train = dm.train_dataset
    if isinstance(module, SebraModule) and module.rankings is not None:
        values.update(level_scores(module.rankings, train))
        ctl = module.controller
        values.update(
            rank_steps=float(ctl.step if ctl is not None else float("nan")),
            rank_optimizer_steps=float(meter.steps),
            rank_seconds=meter.seconds,
        )
    if isinstance(module, JTTModule) and module.id_scores is not None:
        n_err = float(len(module.error_set))
        values["error_set_size"] = n_err
        rk = error_set_rankings(module.id_scores)
        rows += _rows(
            f"{method}_error_set",
            seed,
            {
                **level_scores(rk, train),
                "error_set_size": n_err,
                "rank_optimizer_steps": float(meter.steps),
                "seconds": meter.seconds,
            },
        )
    if recorder is not None and recorder.records:
        quality = _record_quality(recorder, train, level_scores)
        atomic_write(out_dir / "confidence_quality.csv", lambda tmp: quality.to_csv(tmp, index=False))
        frame = recorder.frame()
        atomic_write(
            out_dir / "confidence_by_epoch.csv",
            lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"),
        )
        rows += _rows(f"{method}_conf_best_epoch", seed, _best_epoch_values(quality, best_record))
        values["ranker_scoring_seconds"] = recorder.scoring_seconds  # included in this run's seconds
    values["seconds"] = time.perf_counter() - t0
    return _rows(method, seed, values) + rows


def _record_quality(recorder: Any, train: Any, level_scores: Callable) -> pd.DataFrame:
    """Per recorded epoch: ``epoch, step, seconds`` and the four tau values."""
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


def _best_epoch_values(quality: pd.DataFrame, best_record: Callable) -> dict[str, float]:
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
    from sebra.rankers import record_at_budget

    rec = record_at_budget(quality.to_dict("records"), round(budget))
    values = {k: rec[k] for k in TAU_METRICS if k in rec}  # the schemes the data set's attributes allow
    values.update(
        epoch=float(rec["epoch"]),
        rank_optimizer_steps=float(rec["step"]),
        budget_steps=float(budget),
        seconds=float(rec["seconds"]),
    )
    return _rows(f"{method}_conf_same_budget", seed, values)


# ---------------------------------------------------------------------------------------------------------- files
def read_results(path: str | Path) -> pd.DataFrame:
    """The results CSV (empty frame when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("object", "int64", "object", "float64"))}
        )
    df = read_csv_file(
        path, "the header method,seed,metric,value and one row per result", BenchError, kind="results file"
    )
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BenchError(f"{path}: results file lacks the column(s) {missing}; expected {list(COLUMNS)}")
    seeds = pd.to_numeric(df["seed"], errors="coerce")
    if seeds.isna().any():
        i = int(seeds.isna().to_numpy().argmax())
        raise BenchError(
            f"{path}: column 'seed' holds {df['seed'].iloc[i]!r} on line {i + 2}; expected an integer"
        )
    df["seed"] = seeds.astype("int64")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["method"] = df["method"].astype(str)
    df["metric"] = df["metric"].astype(str)
    return df[list(COLUMNS)]


def completed_runs(results: pd.DataFrame) -> set[tuple[str, int]]:
    """(method, seed) pairs whose ``seconds`` row is present: finished runs."""
    done = results[results["metric"] == DONE_METRIC]
    return {(str(m), int(s)) for m, s in zip(done["method"], done["seed"])}


def owned_methods(cfg: dict[str, Any], method: str) -> set[str]:
    """Result method names a run of ``method`` writes or invalidates (its rankers, and same-budget rows using it)."""
    names = {
        method,
        f"{method}_error_set",
        f"{method}_conf_best_epoch",
        f"{method}_conf_same_budget",
        *(f"{method}_{rule}" for rule in ("val_acc", "val_wga", "last")),
    }
    for name, m in cfg["methods"].items():
        if (m.get("confidence_ranker") or {}).get("budget_from") == method:
            names.add(f"{name}_conf_same_budget")
    return names


def _write(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g"))


def write_run_rows(
    path: str | Path, rows: Sequence[dict[str, Any]], drop: set[str], seed: int
) -> pd.DataFrame:
    """Replace the rows of methods ``drop`` at ``seed`` by ``rows``, in one atomic rewrite; returns the new table."""
    path = Path(path)
    df = read_results(path)
    keep = ~(df["method"].isin(drop) & (df["seed"] == int(seed)))
    new = pd.DataFrame(list(rows), columns=list(COLUMNS))
    new["seed"] = new["seed"].astype("int64")
    out = pd.concat([df[keep], new], ignore_index=True) if len(df[keep]) else new
    _write(path, out)
    return out


def ranking_table(results: pd.DataFrame) -> pd.DataFrame:
    """``method,seed,levels,kendall_tau_b,weighted_tau,seconds`` from the results (``rank_seconds`` when a method
    has it, i.e. Sebra's Stage 1 time; else the ranker's ``seconds``)."""
    wide = results.pivot_table(index=["method", "seed"], columns="metric", values="value", aggfunc="last")
    rows = []
    for (method, seed), r in wide.iterrows():
        for levels, suffix in ((4, ""), (3, "_3")):
            if f"kendall_tau_b{suffix}" not in r or pd.isna(r.get(f"kendall_tau_b{suffix}")):
                continue
            secs = r.get("rank_seconds")
            secs = r.get("seconds") if secs is None or pd.isna(secs) else secs
            rows.append(
                {
                    "method": method,
                    "seed": int(seed),
                    "levels": levels,
                    "kendall_tau_b": r[f"kendall_tau_b{suffix}"],
                    "weighted_tau": r.get(f"weighted_tau{suffix}"),
                    "seconds": secs,
                }
            )
    return pd.DataFrame(rows, columns=list(RANKING_COLUMNS))


def _derive_same_budget(
    cfg: dict[str, Any], results: pd.DataFrame, runs_dir: Path, dataset: str, seeds: Sequence[int]
) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """Same-budget ranker rows that can be made now (both runs finished) and are not in the results yet."""
    done = completed_runs(results)
    out = []
    for name, m in cfg["methods"].items():
        ranker = m.get("confidence_ranker")
        if ranker is None:
            continue
        target = f"{name}_conf_same_budget"
        for seed in seeds:
            if (name, seed) not in done or (target, seed) in done:
                continue
            budget = ranker.get("budget_steps")
            src = ranker.get("budget_from")
            if src is not None:
                if (src, seed) not in done:
                    continue
                sel = results[
                    (results["method"] == src)
                    & (results["seed"] == seed)
                    & (results["metric"] == "rank_optimizer_steps")
                ]
                if sel.empty:
                    continue
                budget = float(sel["value"].iloc[-1])
            if budget is None:
                continue
            qfile = run_dir(runs_dir, dataset, name, seed) / "confidence_quality.csv"
            if not qfile.exists():
                warnings.warn(
                    f"bench: {qfile} is missing, so {target} seed {seed} cannot be derived; rerun {name}",
                    stacklevel=2,
                )
                continue
            out.append((seed, target, same_budget_rows(pd.read_csv(qfile), name, seed, budget)))
    return out


# ---------------------------------------------------------------------------------------------------------- sweep
RunFn = Callable[[dict[str, Any], str, int, Path, str], list[dict[str, Any]]]


def run_bench(
    cfg: dict[str, Any],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    out: str | Path,
    ranking_out: str | Path,
    runs_dir: str | Path,
    dataset: str,
    run_fn: RunFn | None = None,
    keep_going: bool = False,
    progress: bool = True,
    after_run: Callable[[], Any] | None = None,
) -> pd.DataFrame:
    """Run every unfinished (method, seed), seed by seed; returns the final results table.

    ``run_fn(cfg, method, seed, runs_dir, dataset) -> rows`` defaults to :func:`run_one` (tests pass a fake);
    ``after_run()`` is called after each finished run's rows are saved (the family bench merges its lanes there).
    """
    from tqdm.auto import tqdm

    run_fn = run_fn or run_one
    missing = [m for m in methods if m not in cfg["methods"]]
    if missing:
        raise BenchError(
            f"{cfg.get('_path', 'config')}: no method(s) {missing} under methods "
            f"(have: {', '.join(cfg['methods'])})"
        )
    out, ranking_out, runs_dir = Path(out), Path(ranking_out), Path(runs_dir)
    results = read_results(out)
    jobs = [(m, s) for s in seeds for m in methods]
    done = completed_runs(results)
    pending = [j for j in jobs if j not in done]
    failures = []

    def settle(results: pd.DataFrame) -> pd.DataFrame:
        for seed, target, rows in _derive_same_budget(cfg, results, runs_dir, dataset, seeds):
            results = write_run_rows(out, rows, {target}, seed)
        _write(ranking_out, ranking_table(results))
        return results

    results = settle(results) if not results.empty else results
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        desc=f"bench {dataset}",
        unit="run",
        disable=not progress,
        file=sys.stderr,
    )
    try:
        for method, seed in pending:
            bar.set_postfix_str(f"{method} seed {seed}")
            try:
                rows = run_fn(cfg, method, seed, runs_dir, dataset)
            except Exception as e:
                if not keep_going:
                    raise
                failures.append((method, seed))
                bar.write(f"bench: {method} seed {seed} failed: {type(e).__name__}: {e}")
                bar.update(1)
                continue
            if not any(r["method"] == method and r["metric"] == DONE_METRIC for r in rows):
                raise BenchError(f"bench: the run of {method} seed {seed} returned no '{DONE_METRIC}' row")
            results = write_run_rows(out, rows, owned_methods(cfg, method), seed)
            results = settle(results)
            if after_run is not None:
                after_run()
            bar.update(1)
    finally:
        bar.close()
    if failures:
        raise RuntimeError(f"bench: {len(failures)} run(s) failed: {failures}; finished runs are saved")
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sebra bench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--dataset", default=None, help="data set name (picks the default config and output names)"
    )
    p.add_argument(
        "--family",
        action="store_true",
        help="run the benchmark family (sebra.datasets.family) with the builtin config's settings; "
        "results in benchmarks/results/family.csv",
    )
    p.add_argument(
        "--variants", default=None, help="--family: comma list of variants (default: those of --role)"
    )
    p.add_argument(
        "--role",
        default=None,
        choices=("dev", "heldout"),
        help="--family: every variant of this role (default: all variants)",
    )
    p.add_argument(
        "--lane",
        default="main",
        help="--family: name of this process's results files (run lanes side by side, one thread each)",
    )
    p.add_argument(
        "--methods", default=None, help="comma list of methods of the config (default: all of them)"
    )
    p.add_argument(
        "--seeds", default="3", help="a count (3 -> seeds 0,1,2) or a comma list (0,5,7); default 3"
    )
    p.add_argument(
        "--config", default=None, help="YAML config (default: the packaged sebra/configs/<dataset>.yaml)"
    )
    p.add_argument("--out", default=None, help="results CSV (default benchmarks/results/<dataset>.csv)")
    p.add_argument(
        "--ranking-out", default=None, help="ranking table CSV (default ranking_<dataset>.csv beside --out)"
    )
    p.add_argument(
        "--runs-dir", default="runs/bench", help="logs, checkpoints and per-sample files (runs/bench)"
    )
    p.add_argument("--keep-going", action="store_true", help="record a failed run and go on with the others")
    p.add_argument("--dry-run", action="store_true", help="print the runs still to do and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op CPU threads (1 helps a lot on a small CPU shared with other jobs)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sebra bench``; returns the exit status (0 ok, 1 a run failed, 2 bad arguments/config)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.family:
        return _as_command(lambda: _family_run(args))
    if args.dataset is None:
        parser.error("--dataset is required (or --family)")
    return _as_command(lambda: _dataset_run(args))


def _as_command(run: Callable[[], int | str]) -> int:
    """Run one ``sebra bench`` entry point: a bad config or input is one line and exit 2, an interruption 130, failed
    runs (``--keep-going``) 1; a returned text is the closing message (exit 0), a returned number the exit status."""
    try:
        done = run()
    except (BenchError, FileNotFoundError) as e:
        print(f"sebra bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "sebra bench: interrupted; finished runs are saved, run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except RuntimeError as e:
        if "run(s) failed" in str(e):
            print(f"sebra bench: {e}", file=sys.stderr)
            return 1
        raise
    if isinstance(done, int):
        return done
    print(f"sebra bench: {done}", file=sys.stderr)
    return 0


def _dataset_run(args: argparse.Namespace) -> int | str:
    config = Path(args.config) if args.config else default_config(args.dataset)
    cfg = load_config(config)
    if cfg.get("dataset") not in (None, args.dataset):
        raise BenchError(f"{config}: dataset is {cfg['dataset']!r} but --dataset is {args.dataset!r}")
    methods = (
        [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(cfg["methods"])
    )
    seeds = parse_seeds(args.seeds)
    out = Path(args.out or f"benchmarks/results/{args.dataset}.csv")
    ranking_out = Path(args.ranking_out or out.parent / f"ranking_{args.dataset}.csv")
    if args.dry_run:
        missing = [m for m in methods if m not in cfg["methods"]]
        if missing:
            raise BenchError(
                f"{config}: no method(s) {missing} under methods (have: {', '.join(cfg['methods'])})"
            )
        done = completed_runs(read_results(out))
        todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
        print(f"{len(todo)} of {len(seeds) * len(methods)} run(s) to do -> {out}")
        for m, s in todo:
            print(f"  {m} seed {s}")
        return 0
    _set_threads(args.threads)
    run_bench(
        cfg,
        methods,
        seeds,
        out=out,
        ranking_out=ranking_out,
        runs_dir=Path(args.runs_dir),
        dataset=args.dataset,
        keep_going=args.keep_going,
        progress=not args.no_progress,
    )
    return f"results in {out}, ranking table in {ranking_out}"


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise BenchError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def _family_run(args: argparse.Namespace) -> int | str:
    from sebra.bench_family import run_family
    from sebra.datasets.family import variants as registered

    config = Path(args.config) if args.config else default_config("builtin")
    cfg = load_config(config)
    methods = (
        [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(cfg["methods"])
    )
    names = (
        [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else registered(args.role)
    )
    unknown = [v for v in names if v not in registered()]
    if unknown:
        raise BenchError(f"--variants: unknown variant(s) {unknown}; registered: {', '.join(registered())}")
    missing = [m for m in methods if m not in cfg["methods"]]
    if missing:
        raise BenchError(
            f"{config}: no method(s) {missing} under methods (have: {', '.join(cfg['methods'])})"
        )
    if not args.lane.replace("-", "").replace("_", "").isalnum():
        raise BenchError(f"--lane must be letters, digits, - or _, got {args.lane!r}")
    seeds = parse_seeds(args.seeds)
    out = Path(args.out or "benchmarks/results/family.csv")
    if args.dry_run:
        from sebra.bench_family import lane_file

        for v in names:
            done = completed_runs(read_results(lane_file(out, v, args.lane)))
            todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
            print(f"{v}: {len(todo)} of {len(seeds) * len(methods)} run(s) to do (lane {args.lane})")
        return 0
    _set_threads(args.threads)
    run_family(
        cfg,
        methods,
        seeds,
        names,
        out=out,
        runs_dir=Path(args.runs_dir if args.runs_dir != "runs/bench" else "runs/family"),
        lane=args.lane,
        keep_going=args.keep_going,
        progress=not args.no_progress,
    )
    return f"results in {out}"


if __name__ == "__main__":
    raise SystemExit(main())

"""``sebra bench --family``: methods x seeds x benchmark variants, one tidy table ``family.csv``.

    sebra bench --family --role heldout --methods erm,jtt,sebra,oracle --seeds 3 --lane a --threads 1

Every variant runs with the *same* method settings: the config (default ``sebra/configs/builtin.yaml``, the one the
demo uses) with its data block pointed at :class:`~sebra.datasets.family.FamilyDataModule`. Each lane (one process;
run lanes side by side with one thread each) keeps its own resumable results file per variant,
``<out dir>/family/<variant>.<lane>.csv`` (the ``sebra bench`` format), and after every run all lane files are merged
into ``family.csv`` with columns ``variant,role,method,seed,metric,value``. Rows that need two runs (the
``erm_conf_same_budget`` ranker needs Sebra's Stage 1 budget) are derived at merge time from the run folders, so the
two runs may come from different lanes; derived rows are kept in ``<variant>.derived.csv`` so a later merge without
the run folders keeps them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sebra.bench.config import check_config
from sebra.bench.store import lane_file, write_table
from sebra.bench.sweep import RunFn, merge_lanes, run_bench

__all__ = ["FAMILY_COLUMNS", "family_config", "merge_family", "run_family"]

FAMILY_COLUMNS = ("variant", "role", "method", "seed", "metric", "value")
DATA_CLASS = "sebra.datasets.family.FamilyDataModule"


def family_config(cfg: dict[str, Any], variant: str) -> dict[str, Any]:
    """``cfg`` with its data module replaced by the variant's (data arguments the family module lacks are dropped)."""
    from sebra.cli.schema import class_defaults
    from sebra.datasets.family import variant as lookup

    lookup(variant)  # unknown names fail here, with the list of registered ones
    out = copy.deepcopy(cfg)
    accepted = set(class_defaults(DATA_CLASS)) - {"variant", "root"}
    args = {k: v for k, v in cfg["data"]["init_args"].items() if k in accepted}
    out["data"] = {"class_path": DATA_CLASS, "init_args": {**args, "variant": variant}}
    out["dataset"] = variant
    return check_config(out, out.get("_path", "config"))


def _derived_file(out: str | Path, variant: str) -> Path:
    return Path(out).parent / "family" / f"{variant}.derived.csv"


def merge_family(cfg: dict[str, Any], out: str | Path, runs_dir: str | Path) -> pd.DataFrame:
    """Merge every lane file under ``<out dir>/family/`` into ``out``; returns the merged table.

    A (method, seed) finished in two lanes keeps the rows of the file that sorts last (a warning says so).
    """
    from sebra.datasets.family import VARIANTS

    out = Path(out)
    folder = out.parent / "family"
    frames = []
    for name, spec in VARIANTS.items():
        files = sorted(p for p in folder.glob(f"{name}.*.csv") if not p.name.endswith(".derived.csv"))
        if not files:
            continue
        res = merge_lanes(family_config(cfg, name), files, _derived_file(out, name), runs_dir, name, name)
        res.insert(0, "role", spec.role)
        res.insert(0, "variant", name)
        frames.append(res)
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FAMILY_COLUMNS))
    write_table(out, merged[list(FAMILY_COLUMNS)])
    return merged


def run_family(
    cfg: dict[str, Any],
    methods: Sequence[str],
    seeds: Sequence[int],
    variants: Sequence[str],
    *,
    out: str | Path,
    runs_dir: str | Path,
    lane: str = "main",
    keep_going: bool = False,
    progress: bool = True,
    run_fn: RunFn | None = None,
) -> pd.DataFrame:
    """Run every unfinished (variant, method, seed) of this lane, variant by variant, merging after every run."""
    out = Path(out)
    for name in variants:
        vcfg = family_config(cfg, name)
        lf = lane_file(out, name, lane)
        lf.parent.mkdir(parents=True, exist_ok=True)
        run_bench(
            vcfg,
            methods,
            seeds,
            out=lf,
            ranking_out=lf.with_name(f"ranking_{name}.{lane}.csv"),
            runs_dir=Path(runs_dir),
            dataset=name,
            keep_going=keep_going,
            progress=progress,
            run_fn=run_fn,
            after_run=lambda: merge_family(cfg, out, runs_dir),
        )
    return merge_family(cfg, out, runs_dir)

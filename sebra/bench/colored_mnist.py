"""``sebra bench --dataset colored_mnist``: methods x seeds x conflict ratios, one tidy table ``colored_mnist.csv``.

    sebra bench --dataset colored_mnist --ratios 0.005,0.01,0.02,0.05 --methods erm,jtt,lff,sebra,oracle \
        --seeds 3 --lane a --threads 1

Every ratio runs the same config (default ``sebra/configs/colored_mnist.yaml``) with ``data.init_args.conflict_ratio``
set to it, through the ordinary sweep (:func:`~sebra.bench.sweep.run_bench`): each lane (one process; run lanes side
by side with one thread each, e.g. one lane per ratio or per seed) keeps its own resumable results file per ratio,
``<out dir>/colored_mnist/r<ratio>.<lane>.csv`` (the ``sebra bench`` format), and after every run all lane files are
merged into ``colored_mnist.csv`` with columns ``ratio,method,seed,metric,value``. Rows that need two runs (ERM
confidence at Sebra's Stage 1 budget, ``erm_conf_same_budget``) are derived at merge time from the run folders, so
the two runs may come from different lanes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sebra.bench.config import BenchError, check_config
from sebra.bench.store import COLUMNS, write_table
from sebra.bench.sweep import RunFn, merge_lanes, run_bench

__all__ = [
    "CMNIST_COLUMNS",
    "DEFAULT_RATIOS",
    "merge_colored_mnist",
    "parse_ratios",
    "ratio_config",
    "ratio_dataset",
    "ratio_lane_file",
    "run_colored_mnist",
]

CMNIST_COLUMNS = ("ratio", *COLUMNS)
DEFAULT_RATIOS = (0.005, 0.01, 0.02, 0.05)


def parse_ratios(text: str | None) -> list[float]:
    """``"0.005,0.01"`` -> ``[0.005, 0.01]`` (default: the four published ratios), each in (0, 0.9]."""
    if text is None:
        return list(DEFAULT_RATIOS)
    try:
        ratios = [float(r) for r in str(text).split(",") if r.strip()]
    except ValueError:
        raise BenchError(
            f"--ratios must be a comma list of conflict ratios such as 0.005,0.01, got {text!r}"
        ) from None
    bad = [r for r in ratios if not 0 < r <= 0.9]
    if not ratios or bad or len(set(ratios)) != len(ratios):
        raise BenchError(f"--ratios must list distinct ratios in (0, 0.9], got {text!r}")
    return ratios


def ratio_dataset(ratio: float) -> str:
    """The run-folder name of one ratio (``colored_mnist_r0.01``)."""
    return f"colored_mnist_r{ratio:g}"


def ratio_lane_file(out: str | Path, ratio: float, lane: str) -> Path:
    """A lane's resumable results file for one ratio (``<out dir>/<out stem>/r<ratio>.<lane>.csv``: the default
    ``colored_mnist.csv`` keeps its lanes in ``colored_mnist/``, and a trial's ``--out`` keeps its own apart)."""
    return Path(out).parent / Path(out).stem / f"r{ratio:g}.{lane}.csv"


def _derived_file(out: str | Path, ratio: float) -> Path:
    return Path(out).parent / Path(out).stem / f"r{ratio:g}.derived.csv"


def ratio_config(cfg: dict[str, Any], ratio: float) -> dict[str, Any]:
    """``cfg`` with the data module's ``conflict_ratio`` set to ``ratio``.

    Raises:
        BenchError: the config's data module takes no ``conflict_ratio``.
    """
    from sebra.cli.schema import class_defaults

    where = cfg.get("_path", "config")
    if "conflict_ratio" not in class_defaults(cfg["data"]["class_path"]):
        raise BenchError(f"{where}: data.class_path {cfg['data']['class_path']} takes no conflict_ratio")
    out = copy.deepcopy(cfg)
    out["data"]["init_args"]["conflict_ratio"] = float(ratio)
    out["dataset"] = ratio_dataset(ratio)
    return check_config(out, where)


_LANE_FILE = re.compile(r"r(\d+(?:\.\d+)?(?:e-?\d+)?)\.(.+)\.csv")


def _lane_ratio(path: Path) -> float | None:
    """The ratio of a lane file ``r<ratio>.<lane>.csv`` (``r0.005.a.csv``, ``r0.01.r0.01.csv``: lanes may hold
    dots); ``None`` for any other file name."""
    m = _LANE_FILE.fullmatch(path.name)
    return float(m.group(1)) if m else None


def merge_colored_mnist(cfg: dict[str, Any], out: str | Path, runs_dir: str | Path) -> pd.DataFrame:
    """Merge every lane file under ``<out dir>/<out stem>/`` into ``out``; returns the merged table.

    A (method, seed) finished in two lanes keeps the rows of the file that sorts last (a warning says so).
    """
    out = Path(out)
    folder = out.parent / out.stem
    by_ratio: dict[float, list[Path]] = {}
    for f in sorted(folder.glob("r*.csv")):
        ratio = _lane_ratio(f)
        if ratio is not None and not f.name.endswith(".derived.csv") and not f.name.startswith("ranking_"):
            by_ratio.setdefault(ratio, []).append(f)
    frames = []
    for ratio in sorted(by_ratio):
        res = merge_lanes(
            ratio_config(cfg, ratio),
            by_ratio[ratio],
            _derived_file(out, ratio),
            runs_dir,
            ratio_dataset(ratio),
            f"colored_mnist ratio {ratio:g}",
        )
        res.insert(0, "ratio", float(ratio))
        frames.append(res)
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CMNIST_COLUMNS))
    write_table(out, merged[list(CMNIST_COLUMNS)])
    return merged


def run_colored_mnist(
    cfg: dict[str, Any],
    methods: Sequence[str],
    seeds: Sequence[int],
    ratios: Sequence[float],
    *,
    out: str | Path,
    runs_dir: str | Path,
    lane: str = "main",
    keep_going: bool = False,
    progress: bool = True,
    run_fn: RunFn | None = None,
) -> pd.DataFrame:
    """Run every unfinished (ratio, method, seed) of this lane, ratio by ratio, merging after every run."""
    out = Path(out)
    for ratio in ratios:
        rcfg = ratio_config(cfg, ratio)
        lf = ratio_lane_file(out, ratio, lane)
        lf.parent.mkdir(parents=True, exist_ok=True)
        run_bench(
            rcfg,
            methods,
            seeds,
            out=lf,
            ranking_out=lf.with_name(f"ranking_r{ratio:g}.{lane}.csv"),
            runs_dir=Path(runs_dir),
            dataset=ratio_dataset(ratio),
            keep_going=keep_going,
            progress=progress,
            run_fn=run_fn,
            after_run=lambda: merge_colored_mnist(cfg, out, runs_dir),
        )
    return merge_colored_mnist(cfg, out, runs_dir)

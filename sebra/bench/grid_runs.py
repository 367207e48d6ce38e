"""The ranker x mitigation grid over family variants and seeds, in resumable lanes, and its per-role tables.

:func:`run_grid` is what ``sebra bench --family --grid`` and ``benchmarks/grid.py`` run: for every (seed, variant)
one :func:`~sebra.bench.grid.run_cell`, its rows appended to the lane file ``<results>/grid/<lane>.csv`` after every
fit, so a rerun of the same lane skips what it holds. :func:`merge_grid` joins the lane files into ``grid.csv``;
:func:`grid_table` is the table BENCHMARKS.md shows (rows rankers, columns mitigations, worst-group mean +- std over
seeds of the per-variant mean, and each ranker's tau-b).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sebra.bench.grid import GRID_COLUMNS, RANKERS, run_cell
from sebra.bench.tables import format_mean_std
from sebra.utils.files import atomic_write

__all__ = ["grid_table", "markdown_table", "merge_grid", "run_grid"]


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"mitigation": str})
    df["mitigation"] = df["mitigation"].astype(object).fillna("")
    return df


def run_grid(
    base: dict[str, Any],
    role: str,
    names: list[str],
    seeds: list[int],
    mitigations: tuple[str, ...],
    *,
    rankers: tuple[str, ...] = RANKERS,
    erm_conf_epoch: int = 1,
    lane: str = "a",
    results_dir: str | Path = "benchmarks/results",
    runs_dir: str | Path = "runs/grid",
    log: Any = print,
) -> Path:
    """Every (seed, variant) cell of ``names`` under ``base`` (the builtin config), resumably; returns the lane
    file. Raises ``ValueError`` for a variant of another role (a held-out grid never runs a dev variant)."""
    from sebra.bench.family import family_config
    from sebra.datasets.family import variant

    for name in names:
        if variant(name).role != role:
            raise ValueError(f"grid: {name!r} is a {variant(name).role} variant, not {role}")
    lane_file = Path(results_dir) / "grid" / f"{lane}.csv"
    lane_file.parent.mkdir(parents=True, exist_ok=True)
    held = _read(lane_file) if lane_file.exists() else pd.DataFrame(columns=GRID_COLUMNS)

    def save(rows: list[dict]) -> None:
        nonlocal held
        held = pd.concat([held, pd.DataFrame(rows, columns=GRID_COLUMNS)], ignore_index=True)
        atomic_write(lane_file, lambda tmp: held.to_csv(tmp, index=False))

    for seed in seeds:
        for name in names:
            mine = held[(held["variant"] == name) & (held["seed"] == seed)]
            done = set(zip(mine["ranker"], mine["mitigation"].astype(object).fillna("")))
            run_cell(
                family_config(base, name),
                name,
                role,
                seed,
                runs_dir,
                mitigations=tuple(mitigations),
                rankers=tuple(rankers),
                erm_conf_epoch=erm_conf_epoch,
                done=done,
                on_rows=save,
            )
            log(f"grid: {name} seed {seed} done")
    return lane_file


def merge_grid(results_dir: str | Path = "benchmarks/results") -> pd.DataFrame:
    """The lane files joined (a cell held by two lanes keeps the later file's rows), written to ``grid.csv``."""
    results_dir = Path(results_dir)
    parts = [_read(p) for p in sorted((results_dir / "grid").glob("*.csv"))]
    if not parts:
        raise FileNotFoundError(f"{results_dir / 'grid'}: no lane files (run the grid first)")
    df = pd.concat(parts, ignore_index=True)
    df = df.drop_duplicates(["variant", "ranker", "mitigation", "seed", "metric"], keep="last")
    atomic_write(results_dir / "grid.csv", lambda tmp: df[GRID_COLUMNS].to_csv(tmp, index=False))
    return df


def grid_table(df: pd.DataFrame, metric: str = "worst_group_acc") -> pd.DataFrame:
    """Rows rankers, columns mitigations, cells ``mean +- std (n)`` over seeds of the per-variant mean."""
    sub = df[(df["metric"] == metric) & (df["mitigation"].fillna("") != "")]
    per_seed = sub.groupby(["ranker", "mitigation", "seed"])["value"].mean()
    stats = per_seed.groupby(["ranker", "mitigation"]).agg(["mean", "std", "count"])
    cell = stats.apply(lambda r: f"{format_mean_std(r['mean'], r['std'])} ({int(r['count'])})", axis=1)
    table = cell.unstack("mitigation").fillna("–")  # a (ranker, mitigation) not run
    tau = df[(df["metric"] == "kendall_tau_b_3") & (df["mitigation"].fillna("") == "")]
    table["τ-b (3)"] = tau.groupby("ranker")["value"].mean().round(3)
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    head = ["ranker", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([str(i), *(str(v) for v in row)]) + " |" for i, row in table.iterrows()]
    return "\n".join(lines)

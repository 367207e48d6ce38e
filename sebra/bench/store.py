"""Results files: the tidy table ``method,seed,metric,value`` a sweep appends to, resumes from and merges.

A run counts as finished when its ``seconds`` row is there. Every write replaces the whole file atomically
(:func:`~sebra.utils.files.atomic_write`), so a killed sweep leaves the last complete table, never half a row. Each
read-modify-write of :func:`write_run_rows` holds a lock on the file (``.<name>.lock`` beside it), so two sweeps
given one file keep each other's rows; parallel sweeps (lanes) still best write a file each, and
:func:`merge_results` joins them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from sebra.bench.config import BenchError
from sebra.utils.files import atomic_write, read_csv_file

__all__ = [
    "COLUMNS",
    "DONE_METRIC",
    "RANKING_COLUMNS",
    "completed_runs",
    "lane_file",
    "merge_results",
    "ranking_table",
    "read_results",
    "result_rows",
    "results_lock",
    "write_run_rows",
    "write_table",
]

COLUMNS = ("method", "seed", "metric", "value")
RANKING_COLUMNS = ("method", "seed", "levels", "kendall_tau_b", "weighted_tau", "seconds")
DONE_METRIC = "seconds"
RESULTS_CONTENT = "a header method,seed,metric,value and one row per result (written by sebra bench)"


def result_rows(method: str, seed: int, values: dict[str, float]) -> list[dict[str, Any]]:
    """One row per metric of ``values``, in their order."""
    return [{"method": method, "seed": int(seed), "metric": k, "value": float(v)} for k, v in values.items()]


def lane_file(out: str | Path, variant: str, lane: str) -> Path:
    """A lane's resumable results file for one variant of the family (``<out dir>/family/<variant>.<lane>.csv``)."""
    return Path(out).parent / "family" / f"{variant}.{lane}.csv"


def read_results(path: str | Path) -> pd.DataFrame:
    """The results CSV (empty frame when the file does not exist yet).

    Raises:
        BenchError: the file is empty, not a CSV table, lacks a column or holds a seed that is not an integer (the
            message names the file, and the line).
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("object", "int64", "object", "float64"))}
        )
    df = read_csv_file(path, RESULTS_CONTENT, BenchError, kind="results file")
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


def write_table(path: str | Path, df: pd.DataFrame) -> Path:
    """Write a results (or ranking) table atomically, numbers with 10 significant digits."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g"))


def write_run_rows(
    path: str | Path, rows: Sequence[dict[str, Any]], drop: set[str], seed: int
) -> pd.DataFrame:
    """Replace the rows of methods ``drop`` at ``seed`` by ``rows``, in one atomic rewrite; returns the new table.

    The read and the rewrite happen under the file's lock (:func:`results_lock`): a second writer of the same file
    (two sweeps given one ``--out``) waits, then re-reads, instead of overwriting the rows written meanwhile.
    """
    path = Path(path)
    with results_lock(path):
        df = read_results(path)
        keep = ~(df["method"].isin(drop) & (df["seed"] == int(seed)))
        new = pd.DataFrame(list(rows), columns=list(COLUMNS))
        new["seed"] = new["seed"].astype("int64")
        out = pd.concat([df[keep], new], ignore_index=True) if len(df[keep]) else new
        write_table(path, out)
    return out


#: How long a writer waits for another one's read-modify-write (each takes well under a second).
LOCK_TIMEOUT_S = 120.0


@contextmanager
def results_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the inter-process lock of results file ``path`` (``.<name>.lock`` beside it, via ``filelock``).

    Raises:
        BenchError: another writer held it for ``timeout`` seconds (default :data:`LOCK_TIMEOUT_S`), naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = LOCK_TIMEOUT_S if timeout is None else timeout
    lock = FileLock(path.parent / f".{path.name}.lock", thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise BenchError(
            f"{path}: another sweep has been writing this results file for {wait:g} s (lock {lock.lock_file}); "
            "give each sweep its own --out or --lane"
        ) from None
    try:
        yield
    finally:
        lock.release()


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


def merge_results(frames: Iterable[pd.DataFrame], base: pd.DataFrame | None = None) -> pd.DataFrame:
    """Join the results of parallel sweeps (disjoint methods or seeds), sorted by method and seed.

    With ``base``, an earlier merged table, the base's rows of every (method, seed) the frames report are dropped
    first: a re-run replaces the old run.

    Raises:
        BenchError: a (method, seed, metric) that two frames both report.
    """
    merged = pd.concat(list(frames), ignore_index=True)
    if base is not None:
        rerun = set(zip(merged["method"], merged["seed"]))
        keep = [(m, s) not in rerun for m, s in zip(base["method"], base["seed"])]
        merged = pd.concat([base[keep], merged], ignore_index=True)
    dup = merged.duplicated(["method", "seed", "metric"], keep=False)
    if dup.any():
        row = merged[dup].iloc[0]
        raise BenchError(f"{row['method']} seed {row['seed']} {row['metric']} is reported by two files")
    return merged.sort_values(["method", "seed"], kind="stable")

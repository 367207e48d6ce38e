"""The ranking table: the one per-sample artifact that joins Stage 1 to Stage 2, the benchmarks and inspection.

Columns (contract): ``index`` (dataset index), ``label``, ``rank`` (elimination step, 1 = most spurious,
never-eliminated = last step + 1, or -1 under ``unranked="official"``), ``position`` (1..n within the class after
the tie-break, 1 = most spurious), ``p_y`` (true-class probability when eliminated or at the end), then optional
``path``, bias attribute columns and ``group``.

On disk it is a CSV (readable, diffable) or, for a ``.parquet`` path, Parquet through ``pyarrow``. Either way it is
written to a temporary file beside the target and renamed, so readers never see half a table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype

from sebra.utils.files import atomic_write, read_csv_file

__all__ = [
    "RANKING_COLUMNS",
    "check_ranking_values",
    "check_rankings",
    "load_rankings",
    "save_rankings",
]

RANKING_COLUMNS = ("index", "label", "rank", "position", "p_y")
_INT_COLUMNS = ("index", "label", "rank", "position", "group")


def _show(v: object) -> str:
    return repr(v.item() if hasattr(v, "item") else v)  # 1.5, not np.float64(1.5)


def check_rankings(df: pd.DataFrame, where: str = "rankings") -> None:
    """Raise ``ValueError`` naming ``where`` if ``df`` lacks a contract column or holds a dataset index twice."""
    missing = [c for c in RANKING_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{where}: ranking table lacks the column(s) {missing}; expected at least {list(RANKING_COLUMNS)}"
        )
    dup = df["index"].duplicated()
    if dup.any():
        first = _show(df["index"][dup].iloc[0])
        raise ValueError(f"{where}: dataset index {first} appears twice; expected one row per sample")


_check = check_rankings  # former private name


def _require_pyarrow(path: Path, action: str) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{action} {path} as Parquet needs the 'pyarrow' package, which is not installed; "
            "install it (pip install pyarrow, or the sebra[parquet] extra) or use a .csv path"
        ) from e


def _check_scores(df: pd.DataFrame, path: Path) -> None:
    """Refuse a table ranked from non-finite scores: an infinite ``p_y``, or no sample with a ``p_y`` at all (a NaN
    network ranks nothing). A single empty ``p_y`` stays allowed: a sample the sampled scoring never drew."""
    p_y = pd.to_numeric(df["p_y"], errors="coerce").to_numpy(dtype=np.float64)
    inf = np.isinf(p_y)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ValueError(
            f"{path}: not written: p_y is {p_y[i]} for dataset index {_show(df['index'].iloc[i])}; expected a "
            "probability in [0, 1] (the scores are not finite)"
        )
    if len(p_y) and np.isnan(p_y).all():
        raise ValueError(
            f"{path}: not written: every p_y is NaN; the scores are not finite, and a ranking of them would "
            "rank nothing"
        )


def save_rankings(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the ranking table to CSV (or Parquet for a ``.parquet`` path), atomically.

    Raises:
        ValueError: a contract column is missing, or the scores are not finite (nothing is written).
        ImportError: a ``.parquet`` path without ``pyarrow`` installed (nothing is written).
    """
    path = Path(path)
    check_rankings(df, str(path))
    _check_scores(df, path)
    if path.suffix == ".parquet":
        _require_pyarrow(path, "writing")
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))


def _where_row(path: Path, df: pd.DataFrame, i: int) -> str:
    # CSV: header is line 1, so table row i is on line i + 2; Parquet has rows, not lines.
    return f"line {i + 2}" if path.suffix != ".parquet" else f"row {i + 1}"


def _as_int(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    s = df[col]
    if is_integer_dtype(s.dtype) and not is_bool_dtype(s.dtype):
        return s.astype("int64")
    num = pd.to_numeric(s, errors="coerce")
    bad = (num.isna() | (num != num.round())).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raw = s.iloc[i]
        what = "is empty" if pd.isna(raw) else f"holds {_show(raw)}"
        raise ValueError(f"{path}: column {col!r} {what} on {_where_row(path, df, i)}; expected an integer")
    return num.astype("int64")


RANKINGS_CONTENT = "a header index,label,rank,position,p_y and one row per training sample (written by sebra)"


def _first_bad(df: pd.DataFrame, where: str | Path, col: str, bad: np.ndarray, expected: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        # a file: its line (or Parquet row); a DataFrame: its row position
        at = _where_row(where, df, i) if isinstance(where, Path) else f"row {i}"
        raise ValueError(
            f"{where}: column {col!r} holds {_show(df[col].iloc[i])} on {at} "
            f"(dataset index {_show(df['index'].iloc[i])}); expected {expected}"
        )


def check_ranking_values(df: pd.DataFrame, where: str | Path = "rankings") -> None:
    """Raise ``ValueError`` (naming ``where``, the column and the row) when a ranking table's values are out of range.

    ``where`` is the file the table was read from (a :class:`~pathlib.Path`: rows are named by their line) or a
    description of a DataFrame (rows are named by position).

    ``index`` and ``label`` >= 0; ``rank`` >= 1, or -1 (never eliminated, ``unranked="official"``); ``p_y`` in
    [0, 1] (or empty); ``position`` numbering each class's rows 1..n, each once.
    """
    num = {}
    for col in ("index", "label", "rank", "position"):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        _first_bad(df, where, col, np.isnan(v) | (v != np.round(v)), "an integer")
        num[col] = v
    p_y = pd.to_numeric(df["p_y"], errors="coerce").to_numpy(dtype=np.float64)
    _first_bad(df, where, "p_y", np.isnan(p_y) & df["p_y"].notna().to_numpy(), "a number")
    _first_bad(df, where, "index", num["index"] < 0, "a dataset index >= 0")
    _first_bad(df, where, "label", num["label"] < 0, "a class id >= 0")
    r = num["rank"]
    _first_bad(df, where, "rank", (r < 1) & (r != -1), "an elimination step >= 1 (or -1: never eliminated)")
    _first_bad(df, where, "p_y", (p_y < 0) | (p_y > 1), "a probability in [0, 1]")
    for label, pos in pd.Series(num["position"]).groupby(num["label"], sort=True):
        got = np.sort(pos.to_numpy()).astype(np.int64)
        want = np.arange(1, len(got) + 1)
        if not np.array_equal(got, want):
            values, counts = np.unique(got, return_counts=True)
            if (counts > 1).any():
                v = values[counts > 1][0]
                detail = f"position {v} appears {counts[values == v][0]} times"
            else:
                v = int(np.setdiff1d(want, got)[0])
                detail = f"position {v} is missing (the highest is {int(got[-1])})"
            raise ValueError(
                f"{where}: column 'position' of class {int(label)}: {detail}; expected each of "
                f"1..{len(got)} once (the class's {len(got)} rows in ranked order)"
            )


def load_rankings(path: str | Path) -> pd.DataFrame:
    """Read a ranking table written by :func:`save_rankings`, with int64 ids and float64 ``p_y``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is empty or not a CSV table, a contract column is missing, a value is not of its
            column's type or out of range (:func:`check_ranking_values`); the message names the file, the column
            and the line.
        ImportError: a ``.parquet`` file without ``pyarrow`` installed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"rankings file {path} does not exist")
    if path.suffix == ".parquet":
        _require_pyarrow(path, "reading")
        try:
            df = pd.read_parquet(path, engine="pyarrow")
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(
                f"{path} is not a readable Parquet file ({e}); expected a ranking table written by sebra"
            ) from None
    else:
        df = read_csv_file(path, RANKINGS_CONTENT, kind="rankings file")
    if df.empty and all(c in df.columns for c in RANKING_COLUMNS):
        raise ValueError(f"{path} has a header but no rows; expected {RANKINGS_CONTENT}")
    check_rankings(df, str(path))
    for c in _INT_COLUMNS:
        if c in df.columns:
            df[c] = _as_int(df, c, path)
    p_y = pd.to_numeric(df["p_y"], errors="coerce")
    bad = (p_y.isna() & df["p_y"].notna()).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raw = _show(df["p_y"].iloc[i])
        raise ValueError(f"{path}: column 'p_y' holds {raw} on {_where_row(path, df, i)}; expected a number")
    df["p_y"] = p_y.astype("float64")
    check_ranking_values(df, path)
    if "path" in df.columns:
        df["path"] = df["path"].astype(str)
    return df

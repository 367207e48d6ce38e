"""The ranking table: the one per-sample artifact that joins Stage 1 to Stage 2, the benchmarks and inspection.

Columns (contract): ``index`` (dataset index), ``label``, ``rank`` (elimination step, 1 = most spurious,
never-eliminated = last step + 1, or -1 under ``unranked="official"``), ``position`` (1..n within the class after
the tie-break, 1 = most spurious), ``p_y`` (true-class probability when eliminated or at the end), then optional
``path``, bias attribute columns and ``group``.

On disk it is a CSV (readable, diffable) or, for a ``.parquet`` path, Parquet through ``pyarrow``. Either way it is
written to a temporary file beside the target and renamed, so readers never see half a table.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype

__all__ = ["RANKING_COLUMNS", "atomic_write", "check_rankings", "load_rankings", "save_rankings"]

RANKING_COLUMNS = ("index", "label", "rank", "position", "p_y")
_INT_COLUMNS = ("index", "label", "rank", "position", "group")


def _umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves the old file (or none), never a half-written one. The file is flushed to disk before
    the rename and gets the usual ``0o666 & ~umask`` permissions (``mkstemp`` alone would leave it owner-only).

    Args:
        path: the file to create or replace.
        write: writes the whole content to the path it is given (a ``str``; its suffix is ``.tmp``, so pass an
            explicit format to writers that guess it from the name).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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


def save_rankings(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the ranking table to CSV (or Parquet for a ``.parquet`` path), atomically.

    Raises:
        ValueError: a contract column is missing.
        ImportError: a ``.parquet`` path without ``pyarrow`` installed (nothing is written).
    """
    path = Path(path)
    check_rankings(df, str(path))
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


def load_rankings(path: str | Path) -> pd.DataFrame:
    """Read a ranking table written by :func:`save_rankings`, with int64 ids and float64 ``p_y``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a contract column is missing, or a value is not of its column's type (the message names the
            file, the column and the line).
        ImportError: a ``.parquet`` file without ``pyarrow`` installed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"rankings file {path} does not exist")
    if path.suffix == ".parquet":
        _require_pyarrow(path, "reading")
        df = pd.read_parquet(path, engine="pyarrow")
    else:
        df = pd.read_csv(path)
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
    if "path" in df.columns:
        df["path"] = df["path"].astype(str)
    return df

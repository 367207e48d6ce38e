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
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype

__all__ = [
    "RANKING_COLUMNS",
    "append_record",
    "atomic_write",
    "check_ranking_values",
    "check_rankings",
    "load_rankings",
    "read_csv_file",
    "remove_stale_temporaries",
    "save_rankings",
]

RANKING_COLUMNS = ("index", "label", "rank", "position", "p_y")
_INT_COLUMNS = ("index", "label", "rank", "position", "group")


def _umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # a process of another user (or a platform that cannot tell): leave its file alone
    return True


#: A temporary file whose name carries no writer (an older sebra) counts as stale after this many seconds.
STALE_AFTER_SECONDS = 3600.0


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when its process was killed mid-write.

    A temporary is ``.<name>.<host>.<pid>.<random>.tmp``; it is removed when it was made on this host by a process
    that no longer runs (a live writer's file, or another host's, is left alone). Temporaries of older sebra
    versions (``.<name>.<random>.tmp``) are removed once older than :data:`STALE_AFTER_SECONDS`.

    Args:
        folder: where to look (nothing happens when it does not exist).
        name: only the temporaries of this target file name (default: those of every file).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = _host()
    removed = []
    pattern = f".{name}.*.tmp" if name is not None else ".*.tmp"
    for tmp in folder.glob(pattern):
        stem = tmp.name[1 : -len(".tmp")]
        if name is not None:
            rest = stem[len(name) + 1 :]
        else:
            parts = stem.rsplit(".", 3)
            rest = ".".join(parts[1:]) if len(parts) == 4 else ""
        parts = rest.split(".")
        try:
            if len(parts) == 3 and parts[1].isdigit():
                if parts[0] != host or _writer_alive(int(parts[1])):
                    continue
            elif time.time() - tmp.stat().st_mtime < STALE_AFTER_SECONDS:
                continue
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            continue  # removed meanwhile (its writer finished)
    return removed


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves the old file (or none), never a half-written one. The file is flushed to disk before
    the rename and gets the usual ``0o666 & ~umask`` permissions (``mkstemp`` alone would leave it owner-only).
    A process killed mid-write (``kill -9``) cannot remove its temporary; the next write of the same file does
    (:func:`remove_stale_temporaries`).

    Args:
        path: the file to create or replace.
        write: writes the whole content to the path it is given (a ``str``; its suffix is ``.tmp``, so pass an
            explicit format to writers that guess it from the name).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{_host()}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
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


def read_csv_file(
    path: str | Path, what: str, error: type[Exception] = ValueError, kind: str = "", **kwargs
) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)`` whose failures name the file and what it should hold.

    Args:
        path: the CSV file.
        what: what the file should hold, for the message (e.g. ``"a header path,label and one row per image"``).
        error: the exception class raised (``ValueError`` or a subclass such as ``DatasetError``).
        kind: what the file is, put before its path in messages (e.g. ``"manifest"``).
        kwargs: passed to :func:`pandas.read_csv` (``encoding`` defaults to ``utf-8-sig``: a leading byte-order mark
            is skipped).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        error: the file is empty, not text, or not a CSV table pandas can parse.
    """
    path = Path(path)
    name = f"{kind} {path}" if kind else str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} does not exist; expected a CSV file with {what}")
    kwargs.setdefault("encoding", "utf-8-sig")  # spreadsheet exports start with a byte-order mark
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        state = "is empty (0 bytes)" if path.stat().st_size == 0 else "holds no CSV header (only blank lines)"
        raise error(f"{name} {state}; expected a CSV file with {what}") from None
    except UnicodeDecodeError as e:
        raise error(
            f"{name} is not a text (UTF-8) CSV file (byte {e.start} cannot be decoded); expected a CSV "
            f"file with {what}"
        ) from None
    except pd.errors.ParserError as e:
        cause = str(e).strip().replace("Error tokenizing data. C error: ", "")
        raise error(
            f"{name} is not a well-formed CSV table ({cause}); expected a CSV file with {what}"
        ) from None


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


def append_record(path: str | Path, record: dict) -> Path:
    """Add one row (a trial's settings and results) to a CSV table, creating it if needed; rewritten atomically,
    so a killed trial never leaves the table half-written. Columns are the union of the rows'."""
    path = Path(path)
    row = pd.DataFrame([record])
    table = pd.concat([pd.read_csv(path), row], ignore_index=True) if path.exists() else row
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))

"""Files written whole or not at all, and CSV reading whose errors name the file.

Shared by every layer that writes (rankings, benchmark tables, data-set caches, trial logs): a reader never sees
half a file, and a writer killed mid-write leaves a temporary that the next write removes.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = [
    "STALE_AFTER_SECONDS",
    "append_record",
    "atomic_write",
    "check_writable",
    "read_csv_file",
    "remove_stale_temporaries",
]


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


def check_writable(folder: str | Path, what: str, error: type[Exception] = OSError) -> None:
    """Refuse, before any work starts, a folder a run will write into but cannot: read-only, a file in the way, or
    no permission. Otherwise the run trains first and loses its result at the first write.

    Creates (and removes) a probe file in ``folder`` or, when it does not exist yet, in its nearest existing parent
    (the run creates the rest); nothing is left behind.

    Raises:
        error: one line naming ``what`` (e.g. ``--out``), the folder and the reason.
    """
    folder = Path(folder)
    probe = folder.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise error(f"{what}: cannot write in {folder}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sebra-write-check.", dir=probe)
    except OSError as e:
        raise error(
            f"{what}: cannot write in {folder} ({e.strerror or e}: {probe}); pass a writable folder"
        ) from None
    os.close(fd)
    os.unlink(tmp)


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
        df = pd.read_csv(path, **kwargs)
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
    if "index_col" not in kwargs and not isinstance(df.index, pd.RangeIndex):
        _refuse_extra_fields(path, name, what, error, kwargs["encoding"])
    return df


def _refuse_extra_fields(path: Path, name: str, what: str, error: type[Exception], encoding: str) -> None:
    """pandas reads data rows with one field more than the header (a trailing comma on each row) by taking the
    first column as the index, so every column shifts by one and the table is silently wrong; name the first such
    line instead."""
    import csv

    with open(path, newline="", encoding=encoding) as fh:
        rows = csv.reader(fh)
        header = next(rows, [])
        for line, row in enumerate(rows, start=2):
            if row and len(row) != len(header):
                trailing = " (a trailing comma?)" if row[-1] == "" else ""
                raise error(
                    f"{name}: line {line} has {len(row)} fields, the header {len(header)}{trailing}; "
                    f"expected a CSV file with {what}"
                )


def append_record(path: str | Path, record: dict) -> Path:
    """Add one row (a trial's settings and results) to a CSV table, creating it if needed; rewritten atomically,
    so a killed trial never leaves the table half-written. Columns are the union of the rows'."""
    path = Path(path)
    row = pd.DataFrame([record])
    table = pd.concat([pd.read_csv(path), row], ignore_index=True) if path.exists() else row
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))

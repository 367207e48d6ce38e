"""Atomic writes and the CSV trial log: a failed write leaves the old file (or none) and no temporary."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from sebra.utils.files import append_record, atomic_write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.txt"

    def half(tmp: str) -> None:
        Path(tmp).write_text("half a ta")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_failure_keeps_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old complete content")

    def half(tmp: str) -> None:
        Path(tmp).write_text("new but cut")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half)
    assert target.read_text() == "old complete content"
    assert _leftovers(tmp_path) == []


def test_atomic_write_gives_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        p = atomic_write(tmp_path / "f.txt", lambda tmp: Path(tmp).write_text("x"))
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600


def test_append_record_adds_rows_with_the_union_of_columns(tmp_path):
    path = tmp_path / "sub" / "trials.csv"
    append_record(path, {"a": 1, "b": "x"})
    append_record(path, {"a": 2, "c": 0.5})
    df = pd.read_csv(path)
    assert df["a"].tolist() == [1, 2] and df["b"].tolist()[0] == "x" and df["c"].tolist()[1] == 0.5
    assert [p.name for p in path.parent.iterdir()] == ["trials.csv"]  # no temporary left behind


def test_check_writable_probes_and_leaves_nothing(tmp_path) -> None:
    """A run's destination is probed before any work (issue 19): a file in the way is refused in one line, a
    missing folder is probed in its nearest parent and not created."""
    from sebra.utils.files import check_writable

    check_writable(tmp_path / "new" / "deeper", "--out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError, match=r"^--out: cannot write in .*f/sub: .*f is a file, not a folder$"):
        check_writable(tmp_path / "f" / "sub", "--out")
    with pytest.raises(ValueError):
        check_writable(tmp_path / "f", "--runs-dir", ValueError)


def test_read_csv_file_names_a_line_with_more_fields_than_the_header(tmp_path) -> None:
    """A trailing comma on every data row made pandas take the first column as the index, shifting every column
    (a manifest then failed with a wrong diagnosis: duplicate images); issue 19."""
    from sebra.utils.files import read_csv_file

    p = tmp_path / "m.csv"
    p.write_text("path,label,bg,split\na.png,0,1,train,\nb.png,1,0,train,\n")
    with pytest.raises(ValueError) as e:
        read_csv_file(p, "rows", kind="manifest")
    assert (
        str(e.value)
        == f"manifest {p}: line 2 has 5 fields, the header 4 (a trailing comma?); expected a CSV file with rows"
    )
    p.write_text("path,label\na.png,0\nb.png,1\n")
    assert read_csv_file(p, "rows")["path"].tolist() == ["a.png", "b.png"]

"""Ranking table export: round trips keep the contract dtypes, bad files give named errors, writes are atomic."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sebra.export import check_rankings, load_rankings, save_rankings


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": np.array([10, 3, 7, 42, 5], dtype=np.int64),
            "label": np.array([0, 0, 1, 1, 1], dtype=np.int64),
            "rank": np.array([1, -1, 2, 1, 3], dtype=np.int64),
            "position": np.array([1, 2, 2, 1, 3], dtype=np.int64),
            "p_y": np.array([0.9876543210, 0.1, 1e-7, 0.5, 0.333333333]),
            "path": ["a/x.png", "a/y.png", "b/z w.jpg", "b/ü.png", "c,d.png"],  # space, non-ASCII, comma
            "bg": np.array([0, 1, 1, 0, -1], dtype=np.int64),
            "coobj": np.array([0, 0, 1, 1, 0], dtype=np.int64),
            "group": np.array([0, 1, 3, 2, -1], dtype=np.int64),
        }
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_csv_round_trip_keeps_dtypes_and_values(tmp_path):
    df = _table()
    out = save_rankings(df, tmp_path / "r.csv")
    back = load_rankings(out)
    assert list(back.columns) == list(df.columns)
    assert dict(back.dtypes.astype(str)) == dict(df.dtypes.astype(str))
    # p_y is written with 6 significant digits (readable CSV); everything else is exact.
    pd.testing.assert_frame_equal(back.drop(columns="p_y"), df.drop(columns="p_y"))
    np.testing.assert_allclose(back["p_y"], df["p_y"], rtol=1e-6)
    assert _leftovers(tmp_path) == []


def test_csv_load_casts_narrow_ints_to_int64(tmp_path):
    df = _table().astype({"label": "int32", "rank": "int16"})
    back = load_rankings(save_rankings(df, tmp_path / "r.csv"))
    assert back["label"].dtype == np.int64 and back["rank"].dtype == np.int64
    assert back["rank"].tolist() == [1, -1, 2, 1, 3]


def test_parquet_round_trip_is_exact(tmp_path):
    pytest.importorskip("pyarrow")
    df = _table()
    back = load_rankings(save_rankings(df, tmp_path / "r.parquet"))
    pd.testing.assert_frame_equal(back, df)
    assert _leftovers(tmp_path) == []


def test_parquet_without_pyarrow_names_package_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    target = tmp_path / "r.parquet"
    with pytest.raises(ImportError, match=r"pyarrow.*not installed") as e:
        save_rankings(_table(), target)
    assert str(target) in str(e.value)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="pyarrow"):
        load_rankings(target)


def test_save_rankings_crash_mid_write_keeps_old_table(tmp_path, monkeypatch):
    target = tmp_path / "r.csv"
    save_rankings(_table(), target)
    before = target.read_bytes()

    def broken_to_csv(self, path, **kw):
        Path(path).write_text("index,label\n1,")
        raise OSError("interrupted")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="interrupted"):
        save_rankings(_table().iloc[:2], target)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_missing_column_is_named(tmp_path):
    p = tmp_path / "r.csv"
    _table().drop(columns="position").to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"r\.csv.*\['position'\]"):
        load_rankings(p)
    with pytest.raises(ValueError, match="position"):
        save_rankings(_table().drop(columns="position"), tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("rank", "1.5", r"column 'rank' holds '?1\.5'? on line 4; expected an integer"),
        ("label", "", r"column 'label' is empty on line 4; expected an integer"),
        ("index", "seven", r"column 'index' holds 'seven' on line 4; expected an integer"),
        ("p_y", "high", r"column 'p_y' holds 'high' on line 4; expected a number"),
    ],
)
def test_bad_value_names_file_column_and_line(tmp_path, column, value, match):
    p = tmp_path / "bad.csv"
    df = _table().astype({column: object})
    df.loc[2, column] = value  # third data row = line 4 (line 1 is the header)
    df.to_csv(p, index=False)
    with pytest.raises(ValueError, match=match) as e:
        load_rankings(p)
    assert str(p) in str(e.value)


def test_duplicate_index_rejected(tmp_path):
    df = _table()
    df.loc[3, "index"] = 3
    with pytest.raises(ValueError, match="index 3 appears twice"):
        check_rankings(df, "mine")
    with pytest.raises(ValueError, match="appears twice"):
        save_rankings(df, tmp_path / "r.csv")


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_rankings(tmp_path / "nope.csv")

"""Results files: reading (errors name the file), atomic run replacement, the ranking table, merging, lanes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sebra.bench.config import BenchError
from sebra.bench.store import (
    COLUMNS,
    completed_runs,
    lane_file,
    merge_results,
    ranking_table,
    read_results,
    write_run_rows,
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_ranking_table_is_a_projection_of_the_results() -> None:
    res = _frame(
        [
            ("jtt_error_set", 0, "kendall_tau_b", 0.3),
            ("jtt_error_set", 0, "weighted_tau", 0.2),
            ("jtt_error_set", 0, "seconds", 3.0),
            ("erm", 0, "seconds", 9.0),
        ]
    )
    rank = ranking_table(res)
    assert rank.to_dict("records") == [
        {
            "method": "jtt_error_set",
            "seed": 0,
            "levels": 4,
            "kendall_tau_b": 0.3,
            "weighted_tau": 0.2,
            "seconds": 3.0,
        }
    ]


@pytest.mark.parametrize("content, match", [("", "is empty"), ('method,seed\n"unclosed,1\n', "results file")])
def test_read_results_names_an_empty_or_corrupt_file(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "res.csv"
    path.write_text(content)
    with pytest.raises(BenchError, match=match) as e:
        read_results(path)
    assert str(path) in str(e.value)


def test_read_results_names_a_missing_column_and_a_bad_seed(tmp_path: Path) -> None:
    path = tmp_path / "res.csv"
    path.write_text("method,seed,value\nerm,0,1\n")
    with pytest.raises(BenchError, match=r"lacks the column\(s\) \['metric'\]"):
        read_results(path)
    path.write_text("method,seed,metric,value\nerm,0,seconds,1\nerm,x,seconds,2\n")
    with pytest.raises(BenchError, match="column 'seed' holds 'x' on line 3"):
        read_results(path)
    assert read_results(tmp_path / "none.csv").empty  # a sweep starts a missing file


def test_write_run_rows_replaces_one_seed_of_the_dropped_methods(tmp_path: Path) -> None:
    path = tmp_path / "res.csv"
    _frame([("erm", 0, "seconds", 1.0), ("erm", 1, "seconds", 2.0), ("jtt", 0, "seconds", 3.0)]).to_csv(
        path, index=False
    )
    rows = [{"method": "erm", "seed": 0, "metric": "seconds", "value": 9.0}]
    out = write_run_rows(path, rows, {"erm"}, 0)
    for table in (out, read_results(path)):
        got = {(m, s): v for m, s, _, v in table.itertuples(index=False)}
        assert got == {("erm", 0): 9.0, ("erm", 1): 2.0, ("jtt", 0): 3.0}
    assert completed_runs(out) == {("erm", 0), ("erm", 1), ("jtt", 0)}
    # no temporary left behind; the lock file stays (removing it would let a waiting writer lock a deleted file)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".res.csv.lock", "res.csv"]


def test_merge_results_joins_replaces_reruns_and_refuses_overlaps() -> None:
    a = _frame([("erm", 0, "worst_group_acc", 10.0)])
    b = _frame([("jtt", 0, "worst_group_acc", 50.0)])
    assert set(merge_results([a, b])["method"]) == {"erm", "jtt"}
    base = _frame([("jtt", 0, "worst_group_acc", 1.0), ("jtt", 0, "kendall_tau_b", 0.5)])
    merged = merge_results([b], base=base)
    assert merged.values.tolist() == [["jtt", 0, "worst_group_acc", 50.0]]  # the re-run's old rows all go
    with pytest.raises(BenchError, match="erm seed 0 worst_group_acc is reported by two files"):
        merge_results([a, a])


def test_lane_file_is_per_variant_and_lane(tmp_path: Path) -> None:
    assert lane_file(tmp_path / "family.csv", "patch-tint", "a") == tmp_path / "family" / "patch-tint.a.csv"


def test_two_writers_of_one_results_file_keep_every_run(tmp_path: Path) -> None:
    # Two sweeps given the same --out, as threads (the lock is a file lock: processes wait on it the same way).
    import threading

    from sebra.bench.store import completed_runs, read_results, write_run_rows

    path = tmp_path / "results.csv"

    def sweep(method: str) -> None:
        for seed in range(40):
            rows = [
                {"method": method, "seed": seed, "metric": m, "value": float(seed)}
                for m in ("wga", "seconds")
            ]
            write_run_rows(path, rows, {method}, seed)

    threads = [threading.Thread(target=sweep, args=(m,)) for m in ("erm", "sebra")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = completed_runs(read_results(path))
    assert done == {(m, s) for m in ("erm", "sebra") for s in range(40)}
    assert len(read_results(path)) == 160
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.csv.lock", "results.csv"]


def test_a_writer_blocked_past_the_timeout_names_the_file(tmp_path: Path) -> None:
    from sebra.bench.store import results_lock

    path = tmp_path / "results.csv"
    with results_lock(path):
        with pytest.raises(
            BenchError, match=rf"^{path}: another sweep has been writing this results file for 0.1 s"
        ):
            with results_lock(path, timeout=0.1):
                pass

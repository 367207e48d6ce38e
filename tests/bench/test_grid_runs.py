"""sebra.bench.grid_runs: lanes resume cell by cell, merge keeps the later lane, and sebra bench --grid refuses bad
arguments before anything trains."""

from __future__ import annotations

from contextlib import nullcontext

import pandas as pd
import pytest

from sebra.bench import grid_runs
from sebra.bench.grid import GRID_COLUMNS
from sebra.cli import bench as bench_cli
from sebra.datasets.family import variants


def _fake_cell(calls: list):
    def run_cell(cfg, name, role, seed, runs_dir, *, mitigations, rankers, erm_conf_epoch, done, on_rows):
        calls.append((name, seed, frozenset(done)))
        for m in mitigations:
            if ("sebra", m) not in done:
                on_rows([dict(zip(GRID_COLUMNS, (name, role, "sebra", m, seed, "worst_group_acc", 50.0)))])
        return []

    return run_cell


def test_a_lane_skips_what_it_holds_and_refuses_another_role(monkeypatch, tmp_path) -> None:
    calls: list = []
    monkeypatch.setattr(grid_runs, "run_cell", _fake_cell(calls))
    monkeypatch.setattr("sebra.bench.family.family_config", lambda base, name: {})
    dev = variants("dev")[:2]
    kw = {"lane": "x", "results_dir": tmp_path, "runs_dir": tmp_path / "runs", "log": lambda line: None}
    lane = grid_runs.run_grid({}, "dev", dev, [0, 1], ("stage2",), **kw)
    assert [(c[0], c[1]) for c in calls] == [(dev[0], 0), (dev[1], 0), (dev[0], 1), (dev[1], 1)]
    assert len(pd.read_csv(lane)) == 4
    calls.clear()
    grid_runs.run_grid({}, "dev", dev, [0, 1], ("stage2", "rank_dro"), **kw)
    assert all(("sebra", "stage2") in c[2] for c in calls)  # the lane file said so: not fitted again
    assert len(pd.read_csv(lane)) == 8
    with pytest.raises(ValueError, match="is a spent variant, not dev"):
        grid_runs.run_grid({}, "dev", [variants("spent")[0]], [0], ("stage2",), **kw)


def test_merge_keeps_the_later_lane_for_a_cell_held_twice(tmp_path) -> None:
    (tmp_path / "grid").mkdir()
    row = ("v", "dev", "sebra", "stage2", 0, "worst_group_acc")
    pd.DataFrame([(*row, 1.0)], columns=GRID_COLUMNS).to_csv(tmp_path / "grid" / "a.csv", index=False)
    pd.DataFrame(
        [(*row, 2.0), ("v", "dev", "erm", None, 0, "worst_group_acc", 3.0)], columns=GRID_COLUMNS
    ).to_csv(tmp_path / "grid" / "b.csv", index=False)
    df = grid_runs.merge_grid(tmp_path)
    assert sorted(df["value"]) == [2.0, 3.0]
    assert (tmp_path / "grid.csv").exists() and set(df["mitigation"]) == {"stage2", ""}
    with pytest.raises(FileNotFoundError, match="no lane files"):
        grid_runs.merge_grid(tmp_path / "empty")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "--role", "dev"], "--grid runs on the benchmark family"),
        (["--family", "--grid"], "--grid needs --role"),
        (
            ["--family", "--grid", "--role", "dev", "--rankers", "sebra,oracle"],
            "unknown ranker(s) ['oracle']",
        ),
        (["--family", "--grid", "--role", "dev", "--mitigations", "dfr"], "unknown mitigation 'dfr'"),
        (["--family", "--grid", "--role", "dev", "--variants", "nope"], "'nope'"),
    ],
)
def test_sebra_bench_grid_refuses_bad_arguments_with_exit_2(
    argv, message, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if argv[0] == "--grid" else nullcontext():  # argparse's error: exit 2
        assert bench_cli.main(argv) == 2
    assert message in capsys.readouterr().err

"""The sweep: resume without duplicates, rows derived from two runs, the ranking table kept in step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sebra.bench.config import BenchError
from sebra.bench.store import completed_runs, read_results
from sebra.bench.sweep import owned_methods

from .helpers import FakeRun, no_duplicates, sweep


def test_a_half_finished_results_file_is_completed_not_duplicated(cfg, tmp_path: Path) -> None:
    out = tmp_path / "res.csv"
    finished = FakeRun()(cfg, "erm", 0, tmp_path / "runs", "toy")
    leftover = [
        {"method": "jtt", "seed": 0, "metric": "worst_group_acc", "value": -1.0},  # no 'seconds': unfinished
        {"method": "jtt_error_set", "seed": 0, "metric": "kendall_tau_b", "value": -1.0},
    ]
    pd.DataFrame(finished + leftover).to_csv(out, index=False)
    fake = FakeRun()
    res = sweep(cfg, tmp_path, fake)
    assert fake.calls == [("jtt", 0), ("sebra", 0), ("erm", 1), ("jtt", 1), ("sebra", 1)]
    no_duplicates(res)
    assert completed_runs(res) >= {(m, s) for m in ("erm", "jtt", "sebra") for s in (0, 1)}
    assert (res["value"] != -1.0).all()  # the unfinished run's leftovers were replaced
    pd.testing.assert_frame_equal(read_results(out), res)
    again = FakeRun()
    sweep(cfg, tmp_path, again)
    assert again.calls == []  # everything finished: nothing reruns
    pd.testing.assert_frame_equal(read_results(out), res)


def test_a_killed_sweep_resumes(cfg, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, tmp_path, FakeRun(die_at=2))
    partial = read_results(tmp_path / "res.csv")
    assert completed_runs(partial) == {("erm", 0), ("jtt", 0), ("jtt_error_set", 0)}
    fake = FakeRun()
    res = sweep(cfg, tmp_path, fake)
    assert fake.calls == [("sebra", 0), ("erm", 1), ("jtt", 1), ("sebra", 1)]
    no_duplicates(res)


def test_same_budget_ranker_is_derived_once_both_runs_exist(cfg, tmp_path: Path) -> None:
    res = sweep(cfg, tmp_path, FakeRun(), methods=("erm",), seeds=(0,))
    assert "erm_conf_same_budget" not in set(res["method"])  # sebra has not run yet
    res = sweep(cfg, tmp_path, FakeRun(), methods=("erm", "sebra"), seeds=(0, 1))
    sb = res[res["method"] == "erm_conf_same_budget"].pivot(index="seed", columns="metric", values="value")
    # budgets 5 (seed 0) and 6 (seed 1) optimizer steps; records at steps 2, 4, 6 -> epoch 2 (tie 4/6 -> 4), epoch 3
    assert sb.loc[0, "epoch"] == 2 and sb.loc[0, "kendall_tau_b"] == 0.9 and sb.loc[0, "budget_steps"] == 5
    assert sb.loc[1, "epoch"] == 3 and sb.loc[1, "rank_optimizer_steps"] == 6 and sb.loc[1, "seconds"] == 3.0
    no_duplicates(res)
    rank = pd.read_csv(tmp_path / "rank.csv")
    assert list(rank.columns) == ["method", "seed", "levels", "kendall_tau_b", "weighted_tau", "seconds"]
    sebra0 = rank[(rank["method"] == "sebra") & (rank["seed"] == 0)].set_index("levels")
    assert sebra0.loc[4, "kendall_tau_b"] == 0.5 and sebra0.loc[3, "weighted_tau"] == 0.45
    assert sebra0.loc[4, "seconds"] == 7.0  # Stage 1 time, not the whole run
    assert len(rank[(rank["method"] == "erm_conf_same_budget")]) == 4  # 2 seeds x 2 level schemes


def test_a_rerun_of_sebra_invalidates_the_same_budget_rows_it_fed(cfg) -> None:
    assert owned_methods(cfg, "sebra") >= {"sebra", "sebra_val_acc", "erm_conf_same_budget"}
    assert "erm_conf_same_budget" not in owned_methods(cfg, "jtt")


def test_unknown_methods_and_runs_without_seconds_are_refused(cfg, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"no method\(s\) \['nope'\] under methods"):
        sweep(cfg, tmp_path, FakeRun(), methods=("erm", "nope"))

    def no_seconds(*args) -> list[dict]:
        return [r for r in FakeRun()(*args) if r["metric"] != "seconds"]

    with pytest.raises(BenchError, match="returned no 'seconds' row"):
        sweep(cfg, tmp_path, no_seconds, methods=("jtt",))


def test_a_run_another_live_lane_holds_is_skipped_and_a_dead_lanes_claim_is_taken_over(
    cfg, tmp_path: Path
) -> None:
    import json
    import socket
    import subprocess
    import sys

    from sebra.bench.claims import claim_path, claim_run
    from sebra.bench.run import run_dir

    host = socket.gethostname()
    # a live process of this machine (not this one) holds erm seed 0: as a second lane started beside it would see
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = claim_path(run_dir(tmp_path / "runs", "toy", "erm", 0))
        live.parent.mkdir(parents=True)
        live.write_text(json.dumps({"pid": holder.pid, "host": host, "lane": "a"}))
        # a killed lane's claim of jtt seed 0: its process is gone
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        stale = claim_path(run_dir(tmp_path / "runs", "toy", "jtt", 0))
        stale.parent.mkdir(parents=True)
        stale.write_text(json.dumps({"pid": dead.pid, "host": host, "lane": "b"}))
        fake = FakeRun()
        res = sweep(cfg, tmp_path, fake, seeds=(0,))
        assert fake.calls == [("jtt", 0), ("sebra", 0)]  # erm 0 left to the live lane
        assert ("erm", 0) not in completed_runs(res)
        assert live.exists() and not stale.exists()  # the taken-over claim was released after its run
        assert claim_run(run_dir(tmp_path / "runs", "toy", "erm", 0))["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone, the next sweep runs what it held, and leaves no claim behind
    again = FakeRun()
    sweep(cfg, tmp_path, again, seeds=(0,))
    assert again.calls == [("erm", 0)]
    assert not list((tmp_path / "runs").rglob("*.claim"))

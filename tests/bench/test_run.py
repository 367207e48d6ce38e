"""Real runs on the tiny data module: every method's rows, its rankers', and a second selection rule."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sebra.bench.config import load_config
from sebra.bench.run import run_dir
from sebra.bench.store import completed_runs, read_results

from .helpers import CONFIG, sweep


def test_real_runs_on_a_tiny_data_module(cfg, tmp_path: Path) -> None:
    """erm (+ confidence ranker), jtt (+ error-set ranker), groupdro and oracle fitted and tested for real."""
    res = sweep(cfg, tmp_path, None, methods=("erm", "jtt", "groupdro", "oracle"), seeds=(0,))
    wide = res.pivot(index="method", columns="metric", values="value")
    for m in ("erm", "jtt", "groupdro", "oracle"):
        assert 0 <= wide.loc[m, "worst_group_acc"] <= wide.loc[m, "avg_acc"] <= 100
        assert wide.loc[m, "seconds"] > 0 and not np.isnan(wide.loc[m, "gap_mean"])
    assert -1 <= wide.loc["jtt_error_set", "kendall_tau_b"] <= 1
    assert wide.loc["jtt_error_set", "error_set_size"] == wide.loc["jtt", "error_set_size"]
    assert wide.loc["jtt_error_set", "rank_optimizer_steps"] == 2  # one identification epoch of 16 / 8
    assert wide.loc["erm_conf_best_epoch", "best_epoch"] in (1, 2, 3)
    assert np.isnan(wide.loc["erm", "kendall_tau_b"])  # ERM's own row has no ranking of its own
    d = run_dir(tmp_path / "runs", "toy", "jtt", 0)
    assert (d / "jtt_error_set.csv").exists() and (d / "metrics.csv").exists()
    q = pd.read_csv(run_dir(tmp_path / "runs", "toy", "erm", 0) / "confidence_quality.csv")
    assert q["step"].tolist() == [2, 4, 6]
    best = q.loc[q["kendall_tau_b"].idxmax()]
    assert wide.loc["erm_conf_best_epoch", "kendall_tau_b"] == pytest.approx(best["kendall_tau_b"])


def test_real_sebra_run_has_ranking_metrics(cfg, tmp_path: Path) -> None:
    res = sweep(cfg, tmp_path, None, methods=("sebra",), seeds=(0,))
    wide = res.pivot(index="method", columns="metric", values="value").loc["sebra"]
    assert 1 <= wide["rank_steps"] <= 2 and wide["rank_optimizer_steps"] == 2 * wide["rank_steps"]
    assert 0 < wide["rank_seconds"] < wide["seconds"]
    assert all(
        -1 <= wide[k] <= 1 for k in ("kendall_tau_b", "weighted_tau", "kendall_tau_b_3", "weighted_tau_3")
    )
    metrics = res.loc[res["method"] == "sebra", "metric"].tolist()  # the order rows are written in
    assert metrics[7:] == [
        "kendall_tau_b",
        "weighted_tau",
        "kendall_tau_b_3",
        "weighted_tau_3",
        "rank_steps",
        "rank_optimizer_steps",
        "rank_seconds",
        "seconds",
    ]


def test_also_select_tests_the_same_run_under_val_acc(tmp_path: Path) -> None:
    conf = copy.deepcopy(CONFIG)
    conf["methods"] = {
        "erm": {"model": conf["methods"]["erm"]["model"], "bench": {"also_select": ["val_acc"]}}
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(conf))
    res = sweep(load_config(path), tmp_path, None, methods=("erm",), seeds=(0,))
    also = res[res["method"] == "erm_val_acc"].set_index("metric")["value"]
    assert {"worst_group_acc", "avg_acc", "id_acc"} <= set(also.index)
    assert also[["worst_group_acc", "avg_acc", "id_acc"]].between(0, 100).all()
    ckpts = list((tmp_path / "runs" / "toy" / "erm" / "seed0" / "checkpoints").glob("also-val_acc-*.ckpt"))
    assert len(ckpts) == 1
    assert completed_runs(read_results(tmp_path / "res.csv")) == {("erm", 0)}

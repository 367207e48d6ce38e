"""sebra/cli/results.py: the one results table (demo and sebra fit), group names, ranking quality, the results files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from expected import TABLE_METRICS
from tiny_data import TinyDataModule

from sebra.cli.results import (
    COLUMNS,
    group_accuracies,
    group_names,
    level_scores,
    result_row,
    results_heading,
    results_table,
    write_results,
)
from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.metrics import ranking_quality
from sebra.scoring import confidence_rankings

TEST = {
    "test_wga": 0.25,
    "test_acc": 0.875,
    "test_id_acc": 0.9375,
    "test_gap_a": -0.125,
    "test_gap_b": -0.0625,
    "test_gap_both": -0.5,
    "test_gap_mean": -0.25,
    "test_echoes_gap_a": -0.1,
    "test_group_mean": 0.7,
    "test_group_acc0": 1.0,
    "test_group_acc1": 0.5,
    "test_group_acc2": float("nan"),
}


def test_result_row_in_percent_in_the_table_order() -> None:
    row = result_row(TEST)
    assert list(row) == TABLE_METRICS
    assert row["worst_group_acc"] == 25.0 and row["gap_both"] == -50.0
    extra = result_row(TEST, extra=True)
    assert extra["echoes_gap_a"] == pytest.approx(-10.0) and extra["group_mean_acc"] == pytest.approx(70.0)
    assert "echoes_gap_b" not in extra  # not measured: left out, not invented


def test_a_data_set_without_two_bias_attributes_has_no_gap_columns() -> None:
    assert result_row({"test_wga": 0.5, "test_acc": 0.75}) == {"worst_group_acc": 50.0, "avg_acc": 75.0}


def test_the_demos_heading() -> None:
    assert results_heading("Built-in benchmark", "val_wga", ("background", "symbol")) == (
        "Built-in benchmark (test split, checkpoint chosen by validation worst-group accuracy; accuracies in %;\n"
        "gap_a = background conflict, gap_b = symbol conflict, gap_both = both, each minus I.D. accuracy)"
    )
    assert results_heading("BAR", "val_acc", (), ["worst_group_acc", "avg_acc"]) == (
        "BAR (test split, checkpoint chosen by validation accuracy; accuracies in %)"
    )


def test_table_keeps_the_column_order_two_decimals_and_dashes() -> None:
    rows = {
        "sebra": {**result_row(TEST), "kendall_tau_b": 0.8612, "seconds": 114.0, "weighted_tau": 0.9},
        "erm": {**result_row(TEST), "seconds": 40.25},
    }
    lines = results_table(rows).splitlines()
    assert lines[0].split() == [c for c in COLUMNS]  # weighted_tau is not a column
    assert lines[1].split() == [
        "sebra",
        "25.00",
        "87.50",
        "93.75",
        "-12.50",
        "-6.25",
        "-50.00",
        "-25.00",
        "0.86",
        "114.00",
    ]
    assert lines[2].split()[-2:] == ["-", "40.25"]


def test_group_names_are_the_data_sets_own() -> None:
    dm = SimpleNamespace(
        bias=BiasSpec(("bg", "coobj"), ((0, 0), (1, 1)), group_names={0: "g-zero", 1: "g-one"})
    )
    assert group_names(dm) == {0: "g-zero", 1: "g-one"}


def test_group_names_otherwise_say_class_and_alignment() -> None:
    dm = TinyDataModule()
    dm.setup("fit")
    names = group_names(dm)
    assert sorted(names) == list(range(8))  # group = label * 4 + bg * 2 + coobj
    assert names[0] == "a: bg aligned, coobj aligned"
    assert names[2] == "a: bg conflicting, coobj aligned"
    assert names[4] == "b: bg conflicting, coobj conflicting"
    assert names[7] == "b: bg aligned, coobj aligned"


def test_group_accuracies_by_name() -> None:
    got = group_accuracies(TEST, {0: "first", 1: "second"})
    assert list(got) == ["first", "second", "group 2"]
    assert got["first"] == 100.0 and got["second"] == 50.0 and math.isnan(got["group 2"])


def test_level_scores_against_the_ground_truth_levels() -> None:
    bias = BiasSpec(("bg", "coobj"), ((0, 0), (1, 1)), (0.9, 0.9), stronger=0)
    rng = np.random.default_rng(0)
    n = 40
    t = pd.DataFrame(
        {"label": np.repeat([0, 1], n // 2), "bg": rng.integers(0, 2, n), "coobj": rng.integers(0, 2, n)}
    )
    t["index"] = np.arange(n)
    levels = bias.levels(
        torch.tensor(t["label"].to_numpy()), torch.tensor(t[["bg", "coobj"]].to_numpy())
    ).numpy()
    t["level"] = levels
    # position within class by true level: the perfect ranking; then its reverse
    t["position"] = t.groupby("label")["level"].rank(method="first").astype(int)
    train = ImageDataset(t[["index", "label", "bg", "coobj"]], images=torch.zeros(n, 3, 2, 2), bias=bias)
    perfect = level_scores(t, train)
    assert perfect["kendall_tau_b"] == pytest.approx(1.0) and perfect["kendall_tau_b_3"] > 0.5
    t["position"] = t.groupby("label")["level"].rank(method="first", ascending=False).astype(int)
    assert level_scores(t, train)["kendall_tau_b"] < -0.5  # reversed (levels are read off equal-size chunks)


def test_level_scores_join_by_dataset_index() -> None:
    dm = TinyDataModule()
    dm.setup("fit")
    train = dm.train_dataset
    lv4 = train.bias.levels(train.labels, train.attrs, scheme=4).numpy()
    # a perfect ranking: p_y decreasing with the true level; rows shuffled so row order != dataset order
    perfect = confidence_rankings(train.indices, train.labels, 1.0 - lv4 / 10).sample(
        frac=1.0, random_state=0
    )
    s = level_scores(perfect, train)
    assert s["kendall_tau_b"] == pytest.approx(1.0) and s["kendall_tau_b_3"] == pytest.approx(1.0)
    reverse = confidence_rankings(train.indices, train.labels, lv4 / 10.0)
    assert level_scores(reverse, train)["kendall_tau_b"] < -0.7  # chunked levels keep ties: not exactly -1
    # against ranking_quality with levels looked up by hand, on an arbitrary ranking
    g = torch.Generator().manual_seed(0)
    rk = confidence_rankings(train.indices, train.labels, torch.rand(16, generator=g))
    pos = {int(i): p for p, i in enumerate(train.indices)}
    by_hand = [int(train.bias.levels(train.labels, train.attrs, 3)[pos[int(i)]]) for i in rk["index"]]
    assert level_scores(rk, train)["weighted_tau_3"] == pytest.approx(
        ranking_quality(rk, by_hand)["weighted_tau"]
    )
    bad = perfect.copy()
    bad.loc[bad.index[0], "label"] = 1 - bad["label"].iloc[0]
    with pytest.raises(ValueError, match="another label"):
        level_scores(bad, train)


def test_results_files_are_written_whole(tmp_path: Path) -> None:
    rows = {"sebra": {**result_row(TEST), "seconds": 3.5, "kendall_tau_b": float("nan")}}
    groups = {"sebra": group_accuracies(TEST, {0: "a: bg aligned", 1: "a: bg conflicting"})}
    js, csv = write_results(tmp_path, rows, groups, {"selection": "val_wga"})
    doc = json.loads(js.read_text())  # NaN written as null: strict JSON
    assert doc["selection"] == "val_wga" and doc["units"] == "%"
    assert doc["rows"]["sebra"]["worst_group_acc"] == 25.0 and doc["rows"]["sebra"]["kendall_tau_b"] is None
    assert doc["group_acc"]["sebra"] == {"a: bg aligned": 100.0, "a: bg conflicting": 50.0, "group 2": None}
    table = pd.read_csv(csv)
    assert list(table.columns[:3]) == ["method", "worst_group_acc", "avg_acc"]
    assert table.loc[0, "group_acc: a: bg conflicting"] == 50.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

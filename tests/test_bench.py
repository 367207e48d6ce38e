"""The benchmark runner (resume without duplicates, derived rankers, config errors) and the tables."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent / "methods"))  # tiny_data, for the real runs

from sebra import bench
from sebra.bench import (
    BenchError,
    completed_runs,
    load_config,
    parse_seeds,
    ranking_table,
    read_results,
    run_bench,
    run_dir,
)
from sebra.bench_tables import (
    aggregate,
    format_mean_std,
    markdown_tables,
    plot_accuracy,
    update_markdown_block,
)

CONFIG = {
    "dataset": "toy",
    "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    "trainer": {"accelerator": "cpu"},
    "methods": {
        "erm": {
            "class_path": "sebra.methods.erm.ERMModule",
            "init_args": {"backbone": "test_resnet", "epochs": 3},
            "confidence_ranker": {"budget_from": "sebra"},
        },
        "jtt": {
            "class_path": "sebra.methods.jtt.JTTModule",
            "init_args": {"backbone": "test_resnet", "id_epochs": 1, "epochs": 1, "upweight": 4},
        },
        "groupdro": {
            "class_path": "sebra.methods.group_dro.GroupDROModule",
            "init_args": {"backbone": "test_resnet", "epochs": 1, "eta": 0.1},
        },
        "sebra": {
            "class_path": "sebra.methods.sebra.SebraModule",
            "init_args": {"backbone": "test_resnet", "max_steps": 2, "epochs": 1, "gap": 1, "rank_lr": 0.01},
        },
        "oracle": {
            "class_path": "sebra.methods.erm.ERMModule",
            "init_args": {"backbone": "test_resnet", "epochs": 1, "sampling": "group_balanced"},
        },
    },
}


@pytest.fixture
def cfg(tmp_path: Path) -> dict:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return load_config(path)


class FakeRun:
    """Stands in for run_one: records calls, returns rows derived from (method, seed), optionally dies."""

    def __init__(self, die_at: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.die_at = die_at

    def __call__(self, cfg: dict, method: str, seed: int, runs_dir: Path, dataset: str) -> list[dict]:
        if self.die_at is not None and len(self.calls) == self.die_at:
            raise KeyboardInterrupt
        self.calls.append((method, seed))
        rows = {"worst_group_acc": 10.0 * seed + len(method), "avg_acc": 90.0, "seconds": 60.0}
        out = []
        if method == "sebra":
            rows.update(
                kendall_tau_b=0.5,
                weighted_tau=0.6,
                kendall_tau_b_3=0.4,
                weighted_tau_3=0.45,
                rank_optimizer_steps=5.0 + seed,
                rank_seconds=7.0,
            )
        if method == "jtt":
            out += [
                {"method": "jtt_error_set", "seed": seed, "metric": k, "value": v}
                for k, v in {"kendall_tau_b": 0.3, "weighted_tau": 0.2, "seconds": 3.0}.items()
            ]
        if method == "erm":
            d = run_dir(runs_dir, dataset, method, seed)
            d.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {
                    "epoch": [1, 2, 3],
                    "step": [2, 4, 6],
                    "seconds": [1.0, 2.0, 3.0],
                    "kendall_tau_b": [0.1, 0.9, 0.2],
                    "weighted_tau": [0.1, 0.8, 0.2],
                    "kendall_tau_b_3": [0.3, 0.2, 0.1],
                    "weighted_tau_3": [0.3, 0.2, 0.1],
                }
            ).to_csv(d / "confidence_quality.csv", index=False)
        return [{"method": method, "seed": seed, "metric": k, "value": v} for k, v in rows.items()] + out


def _sweep(cfg: dict, tmp_path: Path, run_fn, methods=("erm", "jtt", "sebra"), seeds=(0, 1)) -> pd.DataFrame:
    return run_bench(
        cfg,
        list(methods),
        list(seeds),
        out=tmp_path / "res.csv",
        ranking_out=tmp_path / "rank.csv",
        runs_dir=tmp_path / "runs",
        dataset="toy",
        run_fn=run_fn,
        progress=False,
    )


def _no_duplicates(df: pd.DataFrame) -> None:
    assert not df.duplicated(["method", "seed", "metric"]).any()


def test_a_half_finished_results_file_is_completed_not_duplicated(cfg, tmp_path: Path) -> None:
    out = tmp_path / "res.csv"
    finished = FakeRun()(cfg, "erm", 0, tmp_path / "runs", "toy")
    leftover = [
        {"method": "jtt", "seed": 0, "metric": "worst_group_acc", "value": -1.0},  # no 'seconds': unfinished
        {"method": "jtt_error_set", "seed": 0, "metric": "kendall_tau_b", "value": -1.0},
    ]
    pd.DataFrame(finished + leftover).to_csv(out, index=False)
    fake = FakeRun()
    res = _sweep(cfg, tmp_path, fake)
    assert fake.calls == [("jtt", 0), ("sebra", 0), ("erm", 1), ("jtt", 1), ("sebra", 1)]
    _no_duplicates(res)
    assert completed_runs(res) >= {(m, s) for m in ("erm", "jtt", "sebra") for s in (0, 1)}
    assert (res["value"] != -1.0).all()  # the unfinished run's leftovers were replaced
    pd.testing.assert_frame_equal(read_results(out), res)
    again = FakeRun()
    _sweep(cfg, tmp_path, again)
    assert again.calls == []  # everything finished: nothing reruns
    pd.testing.assert_frame_equal(read_results(out), res)


def test_a_killed_sweep_resumes(cfg, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _sweep(cfg, tmp_path, FakeRun(die_at=2))
    partial = read_results(tmp_path / "res.csv")
    assert completed_runs(partial) == {("erm", 0), ("jtt", 0), ("jtt_error_set", 0)}
    fake = FakeRun()
    res = _sweep(cfg, tmp_path, fake)
    assert fake.calls == [("sebra", 0), ("erm", 1), ("jtt", 1), ("sebra", 1)]
    _no_duplicates(res)


def test_same_budget_ranker_is_derived_once_both_runs_exist(cfg, tmp_path: Path) -> None:
    res = _sweep(cfg, tmp_path, FakeRun(), methods=("erm",), seeds=(0,))
    assert "erm_conf_same_budget" not in set(res["method"])  # sebra has not run yet
    res = _sweep(cfg, tmp_path, FakeRun(), methods=("erm", "sebra"), seeds=(0, 1))
    sb = res[res["method"] == "erm_conf_same_budget"].pivot(index="seed", columns="metric", values="value")
    # budgets 5 (seed 0) and 6 (seed 1) optimizer steps; records at steps 2, 4, 6 -> epoch 2 (tie 4/6 -> 4), epoch 3
    assert sb.loc[0, "epoch"] == 2 and sb.loc[0, "kendall_tau_b"] == 0.9 and sb.loc[0, "budget_steps"] == 5
    assert sb.loc[1, "epoch"] == 3 and sb.loc[1, "rank_optimizer_steps"] == 6 and sb.loc[1, "seconds"] == 3.0
    _no_duplicates(res)
    rank = pd.read_csv(tmp_path / "rank.csv")
    assert list(rank.columns) == ["method", "seed", "levels", "kendall_tau_b", "weighted_tau", "seconds"]
    sebra0 = rank[(rank["method"] == "sebra") & (rank["seed"] == 0)].set_index("levels")
    assert sebra0.loc[4, "kendall_tau_b"] == 0.5 and sebra0.loc[3, "weighted_tau"] == 0.45
    assert sebra0.loc[4, "seconds"] == 7.0  # Stage 1 time, not the whole run
    assert len(rank[(rank["method"] == "erm_conf_same_budget")]) == 4  # 2 seeds x 2 level schemes


def test_ranking_table_is_a_projection_of_the_results() -> None:
    res = pd.DataFrame(
        [
            ("jtt_error_set", 0, "kendall_tau_b", 0.3),
            ("jtt_error_set", 0, "weighted_tau", 0.2),
            ("jtt_error_set", 0, "seconds", 3.0),
            ("erm", 0, "seconds", 9.0),
        ],
        columns=bench.COLUMNS,
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


def test_seeds_config_errors_and_cli(cfg, tmp_path: Path, capsys) -> None:
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0,5,7") == [0, 5, 7] and parse_seeds("4,") == [4]
    for bad in ("0", "x", "1,1"):
        with pytest.raises(BenchError, match="--seeds"):
            parse_seeds(bad)
    path = tmp_path / "bad.yaml"
    broken = {**CONFIG, "methods": {"erm": {"init_args": {}}}}
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(BenchError, match=r"bad.yaml: methods.erm.class_path is missing"):
        load_config(path)
    seeded = {**CONFIG, "methods": {"erm": {"class_path": "x.Y", "init_args": {"seed": 1}}}}
    path.write_text(yaml.safe_dump(seeded))
    with pytest.raises(BenchError, match=r"methods.erm.init_args.seed is set per run"):
        load_config(path)
    assert bench.main(["--dataset", "toy", "--config", str(path)]) == 2
    assert "init_args.seed" in capsys.readouterr().err
    good = tmp_path / "toy.yaml"
    assert bench.main(["--dataset", "other", "--config", str(good)]) == 2
    assert "dataset is 'toy'" in capsys.readouterr().err
    assert bench.main(["--dataset", "toy", "--config", str(good), "--methods", "erm,nope", "--dry-run"]) == 2
    assert "no method(s) ['nope']" in capsys.readouterr().err
    assert (
        bench.main(
            [
                "--dataset",
                "toy",
                "--config",
                str(good),
                "--seeds",
                "2",
                "--methods",
                "erm,jtt",
                "--out",
                str(tmp_path / "r.csv"),
                "--dry-run",
            ]
        )
        == 0
    )
    assert "4 of 4 run(s) to do" in capsys.readouterr().out


def test_real_runs_on_a_tiny_data_module(cfg, tmp_path: Path) -> None:
    """erm (+ confidence ranker), jtt (+ error-set ranker), groupdro and oracle fitted and tested for real."""
    res = _sweep(cfg, tmp_path, None, methods=("erm", "jtt", "groupdro", "oracle"), seeds=(0,))
    wide = res.pivot(index="method", columns="metric", values="value")
    for m in ("erm", "jtt", "groupdro", "oracle"):
        assert 0 <= wide.loc[m, "worst_group_acc"] <= wide.loc[m, "avg_acc"] <= 100
        assert wide.loc[m, "seconds"] > 0 and not np.isnan(wide.loc[m, "gap_mean"])
    assert -1 <= wide.loc["jtt_error_set", "kendall_tau_b"] <= 1
    assert wide.loc["jtt_error_set", "error_set_size"] == wide.loc["jtt", "error_set_size"]
    assert wide.loc["jtt_error_set", "rank_optimizer_steps"] == 2  # one identification epoch of 16 / 8
    assert wide.loc["erm_conf_best_epoch", "best_epoch"] in (1, 2, 3)
    d = run_dir(tmp_path / "runs", "toy", "jtt", 0)
    assert (d / "jtt_error_set.csv").exists() and (d / "metrics.csv").exists()
    q = pd.read_csv(run_dir(tmp_path / "runs", "toy", "erm", 0) / "confidence_quality.csv")
    assert q["step"].tolist() == [2, 4, 6]
    best = q.loc[q["kendall_tau_b"].idxmax()]
    assert wide.loc["erm_conf_best_epoch", "kendall_tau_b"] == pytest.approx(best["kendall_tau_b"])


def test_real_sebra_run_has_ranking_metrics(cfg, tmp_path: Path) -> None:
    res = _sweep(cfg, tmp_path, None, methods=("sebra",), seeds=(0,))
    wide = res.pivot(index="method", columns="metric", values="value").loc["sebra"]
    assert 1 <= wide["rank_steps"] <= 2 and wide["rank_optimizer_steps"] == 2 * wide["rank_steps"]
    assert 0 < wide["rank_seconds"] < wide["seconds"]
    assert all(
        -1 <= wide[k] <= 1 for k in ("kendall_tau_b", "weighted_tau", "kendall_tau_b_3", "weighted_tau_3")
    )


# ---------------------------------------------------------------------------------------------------------- tables
def _hand_results() -> pd.DataFrame:
    rows = []
    for seed, (wga, idacc, secs) in enumerate(
        [(10.0, 90.0, 120.0), (20.0, 94.0, 180.0), (30.0, 92.0, 150.0)]
    ):
        rows += [
            ("erm", seed, "worst_group_acc", wga),
            ("erm", seed, "id_acc", idacc),
            ("erm", seed, "seconds", secs),
        ]
    rows += [
        ("groupdro", 0, "worst_group_acc", 70.0),
        ("groupdro", 0, "id_acc", 85.0),
        ("groupdro", 0, "seconds", 60.0),
    ]
    rows += [("sebra", s, k, v) for s, v in ((0, 0.5), (1, 0.7)) for k in ("kendall_tau_b",)]
    rows += [("sebra", 0, "rank_seconds", 30.0), ("sebra", 1, "rank_seconds", 50.0)]
    return pd.DataFrame(rows, columns=bench.COLUMNS)


def test_aggregate_mean_and_sample_std() -> None:
    agg = aggregate(_hand_results()).set_index(["method", "metric"])
    assert agg.loc[("erm", "worst_group_acc"), "mean"] == pytest.approx(20.0)
    assert agg.loc[("erm", "worst_group_acc"), "std"] == pytest.approx(10.0)  # sample std of 10, 20, 30
    assert agg.loc[("erm", "id_acc"), "std"] == pytest.approx(np.std([90, 94, 92], ddof=1))
    assert agg.loc[("erm", "worst_group_acc"), "n"] == 3
    assert np.isnan(agg.loc[("groupdro", "worst_group_acc"), "std"])
    assert format_mean_std(20.0, 10.0) == "20.0 ± 10.0" and format_mean_std(70.0, float("nan")) == "70.0"
    assert format_mean_std(float("nan"), 1.0) == "–"


def test_markdown_tables_and_plot(cfg, tmp_path: Path) -> None:
    text = markdown_tables(_hand_results(), "toy", cfg=cfg, attr_names=("bg", "coobj"), plot="toy.png")
    assert (
        "Model selection: best validation worst-group accuracy (uses validation group labels) (`val_wga`)"
        in text
    )
    erm = next(line for line in text.splitlines() if line.startswith("| erm |"))
    assert "| 20.0 ± 10.0 |" in erm and "| 92.0 ± 2.0 |" in erm
    assert "| 2.5 ± 0.5 |" in erm and erm.endswith("| 3 |")  # minutes: 2, 3, 2.5
    assert "| groupdro (uses training group labels) | 70.0 |" in text
    assert "Gap bg+coobj" in text
    sebra = next(line for line in text.splitlines() if line.startswith("| sebra:"))
    assert "| 0.600 ± 0.141 |" in sebra and "| 40.0 ± 14.1 |" in sebra  # rank_seconds, not seconds
    assert "![toy: worst-group vs I.D. accuracy](toy.png)" in text
    png = plot_accuracy(_hand_results(), tmp_path / "plots" / "toy.png", "toy", cfg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_update_markdown_block(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    update_markdown_block(md, "toy", "first")  # a missing file is created
    assert md.read_text() == "<!-- bench:toy:start -->\nfirst\n<!-- bench:toy:end -->\n"
    md.write_text("# Bench\n\nintro\n\n" + md.read_text() + "\nafter\n")
    update_markdown_block(md, "toy", "second\n")
    assert (
        md.read_text()
        == "# Bench\n\nintro\n\n<!-- bench:toy:start -->\nsecond\n<!-- bench:toy:end -->\n\nafter\n"
    )
    update_markdown_block(md, "other", "x")  # absent markers: appended
    assert md.read_text().endswith("after\n\n<!-- bench:other:start -->\nx\n<!-- bench:other:end -->\n")
    md.write_text("<!-- bench:toy:end -->\n<!-- bench:toy:start -->\n")
    with pytest.raises(BenchError, match="line 1.*comes before"):
        update_markdown_block(md, "toy", "x")
    md.write_text("<!-- bench:toy:start -->\n")
    with pytest.raises(BenchError, match="found 1 and 0"):
        update_markdown_block(md, "toy", "x")


def test_confidence_ranker_rows_with_only_the_three_level_scheme() -> None:
    """One or three bias attributes give only 3-level scores: the ERM-confidence rows keep what exists."""
    from sebra.bench import _best_epoch_values, same_budget_rows
    from sebra.rankers import best_record

    q = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "step": [2, 4, 6],
            "seconds": [1.0, 2.0, 3.0],
            "kendall_tau_b_3": [0.3, 0.9, 0.1],
            "weighted_tau_3": [0.3, 0.8, 0.1],
        }
    )
    best = _best_epoch_values(q, best_record)
    assert (
        best["kendall_tau_b_3"] == 0.9 and best["best_epoch_3"] == 2.0 and best["rank_optimizer_steps"] == 4.0
    )
    assert "kendall_tau_b" not in best
    rows = {r["metric"]: r["value"] for r in same_budget_rows(q, "erm", 0, 6)}
    assert rows["kendall_tau_b_3"] == 0.1 and "kendall_tau_b" not in rows


@pytest.mark.parametrize("content, match", [("", "is empty"), ('method,seed\n"unclosed,1\n', "results file")])
def test_read_results_names_an_empty_or_corrupt_file(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "res.csv"
    path.write_text(content)
    with pytest.raises(BenchError, match=match) as e:
        read_results(path)
    assert str(path) in str(e.value)

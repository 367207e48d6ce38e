"""``sebra bench --dataset colored_mnist``: the shipped config loads and builds every method, each ratio is a
resumable lane file, the lanes merge into one ``ratio,method,seed,metric,value`` table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sebra.bench.colored_mnist import (
    CMNIST_COLUMNS,
    parse_ratios,
    ratio_config,
    ratio_lane_file,
    run_colored_mnist,
)
from sebra.bench.config import BenchError, build_run, default_config, load_config, selection_rules
from sebra.cli.bench import main

from .helpers import FakeRun


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config(default_config("colored_mnist"))


def test_shipped_config_is_the_protocol(cfg: dict) -> None:
    assert set(cfg["methods"]) == {"erm", "jtt", "lff", "sebra", "oracle"}
    assert cfg["data"]["init_args"]["batch_size"] == 256 and cfg["data"]["init_args"]["augment"] == "none"
    for name, m in cfg["methods"].items():
        args = m["model"]["init_args"]
        assert args["backbone"] == "mlp_cmnist", name
        assert (args["optimizer"], args["lr"], args["weight_decay"], args["epochs"]) == (
            "adam",
            1e-3,
            0.0,
            100,
        )
        assert set(m["bench"]["also_select"]) == {"val_acc", "val_wga"}, name
    assert set(selection_rules(cfg).values()) == {"last"}
    assert cfg["methods"]["oracle"]["model"]["init_args"]["sampling"] == "group_balanced"


def test_every_method_builds(cfg: dict) -> None:
    for name in cfg["methods"]:
        dm, module = build_run(ratio_config(cfg, 0.02), name, seed=1)
        assert dm.spec.conflict_ratio == 0.02 and module.hparams.seed == 1


def test_ratios() -> None:
    assert parse_ratios(None) == [0.005, 0.01, 0.02, 0.05]
    assert parse_ratios("0.05,0.005") == [0.05, 0.005]
    for bad in ("x", "0", "0.01,0.01", "1.5"):
        with pytest.raises(BenchError, match="--ratios"):
            parse_ratios(bad)


def test_ratio_config_refuses_other_data(cfg: dict) -> None:
    other = {**cfg, "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {}}}
    with pytest.raises(BenchError, match="takes no conflict_ratio"):
        ratio_config(other, 0.01)


def test_lanes_resume_and_merge_with_ratio_column(cfg: dict, tmp_path: Path) -> None:
    out = tmp_path / "colored_mnist.csv"
    fake = FakeRun()
    kw = dict(out=out, runs_dir=tmp_path / "runs", progress=False, run_fn=fake)
    run_colored_mnist(cfg, ["erm", "lff"], [0], [0.005, 0.05], lane="a", **kw)
    run_colored_mnist(
        cfg, ["erm", "lff"], [1], [0.05], lane="r0.05", **kw
    )  # the README's lane names hold dots
    assert ratio_lane_file(out, 0.005, "a").exists() and ratio_lane_file(out, 0.05, "r0.05").exists()
    df = pd.read_csv(out)
    assert tuple(df.columns) == CMNIST_COLUMNS
    done = df[df["metric"] == "seconds"]
    assert set(zip(done["ratio"], done["method"], done["seed"])) >= {
        (0.005, "erm", 0),
        (0.005, "lff", 0),
        (0.05, "erm", 0),
        (0.05, "lff", 0),
        (0.05, "erm", 1),
        (0.05, "lff", 1),
    }
    calls = len(fake.calls)
    run_colored_mnist(cfg, ["erm", "lff"], [0], [0.005, 0.05], lane="a", **kw)  # all finished: nothing reruns
    assert len(fake.calls) == calls
    assert not pd.read_csv(out).duplicated(["ratio", "method", "seed", "metric"]).any()


def test_cli_dry_run_and_ratio_only_for_colored_mnist(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cm.csv"
    assert (
        main(
            ["--dataset", "colored_mnist", "--ratios", "0.01", "--seeds", "2", "--out", str(out), "--dry-run"]
        )
        == 0
    )
    assert "ratio 0.01: 10 of 10 run(s) to do" in capsys.readouterr().out
    assert (
        main(["--dataset", "builtin", "--ratios", "0.01", "--dry-run", "--out", str(tmp_path / "b.csv")]) == 2
    )
    assert "--ratios applies to --dataset colored_mnist only" in capsys.readouterr().err


def test_markdown_puts_ours_beside_the_published_row() -> None:
    from sebra.bench.colored_mnist_table import colored_mnist_markdown

    rows = [(0.01, "erm", s, "unbiased_acc", v) for s, v in enumerate([50.0, 52.0, 54.0])]
    rows += [(0.01, "sebra", 0, "unbiased_acc", 66.4), (0.01, "sebra_val_acc", 0, "unbiased_acc", 1.0)]
    rows += [(0.05, "erm", 0, "conflicting_acc", 70.0)]
    md = colored_mnist_markdown(pd.DataFrame(rows, columns=["ratio", "method", "seed", "metric", "value"]))
    lines = md.splitlines()
    assert lines[0] == "| method | 1% |"  # the 5% ratio has no unbiased_acc row
    assert "| **ERM, ours** | 52.00 ± 2.00 |" in lines
    assert "| ERM, published | 50.34 ± 0.16 |" in lines
    assert "| **Sebra, ours** | 66.40 (n=1) |" in lines and not any(
        "published" in x and "Sebra" in x for x in lines
    )
    assert colored_mnist_markdown(
        pd.DataFrame(columns=["ratio", "method", "seed", "metric", "value"])
    ).startswith("(no")


def test_a_trial_out_file_keeps_its_lanes_apart_from_the_protocol_results() -> None:
    from sebra.bench.colored_mnist import ratio_lane_file

    main = ratio_lane_file("benchmarks/results/colored_mnist.csv", 0.01, "a")
    trial = ratio_lane_file("benchmarks/results/colored_mnist_lr_trial.csv", 0.01, "a")
    assert (
        main.as_posix() == "benchmarks/results/colored_mnist/r0.01.a.csv"
    )  # where the protocol's lanes have been
    assert trial.parent != main.parent and trial.name == main.name

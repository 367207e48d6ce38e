"""``sebra bench --family``: lanes per variant merged into one tidy family.csv, same-budget rows derived across
lanes, the config's data block swapped for the variant's, the CLI's errors; and ``also_select`` on a real run."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "methods"))

from test_bench import CONFIG, FakeRun

from sebra import bench
from sebra.bench import load_config, read_results, run_bench
from sebra.bench_family import FAMILY_COLUMNS, family_config, lane_file, merge_family, run_family
from sebra.presets import builtin_config


def test_family_config_swaps_only_the_data_block() -> None:
    cfg = builtin_config()
    v = family_config(cfg, "patch-tint")
    assert v["data"]["class_path"] == "sebra.datasets.family.FamilyDataModule"
    assert v["data"]["init_args"]["variant"] == "patch-tint"
    assert "data_seed" not in v["data"]["init_args"] and v["data"]["init_args"]["batch_size"] == 128
    assert v["methods"] == cfg["methods"]  # one configuration for every variant
    with pytest.raises(ValueError, match="unknown benchmark variant"):
        family_config(cfg, "nope")


def test_lanes_merge_into_one_table_with_roles_and_cross_lane_same_budget(tmp_path: Path) -> None:
    cfg = {**CONFIG, "methods": dict(CONFIG["methods"])}
    out = tmp_path / "family.csv"
    runs = tmp_path / "runs"
    # lane a runs ERM on two variants, lane b Sebra on one of them: the same-budget ranker needs both
    run_family(
        cfg,
        ["erm"],
        [0, 1],
        ["builtin", "patch-tint"],
        out=out,
        runs_dir=runs,
        lane="a",
        progress=False,
        run_fn=FakeRun(),
    )
    fam = pd.read_csv(out)
    assert list(fam.columns) == list(FAMILY_COLUMNS)
    assert "erm_conf_same_budget" not in set(fam["method"])
    run_family(
        cfg,
        ["sebra"],
        [0, 1],
        ["patch-tint"],
        out=out,
        runs_dir=runs,
        lane="b",
        progress=False,
        run_fn=FakeRun(),
    )
    fam = pd.read_csv(out)
    assert set(fam["variant"]) == {"builtin", "patch-tint"}
    assert set(fam.loc[fam["variant"] == "builtin", "role"]) == {"dev"}
    assert set(fam.loc[fam["variant"] == "patch-tint", "role"]) == {"heldout"}
    sb = fam[(fam["method"] == "erm_conf_same_budget") & (fam["variant"] == "patch-tint")]
    assert sorted(sb["seed"].unique()) == [0, 1]  # derived from ERM (lane a) and Sebra's budget (lane b)
    assert sb[sb["metric"] == "budget_steps"].sort_values("seed")["value"].tolist() == [5.0, 6.0]
    assert not fam.duplicated(["variant", "method", "seed", "metric"]).any()
    # the derived rows survive a merge without the run folders (a later session)
    import shutil

    shutil.rmtree(runs)
    again = merge_family(cfg, out, runs)
    assert len(again[again["method"] == "erm_conf_same_budget"]) == len(sb)
    # resuming a lane runs nothing new
    fake = FakeRun()
    run_family(
        cfg,
        ["erm"],
        [0, 1],
        ["builtin", "patch-tint"],
        out=out,
        runs_dir=runs,
        lane="a",
        progress=False,
        run_fn=fake,
    )
    assert fake.calls == []
    assert lane_file(out, "builtin", "a").exists()


def test_family_cli_errors(capsys) -> None:
    assert bench.main(["--family", "--variants", "nope"]) == 2
    assert "unknown variant(s) ['nope']" in capsys.readouterr().err
    assert bench.main(["--family", "--methods", "magic"]) == 2
    assert "no method(s) ['magic']" in capsys.readouterr().err
    assert bench.main(["--family", "--lane", "a/b", "--dry-run"]) == 2
    assert "--lane" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main([])  # neither --dataset nor --family


def test_also_select_tests_the_same_run_under_val_acc(tmp_path: Path) -> None:
    import yaml

    conf = {**CONFIG, "methods": {"erm": {**CONFIG["methods"]["erm"], "also_select": ["val_acc"]}}}
    conf["methods"]["erm"].pop("confidence_ranker")
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(conf))
    cfg = load_config(path)
    res = run_bench(
        cfg,
        ["erm"],
        [0],
        out=tmp_path / "r.csv",
        ranking_out=tmp_path / "rk.csv",
        runs_dir=tmp_path / "runs",
        dataset="toy",
        progress=False,
    )
    also = res[res["method"] == "erm_val_acc"].set_index("metric")["value"]
    assert {"worst_group_acc", "avg_acc", "id_acc"} <= set(also.index)
    assert also[["worst_group_acc", "avg_acc", "id_acc"]].between(0, 100).all()
    ckpts = list((tmp_path / "runs" / "toy" / "erm" / "seed0" / "checkpoints").glob("also-val_acc-*.ckpt"))
    assert len(ckpts) == 1
    assert bench.completed_runs(read_results(tmp_path / "r.csv")) == {("erm", 0)}
    bad = tmp_path / "bad.yaml"
    conf["methods"]["erm"]["also_select"] = ["val_magic"]
    bad.write_text(yaml.safe_dump(conf))
    with pytest.raises(bench.BenchError, match="also_select"):
        load_config(bad)


def _fam_rows() -> pd.DataFrame:
    rows = []
    # two held-out variants, unequal seed counts; one dev variant that must not enter the summary
    spec = {
        ("h1", "heldout"): {"erm": [10, 20], "jtt": [40, 50, 60], "sebra": [60, 64, 62], "oracle": [80, 80]},
        ("h2", "heldout"): {"erm": [30], "jtt": [50], "sebra": [70], "oracle": [90]},
        ("d", "dev"): {"erm": [0], "sebra": [100]},
    }
    for (v, role), methods in spec.items():
        for m, vals in methods.items():
            for seed, x in enumerate(vals):
                for metric, val in {
                    "worst_group_acc": x,
                    "avg_acc": 80.0,
                    "id_acc": 95.0,
                    "gap_a": -5.0,
                    "gap_b": -5.0 if m != "sebra" else -9.0,
                    "gap_both": -20.0,
                }.items():
                    rows.append((v, role, m, seed, metric, val))
        rows += [
            (v, role, "sebra", 0, "kendall_tau_b_3", 0.8),
            (v, role, "erm_conf_same_budget", 0, "kendall_tau_b_3", 0.7),
        ]
    return pd.DataFrame(rows, columns=list(FAMILY_COLUMNS))


def test_heldout_summary_is_the_mean_of_variant_means_and_targets_are_checked() -> None:
    from sebra.bench_family_tables import check_targets, heldout_summary, markdown_family

    fam = _fam_rows()
    s = heldout_summary(fam).set_index(["method", "metric"])
    assert s.loc[("erm", "worst_group_acc"), "mean"] == pytest.approx(
        (15 + 30) / 2
    )  # not the mean of 3 seeds
    assert s.loc[("sebra", "worst_group_acc"), "mean"] == pytest.approx((62 + 70) / 2)
    assert s.loc[("sebra", "worst_group_acc"), "variants"] == 2
    met = {t: ok for t, _, ok in check_targets(fam)}
    assert met["Sebra worst-group ≥ ERM + 25"] is True  # 66 vs 47.5
    assert met["Sebra worst-group ≥ JTT + 5"] is True  # 66 vs 55 + 5
    assert (
        met["Sebra closes ≥ 60% of the ERM → group-balanced gap"] is True
    )  # (66 - 22.5) / (85 - 22.5) = 70%
    assert met["h1: Sebra gap A and gap B each ≥ ERM's − 3"] is False  # gap B -9 vs -5: Whac-A-Mole
    assert met["h1: Sebra worst-group std ≤ 5 over seeds"] is True  # std 2 over 3 seeds
    assert met["h2: Sebra worst-group std ≤ 5 over seeds"] is None  # one seed: no std
    md = markdown_family(fam)
    assert "Held-out summary" in md and "*h1* (heldout)" in md and "*d* (dev)" in md


def test_trial_script_refuses_held_out_variants() -> None:
    import subprocess

    root = Path(__file__).parent.parent
    out = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "family_trial.py"),
            "--variant",
            "patch-tint",
            "--rank-only",
            "--out",
            "/nonexistent/x.csv",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
        timeout=120,
    )
    assert out.returncode != 0
    assert "'patch-tint' is a heldout variant; settings are chosen on dev variants only" in out.stderr

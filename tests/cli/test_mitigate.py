"""``sebra mitigate``: a mitigation fitted on a given rankings.csv through ``sebra fit``, with its results table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_data import TINY_SEBRA, TinyDataModule, ranked_table

from sebra import cli
from sebra.cli.mitigate import MitigateUsageError, mitigation_argv
from sebra.export import save_rankings


def _files(tmp_path: Path, model: dict, shift: int = 0) -> tuple[Path, Path]:
    dm = TinyDataModule(batch_size=8)
    dm.setup("fit")
    table = ranked_table(dm.train_dataset, np.linspace(1, 0, len(dm.train_dataset)))
    rankings = tmp_path / "rankings.csv"
    save_rankings(table.assign(index=table["index"] + shift), rankings)
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "default_root_dir": str(tmp_path / "runs")},
        "model": model,
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    }
    config = tmp_path / "fit.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return rankings, config


ERM = {"class_path": "sebra.methods.ERMModule", "init_args": {"backbone": "test_resnet", "epochs": 1}}


def test_the_method_and_table_go_after_the_config_so_later_settings_still_apply(tmp_path) -> None:
    table = tmp_path / "r.csv"
    table.write_text("x")
    got = mitigation_argv(
        ["--config", "a.yaml", "--model.upweight", "5", "--rankings", str(table), "--method=rank_dro"]
    )
    assert got == [
        "--config",
        "a.yaml",
        "--model",
        "sebra.methods.rank_group_dro.RankGroupDROModule",
        "--model.rankings",
        str(table),
        "--model.upweight",
        "5",
    ]
    with pytest.raises(MitigateUsageError, match="both needed"):
        mitigation_argv(["--rankings", str(table)])
    with pytest.raises(MitigateUsageError, match="'dfr' is not one of"):
        mitigation_argv(["--rankings", str(table), "--method", "dfr"])
    with pytest.raises(MitigateUsageError, match="missing.csv: no such file"):
        mitigation_argv(["--rankings", str(tmp_path / "missing.csv"), "--method", "stage2"])


def test_rank_upsampled_fits_on_the_table_and_writes_the_results_table(tmp_path, capsys) -> None:
    rankings, config = _files(tmp_path, ERM)
    status = cli.main(
        [
            "mitigate",
            "--rankings",
            str(rankings),
            "--method",
            "rank_upsampled",
            "--config",
            str(config),
            "--model.upweight",
            "5",
        ]
    )
    assert status == 0, capsys.readouterr().err
    run = next((tmp_path / "runs").rglob("results.json")).parent
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["class_path"] == "sebra.methods.rank_upsampled.RankUpsampledModule"
    assert saved["init_args"]["upweight"] == 5.0 and saved["init_args"]["rankings"] == str(rankings)
    assert saved["init_args"]["backbone"] == "test_resnet"  # kept from the config's ERM block
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert all("worst_group_acc" in row for row in rows.values())


def test_stage2_reads_the_table_from_a_path_given_on_the_command_line(tmp_path, capsys) -> None:
    # jsonargparse once read the file's *contents* into `rankings` when the type listed a DataFrame first
    rankings, config = _files(tmp_path, {"class_path": "sebra.SebraModule", "init_args": dict(TINY_SEBRA)})
    status = cli.main(
        ["mitigate", "--rankings", str(rankings), "--method", "stage2", "--config", str(config)]
    )
    assert status == 0, capsys.readouterr().err
    assert "rankings:" in capsys.readouterr().out


def test_a_table_of_another_data_set_is_refused_by_name(tmp_path, capsys) -> None:
    rankings, config = _files(tmp_path, ERM, shift=10_000)
    status = cli.main(
        ["mitigate", "--rankings", str(rankings), "--method", "rank_dro", "--config", str(config)]
    )
    assert status == 1  # sebra fit's status for input refused once training has started
    err = capsys.readouterr().err
    assert "RankGroupDROModule(rankings=...): row 0" in err and "is not a training sample" in err

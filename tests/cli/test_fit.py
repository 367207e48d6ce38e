"""sebra/cli/fit.py: ``sebra fit`` is quiet unless --verbose, seeds a run once, and ends with the demo's table, also
written to results.json / results.csv in the run folder."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from expected import TABLE_METRICS
from jsonargparse import Namespace
from tiny_data import TINY_SEBRA

from sebra import cli
from sebra.cli.fit import SeedConflict, follow_seed

NOISE = (
    "GPU available",
    "TPU available",
    "Tip:",
    "litlogger",
    "will override existing callbacks",
    "Seed set to",
)


def _config(tmp_path: Path, everything: int = 0, **model: object) -> Path:
    cfg = {
        "seed_everything": everything,
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "default_root_dir": str(tmp_path / "runs")},
        "model": {"class_path": "sebra.SebraModule", "init_args": {**TINY_SEBRA, **model}},
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        status = cli.main(["fit", "--config", str(_config(tmp_path)), *args])
    return status, [str(w.message) for w in seen]


def test_fit_is_quiet_and_ends_with_the_results_table(tmp_path: Path, capsys, caplog) -> None:
    caplog.set_level(logging.INFO)
    status, warned = _run(tmp_path)
    out = capsys.readouterr()
    assert status == 0
    everything = caplog.text + out.out + out.err + "\n".join(warned)
    for noise in NOISE:
        assert noise not in everything, noise
    assert not [w for w in warned if "ModelCheckpoint" in w or "LeafSpec" in w or "tensorboardX" in w]
    assert "ranking step 1: eliminated" in caplog.text  # sebra's own messages stay
    assert (
        "Stage 1: 2 ranking steps in" in out.err and "Stage 2: 2 epochs in" in out.err
    )  # progress, on stderr
    assert "Test metric" not in out.out and "test_group_acc0" not in out.out  # no Lightning table
    lines = out.out.splitlines()
    head = lines.index(
        "SebraModule on Tiny (test split, checkpoint chosen by validation worst-group accuracy; accuracies in %;"
    )
    assert (
        lines[head + 1]
        == "gap_a = bg conflict, gap_b = coobj conflict, gap_both = both, each minus I.D. accuracy)"
    )
    columns = lines[head + 2].split()
    assert columns == [*TABLE_METRICS, "kendall_tau_b", "seconds"]
    printed = dict(zip(columns, lines[head + 3].split()[1:], strict=True))
    assert lines[head + 3].split()[0] == "sebra"
    assert (
        "  a: bg aligned, coobj aligned  " in out.out
        and "  b: bg conflicting, coobj conflicting  " in out.out
    )

    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    doc = json.loads((run / "results.json").read_text())
    row = doc["rows"]["sebra"]
    for c in ("worst_group_acc", "avg_acc", "gap_a", "kendall_tau_b"):
        assert f"{row[c]:.2f}" == printed[c], c
    assert doc["seed"] == 0 and doc["selection"] == "val_wga" and doc["split"] == "test"
    assert (
        Path(doc["checkpoint"]).name.startswith("best-")
        and Path(doc["checkpoint"]).parent == run / "checkpoints"
    )
    assert len(doc["group_acc"]["sebra"]) == 8 and "a: bg aligned, coobj aligned" in doc["group_acc"]["sebra"]
    assert "echoes_gap_a" in row and "echoes_gap_a, echoes_gap_b" in doc["legend"]
    table = pd.read_csv(run / "results.csv")
    assert table.loc[0, "method"] == "sebra" and table.loc[0, "worst_group_acc"] == pytest.approx(
        row["worst_group_acc"]
    )
    assert f"results: {run / 'results.json'}, {run / 'results.csv'}" in out.out


def test_verbose_brings_lightnings_output_back(tmp_path: Path, capsys, caplog) -> None:
    caplog.set_level(logging.INFO)
    status, warned = _run(tmp_path, "--verbose")
    out = capsys.readouterr()
    assert status == 0
    assert "GPU available" in caplog.text and "Tip:" in caplog.text
    assert "test_wga" in out.out  # Lightning's own test table, before sebra's
    assert "Stage 1: 2 ranking steps in" not in out.err  # Lightning's progress bar instead of sebra's lines
    assert not [w for w in warned if "multiple `ModelCheckpoint`" in w]  # fixed, not hidden
    assert (tmp_path / "runs" / "lightning_logs" / "version_0" / "results.json").is_file()


def _saved_seeds(tmp_path: Path, version: int = 0) -> tuple[int, int, int]:
    cfg = yaml.safe_load(
        (tmp_path / "runs" / "lightning_logs" / f"version_{version}" / "config.yaml").read_text()
    )
    return cfg["seed_everything"], cfg["model"]["init_args"]["seed"], cfg["data"]["init_args"]["seed"]


def test_seed_everything_seeds_the_model_and_the_data(tmp_path: Path, capsys) -> None:
    assert cli.main(["fit", "--config", str(_config(tmp_path)), "--seed_everything", "7"]) == 0
    assert _saved_seeds(tmp_path) == (7, 7, 7)


def test_a_second_seed_setting_is_refused(tmp_path: Path, capsys) -> None:
    assert cli.main(["fit", "--config", str(_config(tmp_path, everything=1, seed=5))]) == 2
    err = capsys.readouterr().err
    assert "sebra fit: error: model.init_args.seed is 5 but seed_everything is 1" in err
    assert "set seed_everything only" in err and not (tmp_path / "runs").exists()


def test_a_seed_equal_to_seed_everything_is_accepted(tmp_path: Path, capsys) -> None:
    assert cli.main(["fit", "--config", str(_config(tmp_path, everything=3, seed=3))]) == 0
    assert _saved_seeds(tmp_path) == (3, 3, 3)


def test_follow_seed_leaves_an_unseeded_run_alone() -> None:
    config = Namespace(
        seed_everything=False,
        model=Namespace(class_path="sebra.SebraModule", init_args=Namespace(seed=0)),
        data=Namespace(class_path="tiny_data.TinyDataModule", init_args=Namespace(seed=0)),
    )
    follow_seed(config)
    assert config.model.init_args.seed == 0
    config.seed_everything = 4
    follow_seed(config)
    assert (config.model.init_args.seed, config.data.init_args.seed) == (4, 4)
    config.model.init_args.seed = 9
    with pytest.raises(SeedConflict, match="model.init_args.seed is 9 but seed_everything is 4"):
        follow_seed(config)


def test_fit_help_says_how_seeds_and_results_work(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["fit", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "seed_everything" in out and "results.json" in out and "--verbose" in out


# ---------------------------------------------------------------------------------- issue 19: fits that end early
_INTERRUPT_MODULE = """
from pathlib import Path
from lightning.pytorch.callbacks import Callback

class InterruptOnce(Callback):
    '''Ctrl-C at the start of the second epoch, once (a marker file says it happened).'''

    def __init__(self, marker: str):
        self.marker = Path(marker)

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1 and not self.marker.exists():
            self.marker.write_text("interrupted")
            raise KeyboardInterrupt
"""


def _erm_config(tmp_path: Path, root: Path, data: dict | None = None, **trainer: object) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "default_root_dir": str(root), **trainer},
        "model": {
            "class_path": "sebra.methods.ERMModule",
            "init_args": {"backbone": "test_resnet", "epochs": 2, "selection": "val_acc"},
        },
        "data": data or {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    }
    path = tmp_path / "erm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ctrl_c_says_how_to_resume_and_the_hint_resumes(tmp_path: Path, capsys, monkeypatch) -> None:
    import shlex
    import signal

    (tmp_path / "interrupt_once.py").write_text(_INTERRUPT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    callback = {"class_path": "interrupt_once.InterruptOnce", "init_args": {"marker": str(tmp_path / "m")}}
    cfg = _erm_config(tmp_path, tmp_path / "runs", callbacks=[callback])
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["fit", "--config", str(cfg)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    last = tmp_path / "runs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert err[-1] == f"sebra fit: interrupted; resume with sebra fit --config {cfg} --ckpt_path {last}"
    assert signal.getsignal(signal.SIGINT) == before  # Lightning had set it to SIG_IGN
    assert cli.main(shlex.split(err[-1].partition("resume with ")[2])[1:]) == 0
    assert (last.parent.parent / "results.json").is_file()


def test_a_fit_into_an_unwritable_folder_is_refused_before_training(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    root = tmp_path / "afile" / "runs"
    assert cli.main(["fit", "--config", str(_erm_config(tmp_path, root))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"sebra fit: error: the run folder (trainer.default_root_dir): cannot write in "
        f"{root / 'lightning_logs' / 'version_0'}: {tmp_path / 'afile'} is a file, not a folder"
    )
    assert not any("Stage" in line or "epoch" in line for line in err)  # nothing trained


def test_a_failed_fit_leaves_no_empty_version_folder(tmp_path: Path, capsys) -> None:
    import sys

    # dataset_fixtures, as test_bad_input does
    sys.path.insert(0, str(Path(__file__).parents[1] / "datasets"))
    from dataset_fixtures import write_image

    for c in ("a", "b"):
        for i in range(5):
            write_image(tmp_path / "data" / c / f"{i}.png", seed=i, fmt="PNG")
    write_image(tmp_path / "data" / "b" / "9.png", seed=9, size=(12, 10), fmt="PNG")  # the fit refuses it
    data = {
        "class_path": "sebra.datasets.folder.ImageFolderDataModule",
        "init_args": {"root": str(tmp_path / "data"), "batch_size": 4},
    }
    runs = tmp_path / "runs"
    assert cli.main(["fit", "--config", str(_erm_config(tmp_path, runs, data))]) == 1
    assert "different sizes" in capsys.readouterr().err
    assert not (runs / "lightning_logs" / "version_0").exists()


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("batch_size", "ImageFolderDataModule: batch_size must be an integer >= 1, got 0"),
        ("image_size", "ImageFolderDataModule: image_size must be an integer >= 8 or None"),
    ],
)
def test_zero_batch_or_image_size_names_the_field(tmp_path: Path, capsys, field: str, message: str) -> None:
    data = {
        "class_path": "sebra.datasets.folder.ImageFolderDataModule",
        "init_args": {"root": str(tmp_path), field: 0},
    }
    runs = tmp_path / "runs"
    assert cli.main(["fit", "--config", str(_erm_config(tmp_path, runs, data))]) == 2
    assert capsys.readouterr().err.startswith(f"sebra fit: error: {message}")
    assert not runs.exists()


def test_fit_help_does_not_offer_lightnings_optimizer_options(capsys) -> None:
    """The methods build their own optimizers (optimizer='sgd'/'adam'); LightningCLI's --optimizer
    torch.optim.SGD was advertised and failed with 'empty parameter list'."""
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--optimizer" not in out and "--lr_scheduler" not in out
    assert "--model.init_args.optimizer" in out or "--model CONFIG" in out


def test_a_ckpt_path_refused_by_weights_only_is_one_line(tmp_path: Path, capsys) -> None:
    import argparse

    import torch

    refused = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "payload": argparse.Namespace(x=1)}, refused)  # not a plain-data checkpoint
    cfg = _erm_config(tmp_path, tmp_path / "runs")
    assert cli.main(["fit", "--config", str(cfg), "--ckpt_path", str(refused)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"sebra fit: error: {refused} is not a readable checkpoint")


def test_fit_with_a_second_look_prints_what_it_moved_and_records_it(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path, second_look_epochs=1, rank_bins=3)
    assert cli.main(["fit", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("second look (1 epoch(s)"))
    side = next((tmp_path / "runs").rglob("ranking_diagnostics.json"))
    look = json.loads(side.read_text())["second_look"]
    assert f"{look['moved']} of {look['first_wave']} first-wave samples" in line
    assert "ranking check:" in out

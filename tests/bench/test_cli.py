"""``sebra bench``: argument and config errors are one line and exit 2; every method is built before any run."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import yaml

from sebra.cli.bench import main

from .helpers import CONFIG


def _config(tmp_path: Path, cfg: dict = CONFIG) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_and_argument_errors(tmp_path: Path, capsys) -> None:
    seeded = copy.deepcopy(CONFIG)
    seeded["methods"]["erm"]["model"]["init_args"]["seed"] = 1
    path = tmp_path / "seeded.yaml"
    path.write_text(yaml.safe_dump(seeded))
    assert main(["--dataset", "toy", "--config", str(path)]) == 2
    assert "init_args.seed" in capsys.readouterr().err
    good = _config(tmp_path)
    assert main(["--dataset", "other", "--config", str(good)]) == 2
    assert "dataset is 'toy'" in capsys.readouterr().err
    assert main(["--dataset", "toy", "--config", str(good), "--methods", "erm,nope", "--dry-run"]) == 2
    assert "no method(s) ['nope']" in capsys.readouterr().err
    assert (
        main(["--dataset", "toy", "--config", str(good), "--set", "methods.erm.model.init_args.lrr=1"]) == 2
    )
    err = capsys.readouterr().err
    assert (
        "methods.erm.model.init_args: ERMModule got an unexpected argument 'lrr' (did you mean 'lr'?)" in err
    )
    assert main(["--dataset", "toy", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "benchmark config" in capsys.readouterr().err


def test_dry_run_counts_the_runs_to_do(tmp_path: Path, capsys) -> None:
    good = _config(tmp_path)
    out = tmp_path / "r.csv"
    pd.DataFrame([("erm", 1, "seconds", 3.0)], columns=["method", "seed", "metric", "value"]).to_csv(
        out, index=False
    )
    args = [
        "--dataset",
        "toy",
        "--config",
        str(good),
        "--seeds",
        "2",
        "--methods",
        "erm,jtt",
        "--out",
        str(out),
    ]
    assert main([*args, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "3 of 4 run(s) to do" in text and "erm seed 1" not in text and "jtt seed 1" in text


def test_a_refused_setting_stops_the_command_before_any_run(tmp_path: Path, capsys) -> None:
    good = _config(tmp_path)
    out, runs = tmp_path / "r.csv", tmp_path / "runs"
    args = [
        "--dataset",
        "toy",
        "--config",
        str(good),
        "--out",
        str(out),
        "--runs-dir",
        str(runs),
        "--no-progress",
    ]
    assert main([*args, "--methods", "erm,sebra", "--set", "methods.sebra.model.init_args.gap=0"]) == 2
    assert capsys.readouterr().err.startswith(
        f"sebra bench: error: {good}: methods.sebra.model.init_args: SebraModule: gap"
    )
    assert not out.exists() and not runs.exists()  # nothing was trained


def test_a_broken_results_file_is_named_and_kept(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.csv"
    out.write_text("")
    assert main(["--dataset", "toy", "--config", str(_config(tmp_path)), "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sebra bench: error: results file {out} is empty") and "move it away" in err
    assert out.read_text() == ""


def test_family_errors(capsys) -> None:
    assert main(["--family", "--variants", "nope"]) == 2
    assert "unknown variant(s) ['nope']" in capsys.readouterr().err
    assert main(["--family", "--methods", "magic"]) == 2
    assert "no method(s) ['magic']" in capsys.readouterr().err
    for bad in ("a/b", ".hidden", ""):
        assert main(["--family", "--lane", bad, "--dry-run"]) == 2
        assert "--lane" in capsys.readouterr().err


def test_lane_may_hold_a_ratio(tmp_path, capsys) -> None:
    """The documented Colored MNIST sweep names a lane per ratio (``--lane r0.01``)."""
    out = tmp_path / "cm.csv"
    assert (
        main(
            [
                "--dataset",
                "colored_mnist",
                "--ratios",
                "0.01",
                "--lane",
                "r0.01",
                "--out",
                str(out),
                "--dry-run",
            ]
        )
        == 0
    )
    assert "lane r0.01" in capsys.readouterr().out


def test_usage(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit):
        main([])  # neither --dataset nor --family
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--set KEY=VALUE" in capsys.readouterr().out


def test_an_unwritable_out_is_refused_before_the_first_run_trains(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Issue 19: a read-only --out was found only at the first write, after that run had trained (and was lost).
    Root ignores permission bits, so the read-only file system is simulated at the probe; a file in the way is real."""
    import errno

    import sebra.bench.sweep
    from sebra.utils import files

    trained = []
    monkeypatch.setattr(sebra.bench.sweep, "run_bench", lambda *a, **k: trained.append(1))
    good = _config(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    real = files.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if Path(dir) == ro:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    base = ["--dataset", "toy", "--config", str(good), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main([*base, "--out", str(ro / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"sebra bench: error: --out: cannot write in {ro} (Read-only file system: {ro}); pass a writable folder\n"
    )
    (tmp_path / "afile").write_text("x")
    assert main([*base, "--out", str(tmp_path / "afile" / "sub" / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("sebra bench: error: --out: cannot write in")
        and f"{tmp_path / 'afile'} is a file" in err
    )
    assert main([*base, "--out", str(tmp_path / "ok" / "r.csv"), "--runs-dir", str(tmp_path / "afile")]) == 2
    assert "--runs-dir: cannot write in" in capsys.readouterr().err
    assert not trained and not (tmp_path / "runs").exists() and list(ro.iterdir()) == []

"""``benchmarks/speed.py`` end to end on a few hundred samples (slow: several fits on the built-in benchmark)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest


@pytest.mark.slow
def test_speed_benchmark_writes_its_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location(
        "speed", Path(__file__).parents[2] / "benchmarks" / "speed.py"
    )
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    out = tmp_path / "speed.csv"
    speed.main(
        [
            "--limit",
            "256",
            "--max-steps",
            "2",
            "--erm-epochs",
            "1",
            "--stage2-epochs",
            "1",
            "--threads",
            "1",
            "--accelerator",
            "cpu",
            "--out",
            str(out),
        ]
    )
    df = pd.read_csv(out)
    assert list(df.columns) == speed.COLUMNS
    means = df[df.step == "mean"].set_index(["phase", df[df.step == "mean"].feature_pass.fillna("")])
    assert set(means.index) == {
        ("erm", ""),
        ("rank_step", ""),
        ("confidence_epoch", ""),
        ("second_look_epoch", ""),
        ("stage2", "official"),
        ("stage2", "shared"),
    }
    conf = df[(df.phase == "confidence_epoch") & (df.step != "mean")]
    assert (
        len(conf) == 1 and (conf.samples == 256).all() and (conf.scored == 256).all()
    )  # all trained, all scored
    look = df[(df.phase == "second_look_epoch") & (df.step != "mean")]
    assert len(look) == 1 and (look.samples == 256).all() and (look.scored == 256).all()
    assert means.loc[("erm", ""), "ratio_to_erm"] == pytest.approx(1.0)
    steps = df[(df.phase == "rank_step") & (df.step != "mean")]
    assert len(steps) == 2 and (steps.samples == 256).all() and (steps.scored > 0).all()
    assert (steps.seconds >= steps.train_s + steps.score_s - 1e-6).all()
    assert (df.n_train == 256).all() and (df.peak_rss_mb > 0).all()
    assert "| rank_step |" in capsys.readouterr().out

"""Tables from a results file: mean ± sample std over seeds, the selection rule, the plot, BENCHMARKS.md blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sebra.bench.config import BenchError
from sebra.bench.store import COLUMNS
from sebra.bench.tables import (
    aggregate,
    format_mean_std,
    markdown_tables,
    plot_accuracy,
    update_markdown_block,
)


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
    return pd.DataFrame(rows, columns=COLUMNS)


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

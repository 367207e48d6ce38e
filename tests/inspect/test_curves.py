"""Elimination curves: the table against a brute-force count, the figure's lines, and logging to loggers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from ranked_fixtures import CLASS_NAMES

from sebra.inspect.curves import (
    elimination_steps,
    elimination_table,
    log_figure,
    plot_elimination_curves,
    save_figure,
)


def _brute(rk: pd.DataFrame, by: str, steps) -> dict[tuple[int, int], float]:
    """fraction[(step, key)] = #(key and still active after step) / #key, by a loop over rows."""
    out = {}
    keys = sorted({int(v) for v in rk[by] if v >= 0})
    for t in steps:
        for key in keys:
            members = [r for r in rk.itertuples() if getattr(r, by) == key]
            active = [r for r in members if r.rank == -1 or r.rank > t]
            out[(t, key)] = len(active) / len(members)
    return out


def _as_dict(table: pd.DataFrame, by: str) -> dict[tuple[int, int], float]:
    return {(int(s), int(k)): float(f) for s, k, f in zip(table["step"], table[by], table["fraction"])}


def test_table_matches_brute_force_per_class_and_group(ranked):
    _, rk = ranked  # ranks 1..4 plus 5 (= never eliminated, normal mode)
    steps = list(range(5))  # 0 .. max rank - 1
    for by in ("label", "group"):
        table = elimination_table(rk, by)
        assert list(table.columns) == ["step", by, "n_active", "n_total", "fraction"]
        assert _as_dict(table, by) == pytest.approx(_brute(rk, by, steps))
        assert (table["n_active"] == (table["fraction"] * table["n_total"]).round()).all()
    # After step 2 only the three conflicting (blue) samples of each class are left.
    after2 = elimination_table(rk, "label").query("step == 2")
    assert after2["n_active"].tolist() == [3, 3, 3]


def test_official_mode_never_eliminated_stays_active():
    rk = pd.DataFrame(
        {
            "index": range(6),
            "label": [0, 0, 0, 1, 1, 1],
            "rank": [1, -1, 2, 1, 1, -1],
            "position": [1, 3, 2, 1, 2, 3],
            "p_y": 0.5,
            "group": [0, 1, 0, -1, 2, 2],
        }
    )
    assert elimination_steps(rk).tolist() == [0, 1, 2]  # -1 present: every rank is a real step
    t = elimination_table(rk, "label")
    assert _as_dict(t, "label") == pytest.approx(
        {(0, 0): 1, (1, 0): 2 / 3, (2, 0): 1 / 3, (0, 1): 1, (1, 1): 1 / 3, (2, 1): 1 / 3}
    )
    g = elimination_table(rk, "group")
    assert sorted(g["group"].unique()) == [0, 1, 2]  # group -1 (unknown) left out
    assert _as_dict(g, "group")[(2, 2)] == pytest.approx(0.5)


def test_steps_default_and_override(ranked):
    _, rk = ranked
    assert elimination_steps(rk).tolist() == [0, 1, 2, 3, 4]
    t = elimination_table(rk, "label", last_step=6)
    assert t["step"].max() == 6 and (t.query("step >= 5")["n_active"] == 0).all()


def test_no_groups_gives_empty_table_and_one_panel(ranked):
    _, rk = ranked
    rk = rk.assign(group=-1)
    assert elimination_table(rk, "group").empty
    fig = plot_elimination_curves(rk)
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no column 'bg'"):
        elimination_table(rk, "bg")


def test_figure_lines_carry_the_table(ranked, tmp_path):
    _, rk = ranked
    fig = plot_elimination_curves(rk, class_names=CLASS_NAMES)
    assert len(fig.axes) == 2  # classes and groups
    table = elimination_table(rk, "label")
    lines = fig.axes[0].get_lines()
    assert [ln.get_label().split(" ")[0] for ln in lines] == CLASS_NAMES
    for c, ln in enumerate(lines):
        np.testing.assert_allclose(ln.get_ydata(), table.loc[table["label"] == c, "fraction"])
    assert len(fig.axes[1].get_lines()) == rk["group"].nunique()
    path = save_figure(fig, tmp_path / "c.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100


class _Writer:
    def __init__(self):
        self.calls = []

    def add_figure(self, tag, figure, global_step=None, close=True):
        self.calls.append((tag, figure, global_step, close))


class _TBLogger:
    def __init__(self):
        self.experiment = _Writer()


class _NoTensorBoard:
    """A TensorBoard-style logger whose backend is not installed, with a log_dir."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)

    @property
    def experiment(self):
        raise ModuleNotFoundError("No module named 'tensorboard'")


def test_log_figure_tensorboard_style(ranked):
    _, rk = ranked
    fig = plot_elimination_curves(rk)
    lg = _TBLogger()
    assert log_figure(lg, "ranking/elimination", fig, 7) is None
    assert lg.experiment.calls == [("ranking/elimination", fig, 7, False)]


def test_log_figure_csv_logger_and_fallbacks(ranked, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    _, rk = ranked
    fig = plot_elimination_curves(rk)
    csv = CSVLogger(tmp_path, name="run")
    path = log_figure(csv, "ranking/elimination", fig, 3)
    assert path is not None and path.parent.parent == tmp_path / "run" / "version_0"
    assert path.name == "ranking_elimination_step000003.png"
    with Image.open(path) as im:
        assert im.format == "PNG"
    tb = _TBLogger()
    p2 = log_figure([tb, _NoTensorBoard(tmp_path / "x")], "curves", fig, 1)
    assert len(tb.experiment.calls) == 1 and p2 == tmp_path / "x" / "figures" / "curves_step000001.png"
    assert p2.exists()
    assert log_figure(None, "curves", fig, 1) is None
    with pytest.warns(UserWarning, match="takes no figures"):
        assert log_figure(object(), "curves", fig, 1) is None


def test_log_figure_only_on_rank_zero(ranked, monkeypatch):
    from lightning_utilities.core.rank_zero import rank_zero_only

    _, rk = ranked
    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    lg = _TBLogger()
    log_figure(lg, "curves", plot_elimination_curves(rk), 1)
    assert lg.experiment.calls == []

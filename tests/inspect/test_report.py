"""The HTML report (parsed back with html.parser) and the ``sebra inspect`` command."""

from __future__ import annotations

import base64
import io
import os
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from ranked_fixtures import CLASS_NAMES

from sebra.cli.inspect import main
from sebra.export import save_rankings
from sebra.inspect.report import rank_class_counts, write_report


class _Page(HTMLParser):
    """Collects image sources, links, section ids, headings and table rows of the summary section."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.sections, self.h2 = [], [], [], []
        self.tables: dict[str, list[list[str]]] = {}
        self._section = None
        self._tag = None
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._tag = tag
        if tag == "img":
            self.images.append(a.get("src", ""))
        if "href" in a:
            self.links.append(a["href"])
        if tag == "section":
            self._section = a.get("id")
            self.sections.append(self._section)
        if tag == "tr":
            self._row = []
        if tag == "h2":
            self.h2.append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.tables.setdefault(self._section, []).append(self._row)
            self._row = None
        self._tag = None

    def handle_data(self, data):
        if self._tag in ("td", "th") and self._row is not None:
            self._row.append(data)
        if self._tag == "h2":
            self.h2[-1] += data


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


def _decode_all(srcs: list[str]) -> list[Image.Image]:
    out = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:40]
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        im.load()
        out.append(im)
    return out


def test_report_is_self_contained_and_covers_every_class(ranked, tmp_path):
    ds, rk = ranked
    out = write_report(
        rk,
        ds,
        tmp_path / "rep",
        quality={"kendall_tau_b": 0.61234, "weighted": {"tau": 0.5}},
        k=2,
        per_bucket=2,
        title="Test <report>",
    )
    assert out == tmp_path / "rep" / "report.html"
    assert sorted(os.listdir(out.parent)) == ["report.html"]  # nothing else needed, nothing left behind
    page, text = _parse(out)
    assert "<title>Test &lt;report&gt;</title>" in text
    # one section per class, headed by its name; two grids each, plus the curves
    for c, name in enumerate(CLASS_NAMES):
        assert f"class-{c}" in page.sections
        assert f"Class {name} ({c})" in page.h2
    assert len(page.images) == 1 + 2 * len(CLASS_NAMES)
    images = _decode_all(page.images)
    assert all(im.format == "PNG" and im.size[0] > 50 for im in images)
    assert all(h.startswith("#") for h in page.links)  # only in-page links
    assert page.tables["quality"] == [
        ["measure", "value"],
        ["kendall_tau_b", "0.6123"],
        ["weighted.tau", "0.5000"],
    ]


def test_summary_table_counts_match_hand_count(ranked, tmp_path):
    _, rk = ranked
    page, _ = _parse(write_report(rk, None, tmp_path, class_names=CLASS_NAMES))
    rows = page.tables["summary"]
    assert rows[0] == ["rank"] + [f"{n} ({c})" for c, n in enumerate(CLASS_NAMES)] + ["all"]
    expected = {}
    for r in rk.itertuples():
        expected[(r.rank, r.label)] = expected.get((r.rank, r.label), 0) + 1
    ranks = sorted({r for r, _ in expected})
    for row, rank in zip(rows[1:-1], ranks):
        counts = [expected.get((rank, c), 0) for c in range(3)]
        assert row == [str(rank)] + [str(v) for v in counts] + [str(sum(counts))]
    assert rows[-1] == ["all", "10", "10", "10", "30"]
    assert rank_class_counts(rk).to_numpy().sum() == len(rk)
    # Groups: aligned (even ids) hold positions 1..7 of 10 with ranks 1,2,1,2,1,2,1; conflicting 8..10, ranks 4,3,5.
    groups = page.tables["groups"]
    assert groups[1] == ["0", "0", "7", "1", "0", f"{sum(range(1, 8)) / 7 / 10:.3f}"]
    assert groups[2] == ["1", "1", "3", "4", "0", f"{(8 + 9 + 10) / 3 / 10:.3f}"]


def test_report_without_images_has_curves_and_notes(ranked, tmp_path):
    _, rk = ranked
    page, text = _parse(write_report(rk.drop(columns="group"), None, tmp_path))
    assert len(page.images) == 1 and "groups" not in page.sections
    assert text.count("No images") == len(CLASS_NAMES)
    _decode_all(page.images)


def test_official_minus_one_listed_last(tmp_path):
    rk = pd.DataFrame(
        {
            "index": range(4),
            "label": [0, 0, 1, 1],
            "rank": [-1, 1, 2, 1],
            "position": [2, 1, 2, 1],
            "p_y": 0.5,
        }
    )
    page, text = _parse(write_report(rk, None, tmp_path))
    assert [r[0] for r in page.tables["summary"][1:]] == ["1", "2", "-1 (never)", "all"]
    assert "official mode" in text


def test_missing_images_listed_in_report(ranked_files, tmp_path):
    ds, rk = ranked_files
    lost = rk.loc[(rk["label"] == 2) & (rk["position"] == 1), "path"].iloc[0]
    os.remove(lost)
    with pytest.warns(UserWarning, match="could not be read"):
        page, _ = _parse(write_report(rk, ds, tmp_path / "rep", k=2))
    assert "problems" in page.sections
    assert len(page.images) == 1 + 2 * len(CLASS_NAMES)


def test_failed_report_write_keeps_old_report(ranked, tmp_path, monkeypatch):
    _, rk = ranked
    target = tmp_path / "report.html"
    target.write_text("old report")
    real = Path.write_text

    def cut(self, data, *a, **kw):
        real(self, data[:100], *a, **kw)
        raise OSError("no space left")

    monkeypatch.setattr(Path, "write_text", cut)
    with pytest.raises(OSError, match="no space"):
        write_report(rk, None, tmp_path)
    monkeypatch.undo()
    assert target.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["report.html"]


# --- sebra inspect ----------------------------------------------------------------------------------------------
def test_cli_with_path_column(ranked_files, tmp_path, capsys):
    _, rk = ranked_files
    lost = rk.loc[(rk["label"] == 0) & (rk["position"] == 1), "path"].iloc[0]
    os.remove(lost)
    src = save_rankings(rk, tmp_path / "ranks.csv")
    assert main(["inspect", str(src), "--out", str(tmp_path / "out"), "--k", "2"]) == 0
    cap = capsys.readouterr()
    report = Path(cap.out.strip())
    assert report == tmp_path / "out" / "report.html"
    assert lost in cap.err  # the missing file is named, no traceback
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == sorted(
        ["report.html", "elimination_curves.png", "elimination_by_label.csv", "elimination_by_group.csv"]
        + [f"grids/{k}_class{c}.png" for c in range(3) for k in ("extremes", "ranks")]
    )
    page, text = _parse(report)
    assert lost in text and len(page.images) == 7
    _decode_all(page.images)


def test_cli_without_images(ranked, tmp_path, capsys):
    _, rk = ranked
    src = save_rankings(rk, tmp_path / "r.csv")
    assert main([str(src)]) == 0
    report = Path(capsys.readouterr().out.strip())
    assert report == tmp_path / "r_inspect" / "report.html"
    page, _ = _parse(report)
    assert len(page.images) == 1


# The command needs only ``setup()`` and ``splits`` (what SebraDataModule provides); a plain class keeps Lightning's
# import time out of these tests.
_DM_MODULE = """
import torch, pandas as pd
from sebra.datasets.base import ImageDataset
from sebra.datasets.datamodule import SebraDataModule

class TinyDM(SebraDataModule):
    def __init__(self, n: int = 4, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n, self.root = n, root

    def build_splits(self):
        table = pd.DataFrame({"index": range(10, 10 + self.n), "label": [i % 2 for i in range(self.n)]})
        images = torch.zeros(self.n, 3, 4, 4, dtype=torch.uint8)
        images[:, 1] = 200
        return {"train": ImageDataset(table, images=images, class_names=["even", "odd"], name="tiny")}
"""


def _tiny_rankings(tmp_path: Path) -> Path:
    rk = pd.DataFrame(
        {
            "index": [10, 11, 12, 13],
            "label": [0, 1, 0, 1],
            "rank": [1, 1, 2, 2],
            "position": [1, 1, 2, 2],
            "p_y": [0.9, 0.8, 0.3, 0.2],
        }
    )
    return save_rankings(rk, tmp_path / "tiny.csv")


def test_cli_with_yaml_config(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny_dm_for_inspect.py").write_text(_DM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data:\n  class_path: tiny_dm_for_inspect.TinyDM\n  init_args:\n    n: 4\n")
    assert main([str(_tiny_rankings(tmp_path)), "--data", str(cfg), "--out", str(tmp_path / "o")]) == 0
    page, _ = _parse(Path(capsys.readouterr().out.strip()))
    assert "Class even (0)" in page.h2 and "Class odd (1)" in page.h2
    green = [im.convert("RGB") for im in _decode_all(page.images)[1:]]
    assert all((0, 200, 0) in {c for _, c in im.getcolors(1 << 20)} for im in green)  # the tiles are drawn


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("model: {}\n", "top-level 'data' mapping"),
        ("data:\n  init_args: {}\n", "field 'data.class_path' is missing"),
        ("data:\n  class_path: no_such_module_xyz.DM\n", r"data.class_path: cannot import module"),
        (
            "data:\n  class_path: tiny_dm_for_inspect.TinyDM\n  init_args: {colour: 3}\n",
            r"data.init_args: TinyDM got an unexpected argument 'colour'",
        ),
        (
            "data:\n  class_path: sebra.methods.erm.ERMModule\n",
            r"data.class_path .*ERMModule is not a data module",
        ),
    ],
)
def test_cli_bad_config_named(tmp_path, monkeypatch, capsys, yaml_text, match):
    (tmp_path / "tiny_dm_for_inspect.py").write_text(_DM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    assert main([str(_tiny_rankings(tmp_path)), "--data", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert str(cfg) in err
    assert re.search(match, err), err


def test_cli_builtin_missing_module(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sebra.datasets.builtin", None)
    assert main([str(_tiny_rankings(tmp_path)), "--data", "builtin"]) == 1
    assert "sebra.datasets.builtin" in capsys.readouterr().err


def test_cli_builtin_gets_root(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny_dm_for_inspect.py").write_text(_DM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import tiny_dm_for_inspect

    seen = {}

    class Builtin(tiny_dm_for_inspect.TinyDM):
        def __init__(self, root: str | None = None):
            seen["root"] = root
            super().__init__(n=4, root=root)

    fake = types.ModuleType("sebra.datasets.builtin")
    fake.BuiltinDataModule = Builtin
    monkeypatch.setitem(sys.modules, "sebra.datasets.builtin", fake)
    assert main([str(_tiny_rankings(tmp_path)), "--data", "builtin", "--root", str(tmp_path / "data")]) == 0
    assert seen["root"] == str(tmp_path / "data")
    assert Path(capsys.readouterr().out.strip()).exists()


def test_cli_errors_are_short(tmp_path, capsys):
    assert main([str(tmp_path / "absent.csv")]) == 1
    err = capsys.readouterr().err
    assert "absent.csv" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("index,label,rank,position,p_y\n1,0,x,1,0.5\n")
    assert main([str(bad)]) == 1
    assert "column 'rank' holds 'x' on line 2" in capsys.readouterr().err
    assert main([str(bad), "--k", "0"]) == 2


def test_report_shows_the_check_and_what_the_second_look_moved(ranked, tmp_path):
    _, rk = ranked
    check = {
        "status": "graded",
        "fired": False,
        "message": "no sign of a one-shortcut partition",
        "signal": "tail_agreement",
        "first_wave_share": [0.9, 0.9],
        "agreement": [0.95, 0.9],
        "second_look": {"epochs": 3, "first_wave": 100, "moved": 7, "moved_share": 0.07},
    }
    _, text = _parse(write_report(rk, None, tmp_path, check=check))
    assert "no sign of a one-shortcut partition" in text
    assert "7 of 100 first-wave samples (7.0%)" in text
    _, plain = _parse(write_report(rk, None, tmp_path / "b", check={**check, "second_look": None}))
    assert "first-wave samples" not in plain

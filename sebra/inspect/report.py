"""A self-contained HTML report of a ranking: counts, quality numbers, elimination curves and image grids.

One ``report.html`` file with every image embedded as a base64 ``data:`` URI, so it can be mailed, attached to an
issue or opened from a CI artifact without the folder it came from.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sebra.datasets.base import ImageDataset
from sebra.diagnostics import second_look_line
from sebra.export import check_rankings
from sebra.inspect.curves import figure_png, plot_elimination_curves
from sebra.inspect.grids import Grid, missing_images, render_extremes, render_rank_strips
from sebra.utils.files import atomic_write

__all__ = ["rank_class_counts", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}.warning{background:#fff4e0;border-left:4px solid #e08a00;padding:.2em .8em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}
td.name,th.name{text-align:left}.meta{color:#555}.problems li{color:#a00}
img{max-width:100%;height:auto;display:block;margin:.4em 0}nav a{margin-right:.8em}
"""


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return _png_uri(buf.getvalue())


def _rank_order(ranks) -> list[int]:
    return sorted({int(r) for r in ranks}, key=lambda r: (1, 0) if r < 0 else (0, r))


def _rank_name(r: int) -> str:
    return "-1 (never)" if r < 0 else str(r)


def _class_name(label: int, class_names: Sequence[str] | None) -> str:
    return (
        str(class_names[label]) if class_names is not None and 0 <= label < len(class_names) else str(label)
    )


def rank_class_counts(rankings: pd.DataFrame) -> pd.DataFrame:
    """Samples per rank (rows; rank -1 last) and class (columns), int64, zeros where none."""
    check_rankings(rankings)
    labels = sorted(int(c) for c in rankings["label"].unique())
    counts = pd.crosstab(rankings["rank"].astype("int64"), rankings["label"].astype("int64"))
    return counts.reindex(index=_rank_order(rankings["rank"]), columns=labels, fill_value=0).astype("int64")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], name_cols: int = 1) -> str:
    def cell(tag: str, j: int, v: Any) -> str:
        cls = ' class="name"' if j < name_cols else ""
        return f"<{tag}{cls}>{escape(str(v))}</{tag}>"

    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", j, v) for j, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if np.isnan(v) else f"{float(v):.4f}"
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _summary(rankings: pd.DataFrame, class_names: Sequence[str] | None) -> str:
    counts = rank_class_counts(rankings)
    header = ["rank"] + [f"{_class_name(c, class_names)} ({c})" for c in counts.columns] + ["all"]
    rows = [
        [_rank_name(r)] + [int(v) for v in counts.loc[r]] + [int(counts.loc[r].sum())] for r in counts.index
    ]
    rows.append(["all"] + [int(v) for v in counts.sum(axis=0)] + [int(counts.to_numpy().sum())])
    return _table(header, rows)


def _groups(rankings: pd.DataFrame, group_names: Mapping[int, str] | None) -> str:
    """Per group: size, median rank and mean relative position (position / class size; small = spurious)."""
    df = rankings[rankings["group"] >= 0]
    size = rankings.groupby("label")["index"].transform("size")
    rel = (rankings["position"] / size)[rankings["group"] >= 0]
    rows = []
    for g, part in df.groupby("group", sort=True):
        ranks = part["rank"].to_numpy()
        real = ranks[ranks >= 0]
        name = (group_names or {}).get(int(g), str(int(g)))
        rows.append(
            [
                name,
                int(g),
                len(part),
                f"{np.median(real):g}" if len(real) else "-",
                int((ranks < 0).sum()),
                f"{rel[part.index].mean():.3f}",
            ]
        )
    return _table(["group", "id", "n", "median rank", "rank -1 (never)", "mean position / class size"], rows)


def write_report(
    rankings: pd.DataFrame,
    dataset: ImageDataset | None,
    out_dir: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    quality: Mapping[str, Any] | None = None,
    title: str = "Sebra ranking report",
    k: int = 8,
    per_bucket: int = 4,
    max_buckets: int = 12,
    tile: int = 96,
    grids: Sequence[Grid] | None = None,
    curves: Figure | None = None,
    group_names: Mapping[int, str] | None = None,
    last_step: int | None = None,
    check: Mapping[str, Any] | Any | None = None,
) -> Path:
    """Write ``out_dir/report.html``, one self-contained page, atomically.

    Args:
        rankings: the ranking table (see :mod:`sebra.export`).
        dataset: where the images come from; ``None`` gives a report without grids (counts and curves only).
        out_dir: the folder to write ``report.html`` into (created if needed).
        class_names: names per class id; default the dataset's, else the ids.
        quality: precomputed ranking-quality numbers (e.g. ``{"kendall_tau_b": 0.61, "weighted_tau": 0.7}``;
            nested mappings are flattened to ``a.b``), shown as given.
        title: the page title.
        k: most / least spurious samples per class in the extremes grid.
        per_bucket: samples per rank bucket in the rank strips.
        max_buckets: rank buckets per class at most (consecutive ranks are merged beyond it).
        tile: tile side in pixels.
        grids: grids already rendered (e.g. by :func:`~sebra.inspect.grids.save_grids`), to avoid drawing twice;
            by default they are rendered from ``dataset``.
        curves: an elimination-curve figure already drawn; by default it is drawn from ``rankings``.
        group_names: names per group id (default the dataset's ``bias.group_names``).
        last_step: the number of ranking steps that ran, when known (see
            :func:`~sebra.inspect.curves.elimination_steps`).
        check: the label-free one-shortcut check (:class:`~sebra.diagnostics.PartitionCheck` or its dict, as in
            ``ranking_diagnostics.json``), shown at the top; a fired check is shown as a warning.

    Returns:
        The path of ``report.html``.
    """
    check_rankings(rankings)
    if class_names is None and dataset is not None:
        class_names = dataset.class_names
    if group_names is None and dataset is not None and dataset.bias is not None:
        group_names = dataset.bias.group_names or None
    labels = sorted(int(c) for c in rankings["label"].unique())
    if grids is None and dataset is not None:
        grids = []
        for c in labels:
            grids.append(render_extremes(dataset, rankings, c, k=k, tile=tile, class_names=class_names))
            grids.append(
                render_rank_strips(
                    dataset,
                    rankings,
                    c,
                    per_bucket=per_bucket,
                    max_buckets=max_buckets,
                    tile=tile,
                    class_names=class_names,
                )
            )
    grids = list(grids or [])
    if curves is None:
        curves = plot_elimination_curves(
            rankings, class_names=class_names, group_names=group_names, last_step=last_step
        )
    ranks = rankings["rank"].to_numpy()
    official = bool((ranks < 0).any())
    real = ranks[ranks >= 0]
    span = f"ranks {int(real.min())}-{int(real.max())}" if len(real) else "no ranked sample"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{len(rankings)} samples, {len(labels)} classes, {escape(span)}'
        + ("; rank -1 = never eliminated (official mode)" if official else "")
        + "; rank 1 = eliminated first = most spurious.</p>",
        "<nav>"
        + "".join(f'<a href="#class-{c}">{escape(_class_name(c, class_names))}</a>' for c in labels)
        + "</nav>",
    ]
    if check is not None:
        d = check.to_dict() if hasattr(check, "to_dict") else dict(check)
        fired = bool(d.get("fired"))
        parts.append(
            f'<section id="check" class="{"warning" if fired else "check"}"><h2>Ranking check</h2>'
            f"<p>{'<strong>Warning:</strong> ' if fired else ''}{escape(str(d.get('message', '')))}</p>"
            + _table(
                [
                    "class",
                    "share of the class in the first wave",
                    "least spurious tail shared with ERM confidence"
                    if d.get("signal") == "tail_agreement"
                    else "agreement of the first wave's order, mid-step vs end of step",
                ],
                [
                    [_class_name(c, class_names), _fmt(sh), "–" if ag is None else _fmt(ag)]
                    for c, sh, ag in zip(labels, d.get("first_wave_share", []), d.get("agreement", []))
                ],
            )
            + (f"<p>{escape(second_look_line(d['second_look']))}</p>" if d.get("second_look") else "")
            + "</section>"
        )
    problems = missing_images(grids)
    if problems:
        parts.append(
            '<section id="problems"><h2>Problems</h2><p>These images could not be read and are drawn as '
            'grey placeholders:</p><ul class="problems">'
            + "".join(f"<li>{escape(m)}</li>" for m in problems)
            + "</ul></section>"
        )
    if quality:
        parts.append(
            '<section id="quality"><h2>Ranking quality</h2>'
            + _table(["measure", "value"], [[k_, _fmt(v)] for k_, v in _flatten(quality)])
            + "</section>"
        )
    parts.append(
        '<section id="summary"><h2>Samples per rank and class</h2>'
        + _summary(rankings, class_names)
        + "</section>"
    )
    if "group" in rankings.columns and bool((rankings["group"] >= 0).any()):
        parts.append('<section id="groups"><h2>Groups</h2>' + _groups(rankings, group_names) + "</section>")
    parts.append(
        '<section id="curves"><h2>Elimination curves</h2><p>Fraction of each class (and group) still '
        "active after each ranking step.</p>"
        f'<img alt="elimination curves" src="{_png_uri(figure_png(curves))}"></section>'
    )
    by_class: dict[int, list[Grid]] = {}
    for g in grids:
        by_class.setdefault(g.label, []).append(g)
    for c in labels:
        name = escape(_class_name(c, class_names))
        parts.append(f'<section id="class-{c}" class="class"><h2>Class {name} ({c})</h2>')
        if not by_class.get(c):
            parts.append("<p>No images: no dataset (or no <code>path</code> column) was given.</p>")
        for g in by_class.get(c, []):
            what = "most vs least spurious" if g.kind == "extremes" else "samples per rank"
            parts.append(
                f'<h3>{escape(what)}</h3><img alt="{escape(what)}, class {name}" src="{_image_uri(g.image)}">'
            )
        parts.append("</section>")
    parts.append("</body></html>")
    html = "\n".join(parts)
    return atomic_write(
        Path(out_dir) / "report.html", lambda tmp: Path(tmp).write_text(html, encoding="utf-8")
    )

"""Image grids of a ranking: per class, the most and least spurious samples, and a strip of samples per rank.

A ranking is easier to judge by eye than from a table: the first positions of a class should share its shortcut
(the background, the co-occurring object), the last ones should be its rare counter-examples. Selection (which
dataset indices, in which tile order) is kept apart from drawing, so it can be checked against the table alone.

Images come from an :class:`~sebra.datasets.base.ImageDataset` (raw uint8, before any transform). An image that
cannot be read becomes a grey placeholder tile, and its message (naming the file) is listed in ``Grid.missing``
and issued as a :class:`MissingImageWarning`, so one lost file does not stop an inspection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from sebra.datasets.base import ImageDataset
from sebra.export import check_rankings
from sebra.inspect.selection import extreme_indices, rank_bucket_indices
from sebra.inspect.tiles import (
    _BG,
    _BLOCK_GAP,
    _INK,
    _MARGIN,
    _PAD,
    _fit,
    _font,
    _len,
    _line_height,
    _Loader,
    _name,
    _paste_tile,
    _text,
    _warn,
)
from sebra.utils.files import atomic_write

__all__ = [
    "Grid",
    "missing_images",
    "paths_dataset",
    "render_extremes",
    "render_rank_strips",
    "save_grids",
]


@dataclass
class Grid:
    """One rendered grid.

    Attributes:
        kind: ``"extremes"`` (most vs least spurious) or ``"ranks"`` (a strip per rank bucket).
        label: the class shown.
        image: the RGB canvas.
        indices: dataset indices of the tiles, in tile order (row by row, left to right).
        boxes: ``(left, top, right, bottom)`` pixel box of each tile's image, same order as ``indices``.
        missing: one message per image that could not be read (each names the file).
        path: where the PNG was saved, if it was.
    """

    kind: str
    label: int
    image: Image.Image
    indices: list[int]
    boxes: list[tuple[int, int, int, int]]
    missing: list[str] = field(default_factory=list)
    path: Path | None = None


def render_extremes(
    dataset: ImageDataset,
    rankings: pd.DataFrame,
    label: int,
    *,
    k: int = 8,
    tile: int = 96,
    class_names: Sequence[str] | None = None,
) -> Grid:
    """One class's ``k`` most spurious samples (left block) beside its ``k`` least spurious (right block).

    Each tile is captioned with the dataset index, position, rank and ``p_y``; the header names the class.
    Tile order is that of :func:`extreme_indices` (most first, then least).
    """
    check_rankings(rankings)
    most, least = extreme_indices(rankings, label, k)
    font = _font()
    lh = _line_height(font)
    info = rankings.set_index("index")
    load = _Loader(dataset, rankings, most + least, tile, font)
    n = int((rankings["label"] == label).sum())
    cell = tile + _PAD
    blocks_w = len(most) * cell + _BLOCK_GAP + len(least) * cell
    title = f"{_name(label, dataset, class_names)} (class {label}, n={n})"
    width = 2 * _MARGIN + max(blocks_w, _len(font, title) + 2, 2 * _len(font, "least spurious"))
    top = _MARGIN + 2 * lh + 2
    height = top + tile + 2 * lh + _MARGIN
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    _text(draw, (_MARGIN, _MARGIN), title, fill=_INK, font=font)
    x_least = _MARGIN + len(most) * cell + _BLOCK_GAP
    _text(draw, (_MARGIN, _MARGIN + lh), "most spurious", fill=(170, 30, 30), font=font)
    if least:
        _text(draw, (x_least, _MARGIN + lh), "least spurious", fill=(30, 60, 170), font=font)
    if most and least:
        xs = x_least - _BLOCK_GAP // 2 - _PAD // 2
        draw.line([(xs, top), (xs, top + tile + 2 * lh)], fill=(200, 200, 200), width=2)
    boxes = []
    for j, idx in enumerate(most + least):
        x = _MARGIN + j * cell if j < len(most) else x_least + (j - len(most)) * cell
        boxes.append(_paste_tile(canvas, load(idx), x, top, tile))
        row = info.loc[idx]
        r, pos, p = int(row["rank"]), int(row["position"]), float(row["p_y"])
        _text(
            draw,
            (x, top + tile + 1),
            _fit(font, [f"#{idx} pos {pos}", f"#{idx}"], tile),
            fill=_INK,
            font=font,
        )
        _text(
            draw,
            (x, top + tile + 1 + lh),
            _fit(font, [f"rank {r} p_y {p:.3f}", f"r{r} p{p:.2f}"], tile),
            fill=_INK,
            font=font,
        )
    _warn(load.missing, f"the extremes grid of class {label}")
    return Grid("extremes", label, canvas, most + least, boxes, load.missing)


def render_rank_strips(
    dataset: ImageDataset,
    rankings: pd.DataFrame,
    label: int,
    *,
    per_bucket: int = 4,
    max_buckets: int = 12,
    tile: int = 96,
    class_names: Sequence[str] | None = None,
) -> Grid:
    """One class's samples, one row per rank bucket (see :func:`rank_bucket_indices`), rank 1 on top.

    Each row is headed by its rank(s) and bucket size; each tile is captioned with the dataset index and ``p_y``.
    """
    check_rankings(rankings)
    buckets = rank_bucket_indices(rankings, label, per_bucket, max_buckets)
    font = _font()
    lh = _line_height(font)
    info = rankings.set_index("index")
    load = _Loader(dataset, rankings, [i for b in buckets for i in b.indices], tile, font)
    n = int((rankings["label"] == label).sum())
    head_w = max(_len(font, b.caption) for b in buckets) + 10
    head_w = max(head_w, _len(font, "n=00000") + 10)
    cell = tile + _PAD
    title = f"{_name(label, dataset, class_names)} (class {label}, n={n}): samples per rank"
    row_h = tile + 2 * lh + _PAD
    width = 2 * _MARGIN + max(head_w + per_bucket * cell, _len(font, title) + 2)
    top = _MARGIN + lh + 4
    canvas = Image.new("RGB", (width, top + len(buckets) * row_h + _MARGIN), _BG)
    draw = ImageDraw.Draw(canvas)
    _text(draw, (_MARGIN, _MARGIN), title, fill=_INK, font=font)
    indices, boxes = [], []
    for b_i, bucket in enumerate(buckets):
        y = top + b_i * row_h
        _text(draw, (_MARGIN, y + tile // 2 - lh), bucket.caption, fill=_INK, font=font)
        _text(draw, (_MARGIN, y + tile // 2), f"n={bucket.n}", fill=(90, 90, 90), font=font)
        for j, idx in enumerate(bucket.indices):
            x = _MARGIN + head_w + j * cell
            boxes.append(_paste_tile(canvas, load(idx), x, y, tile))
            indices.append(idx)
            row = info.loc[idx]
            pos, p_y = int(row["position"]), float(row["p_y"])
            _text(draw, (x, y + tile + 1), _fit(font, [f"#{idx} pos {pos}", f"#{idx}"], tile), font=font)
            _text(draw, (x, y + tile + 1 + lh), _fit(font, [f"p_y {p_y:.3f}", f"{p_y:.2f}"], tile), font=font)
    _warn(load.missing, f"the rank strips of class {label}")
    return Grid("ranks", label, canvas, indices, boxes, load.missing)


def save_grids(
    dataset: ImageDataset,
    rankings: pd.DataFrame,
    out_dir: str | Path,
    *,
    k: int = 8,
    per_bucket: int = 4,
    max_buckets: int = 12,
    tile: int = 96,
    class_names: Sequence[str] | None = None,
) -> list[Grid]:
    """Render and save, per class, ``extremes_class{c}.png`` and ``ranks_class{c}.png`` under ``out_dir``.

    Returns:
        The grids (class by class, extremes then ranks), each with its ``path`` set; written atomically.
    """
    check_rankings(rankings)
    out_dir = Path(out_dir)
    grids = []
    for label in sorted(int(c) for c in rankings["label"].unique()):
        for grid, stem in (
            (render_extremes(dataset, rankings, label, k=k, tile=tile, class_names=class_names), "extremes"),
            (
                render_rank_strips(
                    dataset,
                    rankings,
                    label,
                    per_bucket=per_bucket,
                    max_buckets=max_buckets,
                    tile=tile,
                    class_names=class_names,
                ),
                "ranks",
            ),
        ):
            grid.path = atomic_write(
                out_dir / f"{stem}_class{label}.png", lambda tmp, im=grid.image: im.save(tmp, format="PNG")
            )
            grids.append(grid)
    return grids


def missing_images(grids: Sequence[Grid]) -> list[str]:
    """Every distinct missing-image message over ``grids``, in first-seen order."""
    return list(dict.fromkeys(m for g in grids for m in g.missing))


def paths_dataset(
    rankings: pd.DataFrame, root: str | Path | None = None, name: str = "rankings"
) -> ImageDataset:
    """An :class:`ImageDataset` over the ``path`` column of the rankings, for inspecting without the data module.

    Relative paths are taken relative to ``root`` when given. Images are decoded on demand (no cache), so images
    of different sizes are fine.
    """
    check_rankings(rankings, name)
    if "path" not in rankings.columns:
        raise ValueError(f"{name}: ranking table has no 'path' column; pass a dataset to show images")
    table = rankings[["index", "label", "path"]].copy()
    if root is not None:
        table["path"] = [
            str(p if Path(p).is_absolute() else Path(root) / p) for p in table["path"].astype(str)
        ]
    return ImageDataset(table, cache=False, name=name)

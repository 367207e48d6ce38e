"""Image grids of a ranking: per class, the most and least spurious samples, and a strip of samples per rank.

A ranking is easier to judge by eye than from a table: the first positions of a class should share its shortcut
(the background, the co-occurring object), the last ones should be its rare counter-examples. Selection (which
dataset indices, in which tile order) is kept apart from drawing, so it can be checked against the table alone.

Images come from an :class:`~sebra.datasets.base.ImageDataset` (raw uint8, before any transform). An image that
cannot be read becomes a grey placeholder tile, and its message (naming the file) is listed in ``Grid.missing``
and issued as a :class:`MissingImageWarning`, so one lost file does not stop an inspection.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont

from sebra.datasets.base import DatasetError, ImageDataset
from sebra.export import check_rankings
from sebra.utils.files import atomic_write

__all__ = [
    "Grid",
    "MissingImageWarning",
    "RankBucket",
    "extreme_indices",
    "missing_images",
    "paths_dataset",
    "rank_bucket_indices",
    "render_extremes",
    "render_rank_strips",
    "save_grids",
]

_MARGIN = 6
_PAD = 4  # between tiles
_BLOCK_GAP = 24  # between the "most" and "least" blocks
_BG = (255, 255, 255)
_INK = (20, 20, 20)
_PLACEHOLDER = (160, 160, 160)

_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


class MissingImageWarning(UserWarning):
    """Some images of a grid could not be read; they were drawn as grey placeholders."""


@dataclass(frozen=True)
class RankBucket:
    """Samples of one class whose rank falls in ``ranks`` (one rank value, or a run of them when there are many).

    Attributes:
        ranks: the rank values the bucket covers, ascending (``(-1,)`` for never-eliminated in official mode).
        n: how many samples of the class the bucket holds.
        indices: the dataset indices chosen to show, in tile order (ascending ``position``).
    """

    ranks: tuple[int, ...]
    n: int
    indices: list[int]

    @property
    def caption(self) -> str:
        """``rank 3``, ``ranks 3-5`` or ``rank -1 (never)``."""
        if self.ranks == (-1,):
            return "rank -1 (never)"
        if len(self.ranks) == 1:
            return f"rank {self.ranks[0]}"
        return f"ranks {self.ranks[0]}-{self.ranks[-1]}"


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


# --- selection ---------------------------------------------------------------------------------------------------
def _class_rows(rankings: pd.DataFrame, label: int) -> pd.DataFrame:
    rows = rankings[rankings["label"] == label]
    if rows.empty:
        present = sorted(rankings["label"].unique().tolist())
        raise ValueError(f"rankings hold no sample of class {label}; classes present: {present}")
    return rows.sort_values(["position", "index"], kind="stable")


def extreme_indices(rankings: pd.DataFrame, label: int, k: int = 8) -> tuple[list[int], list[int]]:
    """The ``k`` most and ``k`` least spurious samples of one class.

    Args:
        rankings: the ranking table (see :mod:`sebra.export`).
        label: the class.
        k: tiles per side. A class with fewer than ``2k`` samples is split in two disjoint halves (the most
            spurious side gets the odd one), so no sample is shown twice.

    Returns:
        ``(most, least)`` dataset indices: ``most`` by ascending ``position`` (1, 2, ...), ``least`` by
        descending ``position`` (n, n-1, ...), i.e. each starts from its extreme.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_rankings(rankings)
    ids = _class_rows(rankings, label)["index"].astype("int64").tolist()
    n = len(ids)
    n_most = k if n >= 2 * k else math.ceil(n / 2)
    n_least = k if n >= 2 * k else n - n_most
    return ids[:n_most], ids[::-1][:n_least]


def _rank_key(r: int) -> tuple[int, int]:
    return (1, 0) if r < 0 else (0, r)  # never-eliminated (-1) after every real step


def rank_bucket_indices(
    rankings: pd.DataFrame, label: int, per_bucket: int = 4, max_buckets: int = 12
) -> list[RankBucket]:
    """A few samples of one class per rank value, for a strip per rank.

    Args:
        rankings: the ranking table.
        label: the class.
        per_bucket: samples shown per bucket, spread evenly over the bucket in ``position`` order (the first and
            last included), so a bucket of many ranks shows its range.
        max_buckets: when the class has more distinct ranks, consecutive ranks are merged into this many buckets
            of about equal numbers of rank values (rank -1, if present, always stays its own bucket).

    Returns:
        Buckets in rank order, rank -1 (never eliminated, official mode) last.
    """
    if per_bucket < 1 or max_buckets < 1:
        raise ValueError(f"per_bucket and max_buckets must be at least 1, got {per_bucket} and {max_buckets}")
    check_rankings(rankings)
    rows = _class_rows(rankings, label)
    ranks = sorted({int(r) for r in rows["rank"]}, key=_rank_key)
    never = [r for r in ranks if r < 0]
    real = [r for r in ranks if r >= 0]
    n_real = max(max_buckets - len(never), 1)
    chunks = (
        [[int(r) for r in c] for c in np.array_split(np.asarray(real), min(n_real, len(real)))]
        if real
        else []
    )
    chunks += [[r] for r in never]
    out = []
    for chunk in chunks:
        sel = rows[rows["rank"].isin(chunk)]
        m = len(sel)
        take = np.unique(np.linspace(0, m - 1, min(per_bucket, m)).round().astype(np.int64))
        out.append(
            RankBucket(tuple(int(r) for r in chunk), m, sel["index"].iloc[take].astype("int64").tolist())
        )
    return out


# --- drawing -----------------------------------------------------------------------------------------------------
def _font() -> _Font:
    return ImageFont.load_default()


def _sp(text: str) -> str:
    # Pillow's default FreeType font has a 2 px space; doubling keeps captions readable.
    return text.replace(" ", "  ")


def _len(font: _Font, text: str) -> int:
    return int(font.getlength(_sp(text)))


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font: _Font, fill: tuple = _INK) -> None:
    draw.text(xy, _sp(text), fill=fill, font=font)


def _line_height(font: _Font) -> int:
    box = font.getbbox("Ag|")
    return int(box[3] - min(box[1], 0)) + 2


def _fit(font: _Font, candidates: Sequence[str], width: int) -> str:
    """The first candidate text that fits ``width`` pixels, else the last one cut short."""
    for text in candidates:
        if _len(font, text) <= width:
            return text
    text = candidates[-1]
    while text and _len(font, text + "..") > width:
        text = text[:-1]
    return text + ".."


def _to_pil(img: torch.Tensor) -> Image.Image:
    img = torch.as_tensor(img)
    if img.ndim == 2:
        img = img[None]
    if img.dtype != torch.uint8:
        raise DatasetError(f"expected a uint8 [3, H, W] image, got dtype {img.dtype}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return Image.fromarray(np.ascontiguousarray(img[:3].permute(1, 2, 0).cpu().numpy()), "RGB")


def _fit_tile(img: Image.Image, tile: int) -> Image.Image:
    """Scale into a ``tile`` square: whole-number nearest-neighbour upscaling keeps tiny images crisp."""
    w, h = img.size
    scale = min(tile / w, tile / h)
    if scale >= 1:
        f = int(scale)
        return img.resize((w * f, h * f), Image.Resampling.NEAREST) if f > 1 else img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def _placeholder(tile: int, font: _Font) -> Image.Image:
    im = Image.new("RGB", (tile, tile), _PLACEHOLDER)
    d = ImageDraw.Draw(im)
    d.line([(0, 0), (tile - 1, tile - 1)], fill=(120, 120, 120))
    d.line([(0, tile - 1), (tile - 1, 0)], fill=(120, 120, 120))
    d.text((3, 3), "missing", fill=_INK, font=font)
    return im


class _Loader:
    """Dataset images by dataset index; unreadable files become placeholders, with their message kept.

    The indices to show are looked up in the dataset once, and checked: each must be there, with the same label.
    """

    def __init__(
        self, dataset: ImageDataset, rankings: pd.DataFrame, indices: list[int], tile: int, font: _Font
    ) -> None:
        self.dataset, self.tile, self.font = dataset, tile, font
        self.missing: list[str] = []
        ids = torch.tensor(indices, dtype=torch.long)
        try:
            pos = dataset.positions_of(ids).tolist()
        except KeyError:
            absent = int(ids[~torch.isin(ids, dataset.indices)][0])
            raise ValueError(
                f"rankings index {absent} is not in dataset {dataset.name!r} ({len(dataset)} samples); "
                "was the ranking made on another data set or split?"
            ) from None
        self.pos = dict(zip(indices, pos))
        labels = dict(zip(rankings["index"].tolist(), rankings["label"].tolist()))
        for index, p in self.pos.items():
            if int(dataset.labels[p]) != labels[index]:
                raise ValueError(
                    f"rankings give index {index} the label {labels[index]}, dataset {dataset.name!r} gives "
                    f"{int(dataset.labels[p])}; was the ranking made on another data set?"
                )

    def __call__(self, index: int) -> Image.Image:
        pos = self.pos[index]
        try:
            img = _to_pil(self.dataset.load_image(pos))
        except (FileNotFoundError, DatasetError, OSError) as e:
            self.missing.append(f"index {index}: {e}")
            return _placeholder(self.tile, self.font)
        return _fit_tile(img, self.tile)


def _paste_tile(
    canvas: Image.Image, tile_img: Image.Image, x: int, y: int, tile: int
) -> tuple[int, int, int, int]:
    w, h = tile_img.size
    left, top = x + (tile - w) // 2, y + (tile - h) // 2
    canvas.paste(tile_img, (left, top))
    return (left, top, left + w, top + h)


def _name(label: int, dataset: ImageDataset | None, class_names: Sequence[str] | None) -> str:
    names = class_names if class_names is not None else (dataset.class_names if dataset is not None else None)
    return str(names[label]) if names is not None and 0 <= label < len(names) else str(label)


def _warn(missing: list[str], what: str) -> None:
    if missing:
        shown = "; ".join(missing[:5]) + ("; ..." if len(missing) > 5 else "")
        warnings.warn(
            f"{len(missing)} image(s) of {what} could not be read, drawn as placeholders: {shown}",
            MissingImageWarning,
            stacklevel=3,
        )


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

"""Drawing helpers for the ranking grids: tiles, placeholders for unreadable images, captions."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont

from sebra.datasets.base import DatasetError, ImageDataset

_MARGIN = 6
_PAD = 4  # between tiles
_BLOCK_GAP = 24  # between the "most" and "least" blocks
_BG = (255, 255, 255)
_INK = (20, 20, 20)
_PLACEHOLDER = (160, 160, 160)

_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


class MissingImageWarning(UserWarning):
    """Some images of a grid could not be read; they were drawn as grey placeholders."""


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

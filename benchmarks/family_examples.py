"""Example images of every registered variant of the benchmark family, one row per variant (BENCHMARKS.md §7).

    python benchmarks/family_examples.py --out benchmarks/results/family_examples.png

Columns: for class 0 then class 1, the four training cells (both aligned, A conflicting, B conflicting, both
conflicting), two test images each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sebra.datasets.family import VARIANTS, render_variant
from sebra.utils.files import atomic_write

CELLS = ((True, True), (False, True), (True, False), (False, False))  # (A aligned, B aligned)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/family_examples.png")
    p.add_argument("--scale", type=int, default=2)
    a = p.parse_args()
    rows, names = [], []
    for name, spec in VARIANTS.items():
        d = render_variant(spec)["test"]
        ims = []
        for lab in (0, 1):
            for a_al, b_al in CELLS:
                av, bv = (lab if a_al else 1 - lab), (lab if b_al else 1 - lab)
                idx = np.flatnonzero((d["label"] == lab) & (d["bg"] == av) & (d["coobj"] == bv))[:2]
                ims += [d["images"][i] for i in idx]
            ims.append(np.full_like(ims[0][:, :6], 255))  # a gap between the classes
        rows.append(np.concatenate(ims, 1))
        names.append(
            f"{name} ({spec.role}): A={spec.a.kind} {spec.a.strength}, B={spec.b.kind} {spec.b.strength}, "
            f"{spec.grouping}"
        )
    s, label_h = a.scale, 14
    h, w = rows[0].shape[0] * s, rows[0].shape[1] * s
    canvas = Image.new("RGB", (w, len(rows) * (h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (row, name) in enumerate(zip(rows, names)):
        y = i * (h + label_h)
        draw.text((2, y + 1), name, fill="black")
        canvas.paste(Image.fromarray(row).resize((w, h), Image.NEAREST), (0, y + label_h))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: canvas.save(tmp, format="PNG"))
    print(out)


if __name__ == "__main__":
    main()

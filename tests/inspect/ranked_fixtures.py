"""A small ranked data set with known shortcut: aligned samples are red, conflicting ones blue.

Three classes of ten 8x8 images. Per class, seven samples are aligned (red) and ranked first (ranks 1-2), three
are conflicting (blue) and ranked last (ranks 3-4, one never eliminated: rank 5). Dataset indices are shuffled
and not equal to positions, and the ranking table's row order differs from the dataset's, so a mix-up of index
and position shows.

Imported by the inspection tests as ``from ranked_fixtures import ...`` (pytest puts this folder on ``sys.path``);
the fixtures ``ranked`` and ``ranked_files`` over it live in this folder's ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import BiasSpec, ImageDataset

RED = (255, 0, 0)
BLUE = (0, 0, 255)
CLASS_NAMES = ["cat", "dog", "fox"]
PER_CLASS, ALIGNED = 10, 7
SIZE = 8


def make_ranked(seed: int = 0) -> tuple[ImageDataset, pd.DataFrame]:
    """``(dataset, rankings)`` of the synthetic set; ``color`` is 0 (red, aligned) or 1 (blue, conflicting)."""
    g = torch.Generator().manual_seed(seed)
    n = PER_CLASS * len(CLASS_NAMES)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), PER_CLASS)
    color = np.tile(np.r_[np.zeros(ALIGNED, int), np.ones(PER_CLASS - ALIGNED, int)], len(CLASS_NAMES))
    index = (1000 + 7 * torch.randperm(n, generator=g)).numpy()  # shuffled, far from positions
    images = torch.zeros(n, 3, SIZE, SIZE, dtype=torch.uint8)
    for i, c in enumerate(color):
        images[i] = torch.tensor(RED if c == 0 else BLUE, dtype=torch.uint8)[:, None, None]
    table = pd.DataFrame({"index": index, "label": labels, "color": color, "group": labels * 2 + color})
    bias = BiasSpec(("color",), ((0,),) * len(CLASS_NAMES), group_names={i: f"g{i}" for i in range(6)})
    ds = ImageDataset(table, images=images, class_names=CLASS_NAMES, bias=bias, name="synthetic")

    # Ranks: aligned 1 or 2, conflicting 3 or 4, the last conflicting one of each class never eliminated (5).
    ranks = np.where(color == 0, 1 + np.arange(n) % 2, 3 + np.arange(n) % 2)
    ranks[np.arange(n) % PER_CLASS == PER_CLASS - 1] = 5
    p_y = torch.rand(n, generator=g, dtype=torch.float64).numpy()
    rk = pd.DataFrame(
        {
            "index": index,
            "label": labels,
            "rank": ranks,
            "p_y": p_y,
            "color": color,
            "group": labels * 2 + color,
        }
    )
    # Tie-break inside a rank: higher p_y first (more spurious).
    rk = rk.sort_values(["label", "rank", "p_y"], ascending=[True, True, False])
    rk["position"] = rk.groupby("label").cumcount() + 1
    rk = rk.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # table order != dataset order
    rk = rk[["index", "label", "rank", "position", "p_y", "color", "group"]]
    return ds, rk


def write_pngs(ds: ImageDataset, folder: Path) -> list[str]:
    """Write each image of ``ds`` as a PNG under ``folder``; returns the paths in dataset order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for pos in range(len(ds)):
        p = folder / f"img_{int(ds.indices[pos])}.png"
        Image.fromarray(ds.load_image(pos).permute(1, 2, 0).numpy()).save(p)
        paths.append(str(p))
    return paths

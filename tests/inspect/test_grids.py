"""Image grids: which samples are chosen (checked against the ranking table), and that the tiles show them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from ranked_fixtures import BLUE, CLASS_NAMES, RED, SIZE

from sebra.datasets.base import ImageDataset
from sebra.inspect.grids import missing_images, paths_dataset, render_extremes, render_rank_strips, save_grids
from sebra.inspect.selection import extreme_indices, rank_bucket_indices
from sebra.inspect.tiles import MissingImageWarning


def _by_position(rk: pd.DataFrame, label: int) -> list[int]:
    """Brute force: the class's dataset indices ordered by position, from a plain loop."""
    rows = [(int(r.position), int(r.index)) for r in rk.itertuples() if r.label == label]
    return [i for _, i in sorted(rows)]


def _color_of(rk: pd.DataFrame) -> dict[int, int]:
    return dict(zip(rk["index"].tolist(), rk["color"].tolist()))


def _center(image: Image.Image, box) -> tuple[int, int, int]:
    left, top, right, bottom = box
    return image.getpixel(((left + right) // 2, (top + bottom) // 2))


@pytest.mark.parametrize("label", range(len(CLASS_NAMES)))
def test_extremes_follow_positions_and_attributes(ranked, label):
    _, rk = ranked
    most, least = extreme_indices(rk, label, k=3)
    order = _by_position(rk, label)
    assert most == order[:3]
    assert least == [order[-1], order[-2], order[-3]]
    color = _color_of(rk)
    assert [color[i] for i in most] == [0, 0, 0]  # aligned (red) ranked first
    assert [color[i] for i in least] == [1, 1, 1]  # conflicting (blue) ranked last


def test_small_class_split_in_disjoint_halves():
    rk = pd.DataFrame(
        {
            "index": [50, 51, 52, 53, 54],
            "label": 0,
            "rank": [1, 1, 2, 2, 3],
            "position": [5, 1, 3, 2, 4],
            "p_y": 0.5,
        }
    )
    most, least = extreme_indices(rk, 0, k=4)  # 5 < 2k: 3 most, 2 least
    assert most == [51, 53, 52]
    assert least == [50, 54]
    assert extreme_indices(rk.iloc[:1], 0, k=4) == ([50], [])


def test_extremes_tiles_show_chosen_images_in_order(ranked):
    ds, rk = ranked
    grid = render_extremes(ds, rk, 1, k=4, tile=96)
    assert grid.kind == "extremes" and grid.label == 1
    assert grid.indices == [i for side in extreme_indices(rk, 1, k=4) for i in side]
    assert len(grid.boxes) == 8
    color = _color_of(rk)
    for idx, box in zip(grid.indices, grid.boxes):
        assert (box[2] - box[0], box[3] - box[1]) == (SIZE * 12, SIZE * 12)  # 8 px upscaled x12, nearest
        assert _center(grid.image, box) == (RED if color[idx] == 0 else BLUE)
    xs = [b[0] for b in grid.boxes]
    assert xs == sorted(xs)  # left to right in tile order
    assert grid.missing == []


def test_rank_buckets_against_table(ranked):
    _, rk = ranked
    for label in range(len(CLASS_NAMES)):
        buckets = rank_bucket_indices(rk, label, per_bucket=2, max_buckets=12)
        rows = rk[rk["label"] == label]
        assert [b.ranks for b in buckets] == [(r,) for r in sorted(rows["rank"].unique())]
        for b in buckets:
            in_bucket = rows[rows["rank"] == b.ranks[0]].sort_values("position")["index"].tolist()
            assert b.n == len(in_bucket)
            expected = (
                [in_bucket[0], in_bucket[-1]] if len(in_bucket) > 1 else in_bucket
            )  # ends of the bucket
            assert b.indices == expected


def test_rank_buckets_merge_and_official_never_last():
    # ranks 1..5 plus -1 (official never-eliminated); 3 buckets: -1 alone, 1..5 split in two runs.
    rk = pd.DataFrame(
        {
            "index": range(7),
            "label": 0,
            "rank": [3, -1, 1, 5, 2, 4, 1],
            "position": [4, 7, 1, 6, 3, 5, 2],
            "p_y": 0.5,
        }
    )
    buckets = rank_bucket_indices(rk, 0, per_bucket=3, max_buckets=3)
    assert [b.ranks for b in buckets] == [(1, 2, 3), (4, 5), (-1,)]
    assert [b.n for b in buckets] == [4, 2, 1]
    # bucket (1,2,3) holds positions 1,2,3,4 = indices 2,6,4,0; three spread picks -> rounds of 0, 1.5, 3.
    assert buckets[0].indices == [2, 4, 0]
    assert buckets[1].indices == [5, 3]
    assert buckets[2].indices == [1]
    assert [b.caption for b in buckets] == ["ranks 1-3", "ranks 4-5", "rank -1 (never)"]


def test_rank_strips_tiles_match_buckets(ranked):
    ds, rk = ranked
    grid = render_rank_strips(ds, rk, 2, per_bucket=3)
    buckets = rank_bucket_indices(rk, 2, per_bucket=3)
    assert grid.indices == [i for b in buckets for i in b.indices]
    color = _color_of(rk)
    assert [_center(grid.image, b) for b in grid.boxes] == [
        RED if color[i] == 0 else BLUE for i in grid.indices
    ]
    tops = [b[1] for b in grid.boxes]
    assert tops == sorted(tops) and len(set(tops)) == len(buckets)  # one row per bucket, rank 1 on top


def test_missing_file_gives_placeholder_and_names_path(ranked_files):
    ds, rk = ranked_files
    most, _ = extreme_indices(rk, 0, k=3)
    lost = rk.set_index("index").loc[most[1], "path"]
    import os

    os.remove(lost)
    with pytest.warns(MissingImageWarning, match=lost):
        grid = render_extremes(ds, rk, 0, k=3)
    assert len(grid.missing) == 1 and lost in grid.missing[0] and str(most[1]) in grid.missing[0]
    assert grid.indices[1] == most[1]
    placeholder = _center(grid.image, grid.boxes[1])
    assert placeholder not in (RED, BLUE)
    assert _center(grid.image, grid.boxes[0]) == RED  # the others still drawn


def test_save_grids_writes_pngs_atomically(ranked, tmp_path):
    ds, rk = ranked
    grids = save_grids(ds, rk, tmp_path / "g", k=2, per_bucket=2)
    assert [(g.kind, g.label) for g in grids] == [(k, c) for c in range(3) for k in ("extremes", "ranks")]
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == sorted(f"{k}_class{c}.png" for c in range(3) for k in ("extremes", "ranks"))
    for g in grids:
        with Image.open(g.path) as im:
            assert im.format == "PNG" and im.size == g.image.size
    assert missing_images(grids) == []


def test_index_missing_from_dataset_is_a_clear_error(ranked):
    ds, rk = ranked
    rk = rk.copy()
    rk.loc[rk["position"] == 1, "index"] += 1  # indices not in the dataset (all are 1000 + 7k)
    with pytest.raises(ValueError, match=r"rankings index \d+ is not in dataset 'synthetic'"):
        render_extremes(ds, rk, 0, k=2)


def test_label_mismatch_is_a_clear_error(ranked):
    ds, rk = ranked
    rk = rk.copy()
    first = rk.index[(rk["label"] == 0) & (rk["position"] == 1)][0]
    rk.loc[first, "label"] = 2
    rk.loc[first, "position"] = 0
    with pytest.raises(ValueError, match=r"label 2, dataset 'synthetic' gives 0"):
        render_extremes(ds, rk, 2, k=2)


def test_paths_dataset_resolves_relative_paths(ranked_files, tmp_path):
    _, rk = ranked_files
    rel = rk.assign(path=[p.split("/images/")[1] for p in rk["path"]])
    ds = paths_dataset(rel, root=tmp_path / "images")
    pos = int(ds.positions_of(torch.tensor([int(rel["index"][0])]))[0])
    expected = RED if rel["color"][0] == 0 else BLUE
    assert tuple(ds.load_image(pos)[:, 0, 0].tolist()) == expected
    with pytest.raises(ValueError, match="no 'path' column"):
        paths_dataset(rk.drop(columns="path"))


def test_large_images_are_shrunk_into_the_tile():
    table = pd.DataFrame({"index": [0, 1], "label": [0, 0]})
    images = torch.zeros(2, 3, 200, 100, dtype=torch.uint8)
    rk = pd.DataFrame(
        {"index": [0, 1], "label": [0, 0], "rank": [1, 2], "position": [1, 2], "p_y": [0.9, 0.2]}
    )
    grid = render_extremes(ImageDataset(table, images=images), rk, 0, k=1, tile=50)
    sizes = [(b[2] - b[0], b[3] - b[1]) for b in grid.boxes]
    assert sizes == [(25, 50), (25, 50)]  # aspect kept, fits 50 px
    assert np.asarray(grid.image).shape[2] == 3

"""Inspecting a ranking: image grids, elimination curves and a self-contained HTML report (``sebra inspect``)."""

from sebra.inspect.curves import (
    elimination_steps,
    elimination_table,
    figure_png,
    log_figure,
    plot_elimination_curves,
    save_figure,
)
from sebra.inspect.grids import (
    Grid,
    missing_images,
    paths_dataset,
    render_extremes,
    render_rank_strips,
    save_grids,
)
from sebra.inspect.report import rank_class_counts, write_report
from sebra.inspect.selection import RankBucket, extreme_indices, rank_bucket_indices
from sebra.inspect.tiles import MissingImageWarning

__all__ = [
    "Grid",
    "MissingImageWarning",
    "RankBucket",
    "elimination_steps",
    "elimination_table",
    "extreme_indices",
    "figure_png",
    "log_figure",
    "missing_images",
    "paths_dataset",
    "plot_elimination_curves",
    "rank_bucket_indices",
    "rank_class_counts",
    "render_extremes",
    "render_rank_strips",
    "save_figure",
    "save_grids",
    "write_report",
]

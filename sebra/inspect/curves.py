"""Elimination curves: after each ranking step, the share of each class (and group) still active.

They come from the ranking table alone: a sample with rank ``r`` was eliminated at step ``r``, so after step ``t``
it is active iff ``r > t`` (or ``r == -1``, never eliminated, in official mode). A shortcut shows as the aligned
groups emptying in the first steps while the conflicting ones stay.

Figures are plain :class:`matplotlib.figure.Figure` objects on an Agg canvas (no pyplot, no display, no global
figure registry), so they are safe in training processes and headless runs.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sebra.export import check_rankings
from sebra.utils.files import atomic_write

__all__ = [
    "elimination_steps",
    "elimination_table",
    "figure_png",
    "log_figure",
    "plot_elimination_curves",
    "save_figure",
]

_MAX_LEGEND = 20


def elimination_steps(rankings: pd.DataFrame, last_step: int | None = None) -> np.ndarray:
    """The steps a curve covers: ``0`` (before any elimination) to ``last_step``.

    Args:
        rankings: the ranking table.
        last_step: the number of ranking steps that ran, when known (a training loop knows it). By default the
            table's largest rank ``R`` is used as follows: with rank -1 present (official mode) every rank is a real
            step, so ``R``; otherwise ``R`` may be "never eliminated" (last step + 1) or a real last step, and only
            steps certain to have run are shown, so ``R - 1``.

    Returns:
        int64 steps, ascending.
    """
    check_rankings(rankings)
    ranks = rankings["rank"].to_numpy(dtype=np.int64)
    real = ranks[ranks >= 0]
    start = min(0, int(real.min()) - 1) if len(real) else 0
    if last_step is None:
        if not len(real):
            last_step = start
        else:
            last_step = int(real.max()) if (ranks < 0).any() else int(real.max()) - 1
    return np.arange(start, max(last_step, start) + 1, dtype=np.int64)


def elimination_table(
    rankings: pd.DataFrame, by: str = "label", *, last_step: int | None = None
) -> pd.DataFrame:
    """Per step and per value of ``by``, how many samples are still active and what fraction that is.

    Args:
        rankings: the ranking table.
        by: the column to split by: ``"label"``, ``"group"`` or a bias attribute column. Rows where it is
            negative (unknown) are left out.
        last_step: see :func:`elimination_steps`.

    Returns:
        Columns ``step``, ``<by>``, ``n_active``, ``n_total``, ``fraction`` (int64 but ``fraction``), sorted by
        ``<by>`` then ``step``; empty when no row has a known ``<by>``.
    """
    check_rankings(rankings)
    if by not in rankings.columns:
        raise ValueError(f"rankings have no column {by!r} to split the elimination curves by")
    steps = elimination_steps(rankings, last_step)
    keys = rankings[by].to_numpy(dtype=np.int64)
    ranks = rankings["rank"].to_numpy(dtype=np.int64)
    eff = np.where(ranks < 0, np.iinfo(np.int64).max, ranks)  # -1: never eliminated
    parts = []
    for key in np.unique(keys[keys >= 0]):
        r = np.sort(eff[keys == key])
        n_active = len(r) - np.searchsorted(r, steps, side="right")  # #(rank > t)
        parts.append(
            pd.DataFrame(
                {
                    "step": steps,
                    by: np.full(len(steps), key, dtype=np.int64),
                    "n_active": n_active.astype(np.int64),
                    "n_total": np.full(len(steps), len(r), dtype=np.int64),
                    "fraction": n_active / len(r),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="float64" if c == "fraction" else "int64")
                for c in ("step", by, "n_active", "n_total", "fraction")
            }
        )
    return pd.concat(parts, ignore_index=True)


def _has_groups(rankings: pd.DataFrame) -> bool:
    return "group" in rankings.columns and bool((rankings["group"] >= 0).any())


def _draw(
    ax, table: pd.DataFrame, by: str, names: Sequence[str] | Mapping[int, str] | None, title: str
) -> None:
    for key, part in table.groupby(by, sort=True):
        key = int(key)
        if isinstance(names, Mapping):
            name = names.get(key, str(key))
        elif names is not None and 0 <= key < len(names):
            name = str(names[key])
        else:
            name = str(key)
        ax.plot(
            part["step"],
            part["fraction"],
            drawstyle="steps-post",
            marker="o" if len(part) <= 40 else None,
            markersize=3,
            label=f"{name} (n={int(part['n_total'].iloc[0])})",
        )
    ax.set_title(title)
    ax.set_xlabel("ranking step")
    ax.set_ylabel("fraction still active")
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:_MAX_LEGEND], labels[:_MAX_LEGEND], fontsize=7, loc="best")


def plot_elimination_curves(
    rankings: pd.DataFrame,
    *,
    class_names: Sequence[str] | None = None,
    group_names: Mapping[int, str] | Sequence[str] | None = None,
    last_step: int | None = None,
) -> Figure:
    """One line per class (left panel) and, when a ``group`` column holds groups, per group (right panel).

    The lines plot :func:`elimination_table`'s ``fraction`` against ``step`` as steps (the fraction holds until
    the next ranking step); at most 20 entries are named in each legend.

    Returns:
        A Figure on an Agg canvas (save it with :func:`save_figure`, log it with :func:`log_figure`).
    """
    check_rankings(rankings)
    groups = _has_groups(rankings)
    fig = Figure(figsize=(11 if groups else 6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if groups else 1, squeeze=False)[0]
    _draw(
        axes[0], elimination_table(rankings, "label", last_step=last_step), "label", class_names, "per class"
    )
    if groups:
        _draw(
            axes[1],
            elimination_table(rankings, "group", last_step=last_step),
            "group",
            group_names,
            "per group",
        )
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for embedding in HTML or sending to a logger)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save ``fig`` as a PNG at ``path``, atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def _safe(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag).strip("_") or "figure"


def _global_rank() -> int:
    # Lightning sets ``rank`` on this shared function object; reading it avoids importing all of Lightning.
    try:
        from lightning_utilities.core.rank_zero import rank_zero_only
    except ImportError:
        return 0
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def log_figure(logger: Any, tag: str, fig: Figure, step: int) -> Path | None:
    """Log a figure to a Lightning logger (or a list of them), on global rank 0 only.

    TensorBoard-like loggers (``logger.experiment.add_figure``) get the figure itself; loggers with a
    ``log_image`` method (e.g. W&B) get it as an image; other loggers with a ``log_dir`` (CSVLogger) get a PNG at
    ``<log_dir>/figures/<tag>_step<step>.png``. A logger that offers none of these is skipped with a warning.

    Args:
        logger: a Lightning logger, a sequence of them, or ``None`` (nothing logged).
        tag: the figure's name, e.g. ``"ranking/elimination"`` (made file-safe for the PNG name).
        fig: the figure; it stays open and owned by the caller.
        step: the global step or ranking step it belongs to.

    Returns:
        The PNG path when one was written, else ``None``.
    """
    if logger is None:
        return None
    if isinstance(logger, (list, tuple)):
        paths = [log_figure(lg, tag, fig, step) for lg in logger]
        return next((p for p in paths if p is not None), None)
    if _global_rank() != 0:
        return None
    try:
        experiment = getattr(logger, "experiment", None)
    except ImportError:  # a TensorBoardLogger whose tensorboard package is absent
        experiment = None
    add_figure = getattr(experiment, "add_figure", None)
    if callable(add_figure):
        add_figure(tag, fig, global_step=step, close=False)
        return None
    if callable(getattr(logger, "log_image", None)):
        from PIL import Image

        logger.log_image(key=tag, images=[Image.open(io.BytesIO(figure_png(fig)))], step=step)
        return None
    log_dir = getattr(logger, "log_dir", None)
    if log_dir is not None:
        return save_figure(fig, Path(log_dir) / "figures" / f"{_safe(tag)}_step{int(step):06d}.png")
    warnings.warn(
        f"logger {type(logger).__name__} takes no figures (no add_figure, log_image or log_dir); "
        f"{tag!r} not logged",
        stacklevel=2,
    )
    return None

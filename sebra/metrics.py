"""Group metrics (torchmetrics, with functional cores) and ranking-quality metrics, as Sebra defines them.

Group accuracy keeps per-group counts as summed states, so worst-group accuracy, the unweighted group mean,
the I.D. accuracy and the gaps are ``compute()``-time arithmetic, identical on one or many processes.
Definitions follow ``docs/sebra-method.md`` §3 (Whac-A-Mole UrbanCars / Sebra CelebA) and ``docs/datasets.md``
(Echoes gaps). All values are fractions in ``0..1``; scaling by 100 for reporting is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor
from torchmetrics import Metric

from sebra.datasets.base import BiasSpec

__all__ = [
    "GroupAccuracy",
    "chunk_levels",
    "echoes_gaps",
    "group_accuracy_from_counts",
    "group_layout",
    "ranking_quality",
]

_NAN = float("nan")


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` as float, NaN where ``den == 0`` (an empty group is reported, not a crash)."""
    num, den = num.to(torch.get_default_dtype()), den.to(torch.get_default_dtype())
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, _NAN))


def echoes_gaps(cell: Tensor) -> dict[str, Tensor]:
    """Echoes' gaps from the 2x2 cell accuracies (each already averaged over classes).

    Args:
        cell: ``[2, 2]``, ``cell[b, c]`` with index 0 = aligned (common) and 1 = conflicting (uncommon) on
            attribute A (``b``) and attribute B (``c``); so ``cc = cell[0, 0]``, ``cu = cell[0, 1]``,
            ``uc = cell[1, 0]``, ``uu = cell[1, 1]``.

    Returns:
        ``echoes_gap_a = -(|cc - uc| + |cu - uu|) / 2`` and ``echoes_gap_b = -(|cc - cu| + |uc - uu|) / 2``.
    """
    cc, cu, uc, uu = cell[0, 0], cell[0, 1], cell[1, 0], cell[1, 1]
    return {
        "echoes_gap_a": -0.5 * ((cc - uc).abs() + (cu - uu).abs()),
        "echoes_gap_b": -0.5 * ((cc - cu).abs() + (uc - uu).abs()),
    }


def _check_layout(
    num_groups: int,
    group_label: Sequence[int] | None,
    group_aligned: Sequence[Sequence[bool]] | None,
    train_ratios: Sequence[float] | None,
) -> None:
    if (group_label is None) != (group_aligned is None):
        raise ValueError("GroupAccuracy: group_label and group_aligned must be given together")
    if group_label is None:
        if train_ratios is not None:
            raise ValueError("GroupAccuracy: train_ratios needs group_label and group_aligned")
        return
    if len(group_label) != num_groups or len(group_aligned) != num_groups:
        raise ValueError(
            f"GroupAccuracy: group_label and group_aligned need one entry per group ({num_groups}), got "
            f"{len(group_label)} and {len(group_aligned)}"
        )
    widths = {len(a) for a in group_aligned}
    if len(widths) != 1:
        raise ValueError(
            f"GroupAccuracy: every group_aligned entry needs the same number of attributes, got {widths}"
        )
    if train_ratios is not None:
        k = widths.pop()
        if k != 2 or len(train_ratios) != 2:
            raise ValueError(
                "GroupAccuracy: I.D. accuracy and gaps need exactly 2 bias attributes and 2 train_ratios, "
                f"got {k} attribute(s) and {len(train_ratios)} ratio(s)"
            )
        if not all(0.0 <= r <= 1.0 for r in train_ratios):
            raise ValueError(f"GroupAccuracy: train_ratios must lie in [0, 1], got {list(train_ratios)}")


def group_accuracy_from_counts(
    correct: Tensor,
    total: Tensor,
    *,
    group_label: Sequence[int] | None = None,
    group_aligned: Sequence[Sequence[bool]] | None = None,
    train_ratios: Sequence[float] | None = None,
    n_correct: Tensor | None = None,
    n_total: Tensor | None = None,
) -> dict[str, Tensor]:
    """Group metrics from per-group counts (the functional core of :class:`GroupAccuracy`).

    Args:
        correct: ``[G]`` correct predictions per group id.
        total: ``[G]`` samples per group id.
        group_label: class of each group id.
        group_aligned: per group id, whether it is aligned on each bias attribute (``[G][K]``).
        train_ratios: share of aligned training samples per attribute; with exactly 2 attributes, adds the
            I.D. accuracy and gaps.
        n_correct: correct predictions over all samples, those without a group included (default: sum of
            ``correct``).
        n_total: number of samples, those without a group included (default: sum of ``total``).

    Returns:
        ``acc`` (plain accuracy), ``wga`` (worst-group accuracy over groups with samples; NaN if none),
        ``group_mean`` (unweighted mean over groups with samples), ``group_acc`` (``[G]``, NaN for an empty
        group) and ``n_empty_groups`` (their ids: ``group_acc.isnan().nonzero()``). With ``train_ratios``:
        ``cell`` (``[2, 2]``, index 0 = aligned, 1 = conflicting, on attribute A then B; each the mean over
        classes that have samples in the cell of their pooled accuracy there), ``id_acc = sum_{b,c} r_b r_c
        cell[b, c]`` (``r = ratio`` when aligned, ``1 - ratio`` otherwise), ``gap_a = cell[1, 0] - id_acc``,
        ``gap_b = cell[0, 1] - id_acc``, ``gap_both = cell[1, 1] - id_acc``, ``gap_mean`` (mean of the three,
        the paper's "avg gap"), ``echoes_gap_a`` and ``echoes_gap_b`` (:func:`echoes_gaps`).
    """
    correct, total = torch.as_tensor(correct), torch.as_tensor(total)
    _check_layout(total.numel(), group_label, group_aligned, train_ratios)
    n_correct = correct.sum() if n_correct is None else torch.as_tensor(n_correct)
    n_total = total.sum() if n_total is None else torch.as_tensor(n_total)
    group_acc = _ratio(correct, total)
    present = total > 0
    nan = torch.full((), _NAN, dtype=group_acc.dtype, device=group_acc.device)
    out = {
        "acc": _ratio(n_correct, n_total),
        "wga": group_acc[present].min() if present.any() else nan,
        "group_mean": group_acc[present].mean() if present.any() else nan,
        "group_acc": group_acc,
        "n_empty_groups": (~present).sum(),
    }
    if train_ratios is None:
        return out

    device = total.device
    labels = torch.as_tensor(list(group_label), dtype=torch.long, device=device)
    conflict = ~torch.as_tensor([list(a) for a in group_aligned], dtype=torch.bool, device=device)
    cell_id = conflict[:, 0].long() * 2 + conflict[:, 1].long()  # 0 PP, 1 PA, 2 AP, 3 AA  (b then c)
    num_classes = int(labels.max()) + 1
    flat = cell_id * num_classes + labels
    # pooled counts per (cell, class); then the mean over classes with samples in the cell
    c_corr = torch.zeros(4 * num_classes, dtype=torch.long, device=device).index_add_(0, flat, correct.long())
    c_tot = torch.zeros(4 * num_classes, dtype=torch.long, device=device).index_add_(0, flat, total.long())
    per_class = _ratio(c_corr, c_tot).view(4, num_classes)
    cell = per_class.nanmean(dim=1).view(2, 2)
    r = torch.as_tensor([float(x) for x in train_ratios], dtype=cell.dtype, device=device)
    weight_a = torch.stack([r[0], 1 - r[0]])
    weight_b = torch.stack([r[1], 1 - r[1]])
    id_acc = (weight_a[:, None] * weight_b[None, :] * cell).sum()
    gaps = torch.stack([cell[1, 0], cell[0, 1], cell[1, 1]]) - id_acc
    out.update(
        cell=cell,
        id_acc=id_acc,
        gap_a=gaps[0],
        gap_b=gaps[1],
        gap_both=gaps[2],
        gap_mean=gaps.mean(),
        **echoes_gaps(cell),
    )
    return out


def group_layout(
    spec: BiasSpec, group_label_attrs: Mapping[int, tuple[int, Sequence[int]]]
) -> tuple[list[int], list[list[bool]]]:
    """Derive ``group_label`` and ``group_aligned`` from a :class:`BiasSpec` and each group's (label, attrs).

    Args:
        spec: the data set's bias specification.
        group_label_attrs: ``{group id: (label, attribute values)}`` for group ids ``0 .. G-1``. UrbanCars:
            ``{obj * 4 + bg * 2 + coobj: (obj, (bg, coobj))}``.

    Returns:
        ``(group_label, group_aligned)`` lists indexed by group id.
    """
    num_groups = len(group_label_attrs)
    if sorted(group_label_attrs) != list(range(num_groups)):
        raise ValueError(
            f"group_layout: group ids must be 0..{num_groups - 1}, got {sorted(group_label_attrs)}"
        )
    labels, aligned = [], []
    for g in range(num_groups):
        label, attrs = group_label_attrs[g]
        if len(attrs) != len(spec.attr_names):
            raise ValueError(
                f"group_layout: group {g} has {len(attrs)} attribute value(s), expected one per attribute "
                f"{spec.attr_names}"
            )
        labels.append(int(label))
        aligned.append([int(a) == int(spec.aligned_value[label][k]) for k, a in enumerate(attrs)])
    return labels, aligned


class GroupAccuracy(Metric):
    """Per-group accuracy, worst-group accuracy, unweighted group mean; with 2 attributes, I.D. acc and gaps.

    States are summed counts, slot = group id (never compressed to the ids seen in a batch). Samples with
    group ``-1`` count toward plain accuracy only.

    Args:
        num_groups: number of group ids ``G``.
        group_label: class of each group id (for the I.D. accuracy cells).
        group_aligned: per group id, whether it is aligned on each bias attribute.
        train_ratios: share of aligned training samples per attribute (exactly two) for ``id_acc`` and gaps.
        **kwargs: passed to :class:`torchmetrics.Metric` (``dist_sync_on_step``, ``sync_on_compute``, ...).

    Example:
        >>> m = GroupAccuracy(num_groups=3)
        >>> m.update(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), torch.tensor([0, 1, 1, -1]))
        >>> out = m.compute()
        >>> float(out["acc"]), float(out["wga"]), out["group_acc"].tolist()[:2]
        (0.75, 0.5, [1.0, 0.5])
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_groups: int,
        group_label: Sequence[int] | None = None,
        group_aligned: Sequence[Sequence[bool]] | None = None,
        train_ratios: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(num_groups) < 1:
            raise ValueError(f"GroupAccuracy: num_groups must be >= 1, got {num_groups}")
        _check_layout(int(num_groups), group_label, group_aligned, train_ratios)
        self.num_groups = int(num_groups)
        self.group_label = None if group_label is None else [int(x) for x in group_label]
        self.group_aligned = (
            None if group_aligned is None else [[bool(a) for a in row] for row in group_aligned]
        )
        self.train_ratios = None if train_ratios is None else [float(x) for x in train_ratios]
        self.add_state("correct", torch.zeros(self.num_groups, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(self.num_groups, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @classmethod
    def from_bias_spec(
        cls,
        spec: BiasSpec,
        group_label_attrs: Mapping[int, tuple[int, Sequence[int]]],
        **kwargs: Any,
    ) -> GroupAccuracy:
        """Build the metric from a :class:`BiasSpec` and each group's ``(label, attribute values)``.

        ``train_ratios`` come from the spec when it has two attributes and two ratios (I.D. accuracy and
        gaps).

        Example:
            >>> spec = BiasSpec(("bg", "coobj"), ((0, 0), (1, 1)), (0.95, 0.95))
            >>> layout = {o * 4 + b * 2 + c: (o, (b, c)) for o in (0, 1) for b in (0, 1) for c in (0, 1)}
            >>> GroupAccuracy.from_bias_spec(spec, layout).group_aligned[1]
            [True, False]
        """
        group_label, group_aligned = group_layout(spec, group_label_attrs)
        ratios = spec.train_ratios if len(spec.attr_names) == 2 and len(spec.train_ratios) == 2 else None
        kwargs.setdefault("train_ratios", ratios)
        return cls(len(group_label), group_label, group_aligned, **kwargs)

    def update(self, preds: Tensor, labels: Tensor, groups: Tensor) -> None:
        """Add a batch.

        Args:
            preds: ``[B]`` class ids or ``[B, C]`` logits/probabilities (argmax taken).
            labels: ``[B]`` true classes.
            groups: ``[B]`` group ids in ``0 .. G-1``, or ``-1`` for a sample without a group.
        """
        if preds.dim() == 2:
            preds = preds.argmax(dim=1)
        if not (preds.dim() == 1 and preds.shape == labels.shape == groups.shape):
            raise ValueError(
                "GroupAccuracy.update: expected preds [B] or [B, C], labels [B], groups [B], got "
                f"{tuple(preds.shape)}, {tuple(labels.shape)}, {tuple(groups.shape)}"
            )
        groups = groups.long()
        if groups.numel() and (groups.min() < -1 or groups.max() >= self.num_groups):
            raise ValueError(
                f"GroupAccuracy.update: group ids must lie in -1..{self.num_groups - 1}, got values in "
                f"{int(groups.min())}..{int(groups.max())}"
            )
        hit = preds.long() == labels.long()
        known = groups >= 0
        self.n_correct += hit.sum()
        self.n_total += hit.numel()
        self.correct += torch.bincount(groups[known & hit], minlength=self.num_groups)
        self.total += torch.bincount(groups[known], minlength=self.num_groups)

    def compute(self) -> dict[str, Tensor]:
        """Return the dict of :func:`group_accuracy_from_counts`."""
        return group_accuracy_from_counts(
            self.correct,
            self.total,
            group_label=self.group_label,
            group_aligned=self.group_aligned,
            train_ratios=self.train_ratios,
            n_correct=self.n_correct,
            n_total=self.n_total,
        )


# ---------------------------------------------------------------- ranking quality


def chunk_levels(order_levels: np.ndarray | Sequence[int]) -> np.ndarray:
    """Predicted level per sample of one class, from its true levels in predicted order (most spurious first).

    The ordered list is cut into consecutive chunks sized like the true level counts (lowest level first) and
    the chunk's level is the prediction, as the official evaluation does; this equals the sorted true levels.
    """
    order_levels = np.asarray(order_levels)
    values, counts = np.unique(order_levels, return_counts=True)
    return np.repeat(values, counts)


def ranking_quality(
    rankings: pd.DataFrame,
    levels: Tensor | np.ndarray | Sequence[int] | str,
    *,
    label_col: str = "label",
    position_col: str = "position",
) -> dict[str, Any]:
    """Kendall tau-b and weighted tau of a ranking vs ground-truth spuriosity levels, averaged over classes.

    Per class, samples are ordered by ``position`` (1 = most spurious), the predicted level comes from
    :func:`chunk_levels`, and ``scipy.stats.kendalltau`` (variant b) and ``scipy.stats.weightedtau``
    (hyperbolic weigher, as the official code) compare it with the true level. A class whose true levels are
    all equal has no defined tau: it gets NaN, is left out of the averages and is listed in
    ``skipped_classes``.

    Args:
        rankings: ranking table (``sebra.export`` contract), one row per sample.
        levels: true level per row of ``rankings`` (same order, 0 = most spurious, e.g. ``BiasSpec.levels``),
            or the name of a column holding it.
        label_col: class column.
        position_col: within-class position column.

    Returns:
        ``{"kendall_tau_b": float, "weighted_tau": float, "per_class": {class: {"kendall_tau_b",
        "weighted_tau", "n"}}, "skipped_classes": [class, ...]}``.

    Raises:
        ValueError: a column is missing, ``levels`` has the wrong length, or positions repeat within a class.
    """
    if isinstance(levels, str):
        if levels not in rankings.columns:
            raise ValueError(f"ranking_quality: rankings has no column {levels!r} for the true levels")
        levels = rankings[levels].to_numpy()
    for col in (label_col, position_col):
        if col not in rankings.columns:
            raise ValueError(
                f"ranking_quality: rankings lacks the column {col!r}; got columns {list(rankings.columns)}"
            )
    levels = levels.detach().cpu().numpy() if isinstance(levels, Tensor) else np.asarray(levels)
    if levels.shape != (len(rankings),):
        raise ValueError(
            f"ranking_quality: levels must have one entry per rankings row ({len(rankings)}), got shape "
            f"{levels.shape}"
        )
    frame = pd.DataFrame(
        {
            "label": rankings[label_col].to_numpy(),
            "position": rankings[position_col].to_numpy(),
            "level": levels,
        }
    )
    per_class: dict[Any, dict[str, float]] = {}
    skipped = []
    for label, sub in frame.groupby("label", sort=True):
        key = label.item() if hasattr(label, "item") else label
        if sub["position"].duplicated().any():
            dup = sub.loc[sub["position"].duplicated(), "position"].iloc[0]
            raise ValueError(
                f"ranking_quality: position {dup} appears twice in class {key}; expected unique positions"
            )
        true = sub.sort_values("position", kind="stable")["level"].to_numpy()
        if np.unique(true).size < 2:
            per_class[key] = {"kendall_tau_b": _NAN, "weighted_tau": _NAN, "n": int(true.size)}
            skipped.append(key)
            continue
        pred = chunk_levels(true)
        per_class[key] = {
            "kendall_tau_b": float(stats.kendalltau(pred, true, variant="b").statistic),
            "weighted_tau": float(stats.weightedtau(pred, true).statistic),
            "n": int(true.size),
        }
    scored = [v for k, v in per_class.items() if k not in skipped]
    return {
        "kendall_tau_b": float(np.mean([v["kendall_tau_b"] for v in scored])) if scored else _NAN,
        "weighted_tau": float(np.mean([v["weighted_tau"] for v in scored])) if scored else _NAN,
        "per_class": per_class,
        "skipped_classes": skipped,
    }

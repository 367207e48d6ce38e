"""The group layout of a data module (each group id's class and bias-attribute values), for the group metrics."""

from __future__ import annotations

from typing import Any

from sebra.metrics import GroupAccuracy

__all__ = ["group_metric"]


def group_metric(dm: Any) -> GroupAccuracy:
    """A :class:`GroupAccuracy` over the groups of ``dm``'s splits, with their layout read off the data.

    Without groups (or without a data module) one group holds every sample. When the data has a bias
    specification and every group id from 0 to the largest occurs in some split, the metric also knows which
    class and attribute values each group stands for (:meth:`GroupAccuracy.from_bias_spec`).
    """
    if dm is None or not getattr(dm, "splits", None) or dm.num_groups == 0:
        return GroupAccuracy(num_groups=1)
    layout: dict[int, tuple[int, tuple[int, ...]]] = {}
    bias = dm.bias
    cols = list(bias.attr_names) if bias is not None else []
    for t in (ds.table for ds in dm.splits.values()):
        t = t[t["group"] >= 0].drop_duplicates("group")
        for row in t.itertuples(index=False):
            d = row._asdict()
            layout.setdefault(int(d["group"]), (int(d["label"]), tuple(int(d[c]) for c in cols)))
    num_groups = max(layout) + 1
    if bias is None or len(layout) != num_groups:
        return GroupAccuracy(num_groups=num_groups)
    return GroupAccuracy.from_bias_spec(bias, layout)

"""A label-free check of whether Stage 1 ranked by one shortcut only (a "one-shortcut partition").

When one shortcut is learned far faster than another, Stage 1's first step eliminates exactly the samples aligned with
the fast one (most of each class, with saturated ``p_y``), and the order within that wave carries nothing of the slow
shortcut, because the network that eliminated them had not learned it yet (BENCHMARKS.md §7.5). Nothing in the ranking
table says so, and a user has no group labels to find out.

The probe is a Stage 1 run whose draws are balanced between the previous run's first wave and the rest of each class
(``SebraModule(repeat_draws="balanced")``): there the fast shortcut no longer predicts the label, so that run's
ranker learns whatever else separates the classes and orders the first wave by it. If the first run's order within
its own first wave agrees with the balanced run's order there, both rank by the same things (silent); if it does not
(Kendall tau below ``min_agreement`` in some class whose first wave held at least ``min_share`` of it), the first run
was blind to what the balanced run found, and the signal fires. Only the ranks and ``p_y`` of the runs are read.

Thresholds were set on the dev variants of the benchmark family only (BENCHMARKS.md §7.5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd
from scipy.stats import kendalltau

__all__ = ["MIN_AGREEMENT", "MIN_SHARE", "PartitionCheck", "partition_check", "summary_line"]

#: a first wave holding at least this share of its class is a candidate partition
MIN_SHARE = 0.8
#: below this Kendall tau between the two runs' orders within that wave, the first run was blind to the second's
MIN_AGREEMENT = 0.2


@dataclass(frozen=True)
class PartitionCheck:
    """What :func:`partition_check` found (written to ``ranking_diagnostics.json`` beside ``rankings.csv``).

    ``status``: ``partition`` (the signal fired), ``graded`` (checked, silent) or ``unchecked`` (no balanced run to
    compare with). ``first_wave_share`` and ``agreement`` are per class (``agreement`` NaN where not computed);
    ``worst_class`` is the class with the lowest agreement among the candidates.
    """

    status: str
    first_wave_share: list[float]
    agreement: list[float]
    worst_class: int | None
    min_share: float
    min_agreement: float
    message: str

    @property
    def fired(self) -> bool:
        """True when the one-shortcut partition signal fired."""
        return self.status == "partition"

    def to_dict(self) -> dict:
        """JSON-ready (NaN as ``None``)."""
        d = asdict(self)
        d["agreement"] = [None if math.isnan(v) else v for v in self.agreement]
        d["fired"] = self.fired
        return d


def _within_wave_agreement(first: pd.DataFrame, probe: pd.DataFrame, label: int) -> tuple[float, float]:
    """(share of class ``label`` in ``first``'s rank-1 wave, Kendall tau of the two orders within that wave)."""
    cls = first[first["label"] == label]
    wave = cls[cls["rank"] == 1]
    share = len(wave) / max(1, len(cls))
    if len(wave) < 10:
        return share, float("nan")
    pos = probe.set_index("index")["position"]
    tau = kendalltau(wave["position"].to_numpy(), pos.loc[wave["index"]].to_numpy()).statistic
    return share, float(tau) if tau == tau else float("nan")


def partition_check(
    first: pd.DataFrame,
    probe: pd.DataFrame | None,
    *,
    min_share: float = MIN_SHARE,
    min_agreement: float = MIN_AGREEMENT,
) -> PartitionCheck:
    """Compare a Stage 1 run's ranking table (``first``, uniform draws) with a balanced run's (``probe``).

    Both tables need ``index, label, rank, position`` (the ranking-table columns). ``probe=None``: nothing to
    compare with (status ``unchecked``; the shares are still reported).
    """
    labels = sorted(int(c) for c in first["label"].unique())
    shares, taus = [], []
    for c in labels:
        if probe is None:
            cls = first[first["label"] == c]
            shares.append(float((cls["rank"] == 1).mean()))
            taus.append(float("nan"))
        else:
            s, t = _within_wave_agreement(first, probe, c)
            shares.append(float(s))
            taus.append(t)
    candidates = [i for i, s in enumerate(shares) if s >= min_share and not math.isnan(taus[i])]
    worst = min(candidates, key=lambda i: taus[i]) if candidates else None
    if probe is None:
        status = "unchecked"
        message = (
            "ranking blindness not checked: it needs a balanced Stage 1 run "
            "(SebraModule(rank_repeats>=2, repeat_draws='balanced'))"
        )
    elif worst is not None and taus[worst] < min_agreement:
        status = "partition"
        message = (
            f"Stage 1's first run ranked class {labels[worst]} by one shortcut only: its first step removed "
            f"{100 * shares[worst]:.0f}% of the class, and a run with draws balanced against that step orders "
            f"those samples differently (Kendall tau {taus[worst]:.2f} < {min_agreement}); a second, slower "
            "shortcut is likely. The combined ranking includes the balanced runs; check it in `sebra inspect`, "
            "or raise rank_repeats"
        )
    else:
        status = "graded"
        message = "the first run's order agrees with the balanced run's: no one-shortcut partition found"
    return PartitionCheck(
        status=status,
        first_wave_share=[float(s) for s in shares],
        agreement=[float(t) for t in taus],
        worst_class=None if worst is None else labels[worst],
        min_share=float(min_share),
        min_agreement=float(min_agreement),
        message=message,
    )


def summary_line(check: PartitionCheck) -> str:
    """The one line the commands print (``warning: ...`` when the signal fired)."""
    return ("warning: " if check.fired else "") + check.message

"""A label-free check of whether Stage 1 ranked by one shortcut only (a "one-shortcut partition").

When one shortcut is learned far faster than another, Stage 1's first step eliminates exactly the samples aligned with
the fast one (most of each class), and the order within that wave carries nothing of the slow shortcut, because the
ranker that eliminated them had not learned it yet (BENCHMARKS.md §7.5). Nothing in the ranking table says so, and a
user has no group labels to find out.

The check: the first run's ranker is scored on the active set twice during its first ranking step, at the middle of
the step and at its end (the scoring that eliminates). Within the wave that leaves at the end, the two ``p_y`` orders
are compared (Kendall tau, per class). When the wave is graded by what the ranker has settled on (the shortcuts it
has learned, the core), the order is stable over the second half of the step. When a slower shortcut is still being
learned, or nothing but one shortcut has been learned and the rest of the order is noise, it is not. The signal
fires when a class's first wave holds at least ``min_share`` of the class and its order agrees less than
``min_agreement``. Only ``p_y`` values are read, never labels of groups or attributes.

**Validated only partly.** On the dev variants of the benchmark family (BENCHMARKS.md §7.5) the signal does not
separate the blind rankings from the graded ones: when a shortcut is learned several passes more slowly than the
other, the order is as stable as a graded one (the ranker has not started on the slow shortcut), so the check stays
silent. It fires when the order is still moving, as on farm-dot-border with a 4-pass first step. The silent message
says so. The threshold was set on dev variants only. :func:`probe_agreement` (a balanced run as the probe) was
tried and did not separate them either.

**The second check, with** ``rank_by="fused"`` (:func:`tail_agreement`): Stage 2 draws its positives from the least
spurious part of each class's order, so that is where a blind ranking hurts. When Stage 1 and a plain ERM network's
confidence (the fused ranking's two halves) disagree about *which* samples are least spurious, the elimination order
saw something else than what ERM learns first; on the dev variants this separates the blind rankings from the
graded ones (BENCHMARKS.md §7.9). It replaces the first check when a confidence run ranked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from scipy.stats import kendalltau

__all__ = [
    "MIN_AGREEMENT",
    "MIN_SHARE",
    "MIN_TAIL_OVERLAP",
    "SECOND_LOOK_UNSEEN",
    "TAIL",
    "PartitionCheck",
    "second_look_line",
    "second_look_unsettled",
    "summary_line",
    "tail_agreement",
    "wave_stability",
]

#: a first wave holding at least this share of its class is a candidate partition
MIN_SHARE = 0.8
#: below this Kendall tau between the mid-step and end-of-step orders within that wave, the signal fires
MIN_AGREEMENT = 0.3
#: the least spurious share of each class that :func:`tail_agreement` compares (Stage 2's top bin at 10 bins)
TAIL = 0.1
#: below this overlap of the two least spurious tails in some class, :func:`tail_agreement` fires (set on dev
#: variants only: BENCHMARKS.md §7.9)
MIN_TAIL_OVERLAP = 0.78


@dataclass(frozen=True)
class PartitionCheck:
    """What :func:`wave_stability` found (written to ``ranking_diagnostics.json`` beside ``rankings.csv``).

    ``status``: ``partition`` (the signal fired), ``graded`` (checked, silent) or ``unchecked`` (the first step had
    fewer than two batches, or its mid-step scores were lost to a resume). ``first_wave_share`` and ``agreement``
    are per class (``agreement`` NaN where not computed); ``worst_class`` is the candidate class with the lowest
    agreement. ``signal`` names the check: ``wave_stability`` (``agreement``: Kendall tau, mid-step vs end of step)
    or ``tail_agreement`` (``agreement``: the overlap of the two least spurious tails; ``min_share`` then holds the
    tail's share of the class and ``min_agreement`` the overlap threshold).
    """

    status: str
    first_wave_share: list[float]
    agreement: list[float]
    worst_class: int | None
    min_share: float
    min_agreement: float
    message: str
    signal: str = "wave_stability"  # which check made it: wave_stability or tail_agreement

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

    @classmethod
    def from_dict(cls, d: dict) -> PartitionCheck:
        """The inverse of :meth:`to_dict` (checkpoints keep the check as a dict)."""
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}  # older checkpoints lack ``signal``
        fields["agreement"] = [float("nan") if v is None else float(v) for v in fields["agreement"]]
        return cls(**fields)


def unchecked(labels: torch.Tensor, wave: torch.Tensor | None, why: str) -> PartitionCheck:
    """A :class:`PartitionCheck` that could not be made (``why`` says so)."""
    classes = sorted(int(c) for c in torch.unique(labels))
    shares = [float(wave[labels == c].float().mean()) if wave is not None else float("nan") for c in classes]
    return PartitionCheck(
        "unchecked", shares, [float("nan")] * len(classes), None, MIN_SHARE, MIN_AGREEMENT, why
    )


def wave_stability(
    labels: torch.Tensor,
    wave: torch.Tensor,
    p_mid: torch.Tensor,
    p_end: torch.Tensor,
    *,
    min_share: float = MIN_SHARE,
    min_agreement: float = MIN_AGREEMENT,
) -> PartitionCheck:
    """Compare the mid-step and end-of-step ``p_y`` orders within the first elimination wave, per class.

    Args:
        labels: ``[N]`` class per training position.
        wave: ``[N]`` bool, eliminated at the first step.
        p_mid, p_end: ``[N]`` the ranker's ``p_y`` at the middle and at the end of the first step (NaN where not
            scored).
    """
    labels, wave = torch.as_tensor(labels).cpu(), torch.as_tensor(wave, dtype=torch.bool).cpu()
    p_mid, p_end = torch.as_tensor(p_mid).double().cpu(), torch.as_tensor(p_end).double().cpu()
    classes = sorted(int(c) for c in torch.unique(labels))
    shares, taus = [], []
    for c in classes:
        in_class = labels == c
        sel = wave & in_class & ~torch.isnan(p_mid) & ~torch.isnan(p_end)
        shares.append(float((wave & in_class).sum()) / max(1, int(in_class.sum())))
        if int(sel.sum()) < 10:
            taus.append(float("nan"))
            continue
        tau = kendalltau(p_mid[sel].numpy(), p_end[sel].numpy()).statistic
        taus.append(float(tau) if tau == tau else float("nan"))
    candidates = [i for i, s in enumerate(shares) if s >= min_share and not math.isnan(taus[i])]
    worst = min(candidates, key=lambda i: taus[i]) if candidates else None
    if worst is not None and taus[worst] < min_agreement:
        status = "partition"
        message = (
            f"Stage 1 may see one shortcut only: its first step removed {100 * shares[worst]:.0f}% of class "
            f"{classes[worst]}, and the order within that wave was still changing over the second half of the step "
            f"(Kendall tau {taus[worst]:.2f} between mid-step and end-of-step p_y, below {min_agreement}): the "
            "ranker had not yet learned what else separates those samples. Try a longer first step "
            "(first_step_passes=4 or more) and compare the rankings in `sebra inspect`"
        )
    else:
        status = "graded"
        big = max(range(len(shares)), key=lambda i: shares[i]) if shares else None
        caution = (
            f"; its first step removed {100 * shares[big]:.0f}% of class {classes[big]}, so the order within that "
            "wave decides the ranking, and a shortcut learned much more slowly than the first can go unseen "
            "(this check does not catch that case: BENCHMARKS.md §7.5)"
            if big is not None and shares[big] >= min_share
            else ""
        )
        message = "no one-shortcut signal: the first wave's order was stable over its step" + caution
    return PartitionCheck(
        status=status,
        first_wave_share=shares,
        agreement=taus,
        worst_class=None if worst is None else classes[worst],
        min_share=float(min_share),
        min_agreement=float(min_agreement),
        message=message,
    )


def tail_agreement(
    elimination: pd.DataFrame,
    confidence: pd.DataFrame,
    *,
    tail: float = TAIL,
    min_overlap: float = MIN_TAIL_OVERLAP,
) -> PartitionCheck:
    """Per class, the share of ``confidence``'s least spurious ``tail`` (its last positions) that ``elimination``
    also puts in its least spurious ``tail``; the signal fires when some class's share is below ``min_overlap``.

    Args:
        elimination: Stage 1's elimination ranking table (``index, label, rank, position``).
        confidence: an ERM-confidence ranking table of the same samples (``index, label, position``).
        tail: the share of each class compared (``ceil(tail * class size)`` samples, at least one).
        min_overlap: the overlap below which the signal fires.

    ``first_wave_share`` holds each class's share eliminated at the first step (rank 1), ``agreement`` the overlaps.
    """
    if not 0 < tail < 1:
        raise ValueError(f"tail_agreement: tail must lie in (0, 1), got {tail!r}")
    a = elimination.set_index("index")
    b = confidence.set_index("index")
    if not a.index.sort_values().equals(b.index.sort_values()):
        raise ValueError("tail_agreement: the two ranking tables rank different samples (dataset index)")
    classes = sorted(int(c) for c in a["label"].unique())
    shares, overlaps = [], []
    for c in classes:
        ea, eb = a[a["label"] == c], b[b["label"] == c]
        k = max(1, math.ceil(tail * len(ea)))
        last_a = set(ea.nlargest(k, "position").index)
        last_b = set(eb.nlargest(k, "position").index)
        overlaps.append(len(last_a & last_b) / k)
        shares.append(float((ea["rank"] == 1).mean()))
    worst = min(range(len(classes)), key=lambda i: overlaps[i]) if classes else None
    pct = round(100 * tail)
    if worst is not None and overlaps[worst] < min_overlap:
        status = "partition"
        message = (
            f"Stage 1 may see one shortcut only: in class {classes[worst]} only {100 * overlaps[worst]:.0f}% of "
            f"the {pct}% least spurious samples by an ERM network's confidence are among Stage 1's {pct}% least "
            f"spurious (below {100 * min_overlap:.0f}%), so the two orders saw different shortcuts; the fused "
            "ranking keeps both, but compare it with rank_by='confidence' on your validation split and look at "
            "both tails in `sebra inspect`"
        )
    else:
        status = "graded"
        message = (
            f"no one-shortcut signal: Stage 1 and ERM confidence agree on each class's {pct}% least spurious "
            f"samples (overlap at least {100 * min_overlap:.0f}%)"
        )
    return PartitionCheck(
        status=status,
        first_wave_share=shares,
        agreement=overlaps,
        worst_class=None if worst is None else classes[worst],
        min_share=float(tail),
        min_agreement=float(min_overlap),
        message=message,
        signal="tail_agreement",
    )


def summary_line(check: PartitionCheck) -> str:
    """The one line the commands print (``warning: ...`` when the signal fired)."""
    return ("warning: " if check.fired else "") + check.message


#: A moved share above every run validated before the fourth held-out set (dev at most 5.8%, the third held-out set
#: at most 6.8%, BENCHMARKS.md §7.11-§7.12, rounded up): past it the line says what it meant on the fourth (§7.14).
SECOND_LOOK_UNSEEN = 0.10


def second_look_unsettled(
    shares: list[float], rise: float = 0.02, ratio: float = 2.0
) -> tuple[int, float, float] | None:
    """Where a second look's network had not settled: the first epoch ``k`` (0-based, after the first) at which the
    share of the first wave it got wrong rose above ``ratio`` times, and ``rise`` above, the lowest share of the
    epochs before it, as ``(k, lowest before, share at k)``; ``None`` where no epoch did.

    A network that has learned what it will learn gets a steady share wrong; one whose end-of-epoch snapshot jumps
    (on the dev and fifth held-out variants: 4.8% -> 11.7%, 3.0% -> 26.4%, 1.3% -> 7.6%; BENCHMARKS.md §7.15) errs
    on many aligned first-wave samples at once, and a look read by the mean of its epochs then moves them.
    Label-free: it reads only the shares the look recorded. The thresholds were set reading dev and fifth held-out
    runs' shares (a description that changes no ranking), so its hits on that set are not an out-of-sample test."""
    for k in range(1, len(shares)):
        low = min(shares[:k])
        if shares[k] - low > rise and shares[k] > ratio * low:
            return k, low, shares[k]
    return None


def second_look_line(look: dict) -> str:
    """The line the commands print after the ranking check when a second look ran (``SebraModule`` with
    ``second_look_epochs``; ``look`` is ``ranking_diagnostics.json``'s ``second_look``): how much of the first wave
    a network trained with that wave's shortcut balanced away got wrong, and so moved toward the tail.

    It describes, it does not judge: on the dev variants the share was 3.0-5.8% where the first ranking was blind
    to a slower shortcut and 0.1-1.3% where it graded both, but on held-out and demo runs graded rankings reached
    2.7-6.8% (BENCHMARKS.md §7.11, §7.12), so no threshold on it separates the two. Above
    :data:`SECOND_LOOK_UNSEEN` (beyond every run validated before the fourth held-out set) it adds what that meant
    there: on a held-out variant whose slow shortcut ERM learns in 210 steps it moved 18-28%, mostly aligned samples
    the second-look network had not yet learned (BENCHMARKS.md §7.14)."""
    share = float(look["moved_share"])
    line = (
        f"second look ({look['epochs']} epoch(s), the first wave's shortcut balanced away): "
        f"{look['moved']} of {look['first_wave']} first-wave samples ({100 * share:.1f}%) were not learned "
        "from the other shortcuts and moved toward the least spurious end (on the dev benchmarks: 3-6% where the "
        "first ranking missed a slower shortcut, about 1% where it saw both; not a verdict on its own)"
    )
    if share > SECOND_LOOK_UNSEEN:
        line += (
            f"; more than any validated run moved ({100 * SECOND_LOOK_UNSEEN:.0f}%): the second-look network may not "
            f"have learned the slower shortcut in {look['epochs']} epoch(s), so the moved samples are partly aligned "
            "ones; compare with second_look_epochs=0 or a longer second look on your validation split"
        )
    jump = second_look_unsettled(list(look.get("wrong_share_by_epoch") or []))
    if jump is not None:
        k, low, high = jump
        read = look.get("read_epochs")  # the calm reduce's epochs
        line += (
            f"; its network had not settled (the share of the first wave it got wrong rose from {100 * low:.1f}% "
            f"to {100 * high:.1f}% at epoch {k + 1}), "
            + (
                f"and the calm reduce read epochs {', '.join(map(str, read))}, leaving that one out"
                if read is not None and k + 1 not in read
                else "so part of what it moved may be that epoch's noise: compare second_look_reduce='median' or "
                "'calm' and second_look_epochs=0 on your validation split"
            )
        )
    if look.get("stop") == "cap":
        line += (
            f"; it stopped at its cap of {look['max_epochs']} epochs while the share it got wrong was still "
            "falling, so the slower shortcut may not be learned yet: try a larger second_look_max_epochs"
        )
    return line


def probe_agreement(first: pd.DataFrame, probe: pd.DataFrame) -> list[float]:
    """Per class: Kendall tau between ``first``'s order (``position``) and ``probe``'s order within ``first``'s
    rank-1 wave (NaN where the wave has fewer than 10 samples). Both are ranking tables of the same samples;
    ``probe`` is a run whose draws were balanced against ``first``'s first wave (``repeat_draws="balanced"``)."""
    pos = probe.set_index("index")["position"]
    out = []
    for c in sorted(int(v) for v in first["label"].unique()):
        wave = first[(first["label"] == c) & (first["rank"] == 1)]
        if len(wave) < 10:
            out.append(float("nan"))
            continue
        tau = kendalltau(wave["position"].to_numpy(), pos.loc[wave["index"]].to_numpy()).statistic
        out.append(float(tau) if tau == tau else float("nan"))
    return out

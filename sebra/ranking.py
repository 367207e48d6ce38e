"""Stage 1 of Sebra: self-guided bias ranking, in plain torch (no Lightning), so it is testable with hand-made tensors.

Training uses the confidence-weighted loss ``sg(p_y)^beta_inv * CE``: easy (spurious) samples keep their weight and
hard ones are down-weighted, so the shortcut is fitted first. After each ranking step every still-active sample with
true-class probability ``p_y > p_critical`` is eliminated; the step at which a sample leaves is its rank (1 = most
spurious). :class:`RankingController` holds that state; :class:`ActiveSetSampler` draws the next step's training
samples from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from typing_extensions import override

from sebra.utils.rng import GeneratorPickling

__all__ = [
    "ActiveSetSampler",
    "RankingController",
    "check_ranking_args",
    "combine_rankings",
    "confidence_weighted_loss",
    "first_wave",
    "first_wave_weights",
    "number_positions",
    "order_table",
    "second_look_continues",
    "second_look_moves",
    "second_look_order",
    "stratum_balanced_weights",
    "true_class_prob",
]

Unranked = Literal["last", "official"]


def check_ranking_args(beta_inv: float, p_critical: float, max_steps: int) -> None:
    """Raise ``ValueError`` naming the offending value."""
    if not beta_inv > 0:
        raise ValueError(f"beta_inv must be > 0 (the paper uses 0.7-0.8), got {beta_inv}")
    if not 0 < p_critical < 1:
        raise ValueError(f"p_critical must lie in (0, 1), got {p_critical}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")


def true_class_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)[i, labels[i]]`` for each row, shape ``[B]``."""
    return F.softmax(logits.float(), dim=1).gather(1, labels.long()[:, None]).squeeze(1)


def confidence_weighted_loss(logits: torch.Tensor, labels: torch.Tensor, beta_inv: float) -> torch.Tensor:
    """Mean over the batch of ``sg(p_y)^beta_inv * CE(logits, y)`` (not normalised by the weights, as the official code).

    Args:
        logits: ``[B, C]``.
        labels: ``[B]`` class ids.
        beta_inv: exponent of the detached weight; ``0 < beta_inv``.
    """
    ce = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    weight = torch.exp(-ce).detach() ** beta_inv  # p_y = exp(-CE), no gradient through the weight
    return (weight * ce).mean()


def number_positions(df: pd.DataFrame) -> pd.DataFrame:
    """Insert ``position`` (column 3): 1, 2, ... within each class, in the table's (already sorted) row order."""
    df.insert(3, "position", df.groupby("label").cumcount().to_numpy() + 1)
    return df


def order_table(df: pd.DataFrame, score_col: str = "p_y") -> pd.DataFrame:
    """Sort a ranking table by class, rank, ``score_col`` descending (NaN last) and dataset index, then number
    positions: the one order every ranking table shares, so ties break the same way everywhere."""
    score_key = -np.nan_to_num(df[score_col].to_numpy(dtype=np.float64), nan=-np.inf)
    order = np.lexsort((df["index"].to_numpy(), score_key, df["rank"].to_numpy(), df["label"].to_numpy()))
    return number_positions(df.iloc[order].reset_index(drop=True))


def combine_rankings(tables: list[pd.DataFrame], reduce: Literal["mean", "max"] = "mean") -> pd.DataFrame:
    """One ranking table from several rankings of the same training set (independently seeded Stage 1 runs).

    Within each class, samples are ordered by their mean position percentile (``position / class size``) over the
    tables, then by dataset index; ``rank`` becomes the rounded mean rank (at least 1) and ``p_y`` the mean ``p_y``.
    Averaging orders that agree on the shortcuts but differ by seed (which shortcut one run happened to learn first,
    where its elimination waves split) keeps what they share and damps what one run got wrong.

    ``reduce="max"`` orders by the *highest* percentile instead: a sample is as little spurious as the table that
    finds it least spurious. That is the union, not the consensus, for tables that each see another shortcut (a
    sample conflicting with either shortcut goes to the tail), at the price of keeping each table's errors too.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"combine_rankings: reduce must be 'mean' or 'max', got {reduce!r}")
    if not tables:
        raise ValueError("combine_rankings needs at least one ranking table")
    keys = [t.set_index("index").sort_index() for t in tables]
    first = keys[0]
    for i, t in enumerate(keys[1:], 1):
        if not t.index.equals(first.index) or not (t["label"] == first["label"]).all():
            raise ValueError(f"combine_rankings: table {i} ranks other samples (or labels) than table 0")
    pcts = [t["position"] / t.groupby("label")["position"].transform("max") for t in keys]
    pct = sum(pcts) / len(keys) if reduce == "mean" else pd.concat(pcts, axis=1).max(axis=1)
    rank = (sum(t["rank"].astype(float) for t in keys) / len(keys)).round().clip(lower=1).astype(np.int64)
    p_y = sum(t["p_y"].astype(float) for t in keys) / len(keys)
    df = pd.DataFrame(
        {
            "index": first.index.to_numpy(),
            "label": first["label"].to_numpy(),
            "rank": rank.to_numpy(),
            "p_y": p_y.to_numpy(),
            "_pct": pct.to_numpy(),
        }
    )
    df = df.sort_values(["label", "_pct", "index"], kind="mergesort").reset_index(drop=True)
    return number_positions(df).drop(columns="_pct")


def first_wave(table: pd.DataFrame) -> pd.Series:
    """Per row of ``table``: whether it is in its class's first elimination wave (the class's lowest ``rank``)."""
    return table["rank"] == table.groupby("label")["rank"].transform("min")


def stratum_balanced_weights(
    labels: torch.Tensor, strata: torch.Tensor, active: torch.Tensor | None = None
) -> torch.Tensor:
    """``[N]`` draw weight per sample (float64) that gives every non-empty stratum of a class the same total weight,
    each class keeping its share of the draws: ``n(class) / (S_class * n(class, stratum))`` over the ``active``
    samples (all by default; inactive ones get 0), ``S_class`` counting the class's non-empty strata.

    A stratum is a label-free part of a class, e.g. "in its first elimination wave" or not: balanced, the shortcut
    that made it no longer predicts the label in the draws, so a network trained on them learns the next one.

    Args:
        labels: ``[N]`` class id per sample.
        strata: ``[N]`` stratum id (>= 0) per sample.
        active: ``[N]`` bool, the samples that may be drawn.
    """
    labels, strata = labels.long(), strata.long()
    if labels.shape != strata.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and strata {tuple(strata.shape)} differ")
    active = torch.ones_like(labels, dtype=torch.bool) if active is None else active.bool()
    width = int(strata.max()) + 1 if len(strata) else 1
    classes = int(labels.max()) + 1 if len(labels) else 0
    key = labels * width + strata
    per_cell = torch.bincount(key[active], minlength=classes * width).double()
    per_class = torch.bincount(labels[active], minlength=classes).double()
    cells = (per_cell.view(classes, width) > 0).sum(1).double()
    w = per_class[labels] / (cells[labels].clamp(min=1) * per_cell[key].clamp(min=1))
    return w * active.double()


def first_wave_weights(labels: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """``[N]`` draw weights (float64) that balance each class's first wave (``first``, :func:`first_wave`) against
    the rest of it (:func:`stratum_balanced_weights` with the two strata); a class all on one side is drawn
    uniformly."""
    if labels.shape != first.shape:
        raise ValueError(
            f"first_wave_weights: labels {tuple(labels.shape)} and first {tuple(first.shape)} differ"
        )
    return stratum_balanced_weights(labels, first.long())


def second_look_moves(first: np.ndarray, p_y: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Which rows a second look moves: those in their class's first wave whose look ``p_y`` is below ``threshold``
    (the one rule :func:`second_look_order` applies and ``second_look.csv`` records)."""
    return np.asarray(first, dtype=bool) & (np.asarray(p_y, dtype=np.float64) < threshold)


def second_look_order(
    table: pd.DataFrame,
    first: np.ndarray,
    p_y: np.ndarray,
    threshold: float = 0.5,
    place: str = "percentile",
) -> tuple[pd.DataFrame, int]:
    """The ranking ``table`` with the first-wave samples a second-look network gets wrong moved toward the tail.

    The second look is a network trained on draws that balance each class's first wave against the rest
    (:func:`first_wave_weights`): it learns the next shortcut, so within the first wave it misclassifies exactly
    the samples that conflict with that slower shortcut, the ones a ranking made while only the fast shortcut was
    learned cannot see. A sample in the first wave whose second-look ``p_y`` is below ``threshold`` takes the
    higher of its two position percentiles within its class (``table``'s, and the order of descending second-look
    ``p_y``); every other sample keeps ``table``'s. Where the ranking already grades both shortcuts the second
    look errs on almost none of the first wave, so little moves (self-gated: no threshold on the data is chosen).

    ``place="tail"`` puts the moved samples *among the later waves* instead: in each class, where ``L`` is the larger
    of the later waves' size (the class outside its first wave) and the number moved, the moved samples are spread
    evenly over the last ``L`` positions' percentiles (the one the look is surest it gets wrong last) and interleave
    with the samples the table has there. What moves is the same; only where it goes differs. Not shipped: on the dev
    failure variants the look moves about as many samples as the later waves hold, so both placements put them in
    the class's last tenth, and the slow shortcut's samples one bin short were ones the look never moved
    (BENCHMARKS.md §7.16, trial 1).

    Args:
        table: a ranking table (``index, label, rank, position, p_y``), one class's positions ``1..size``.
        first: ``[len(table)]`` bool per row, in its class's first elimination wave.
        p_y: ``[len(table)]`` the second-look network's true-class probability per row.
        threshold: below it the second look gets a sample wrong (0.5: JTT's error set for two classes).
        place: where the moved samples go: ``percentile`` (the higher of their two percentiles, as shipped in
            BENCHMARKS.md §7.11) or ``tail`` (spread over the later waves' positions, above).

    Returns:
        ``(table, moved)``: the new table (``rank`` equal to the new ``position``: one sample per rank), and how many
        samples were moved.
    """
    first, p_y = np.asarray(first, dtype=bool), np.asarray(p_y, dtype=np.float64)
    if first.shape != (len(table),) or p_y.shape != (len(table),):
        raise ValueError(
            f"second_look_order: first {first.shape} and p_y {p_y.shape} must have one value per table row "
            f"({len(table)})"
        )
    if np.isnan(p_y).any():
        raise ValueError(f"second_look_order: p_y has {int(np.isnan(p_y).sum())} NaN value(s)")
    if place not in ("percentile", "tail"):
        raise ValueError(f"second_look_order: place must be 'percentile' or 'tail', got {place!r}")
    label = table["label"].to_numpy()
    size = table.groupby("label")["position"].transform("max").to_numpy(dtype=np.float64)
    pct_table = table["position"].to_numpy(dtype=np.float64) / size
    move = second_look_moves(first, p_y, threshold)
    if place == "percentile":
        pct_look = pd.Series(-p_y).groupby(label).rank(method="first").to_numpy() / size
        key = np.where(move, np.maximum(pct_table, pct_look), pct_table)
    else:
        by_class = pd.DataFrame({"label": label, "move": move, "later": ~first})
        n_moved = by_class.groupby("label")["move"].transform("sum").to_numpy(dtype=np.float64)
        n_later = by_class.groupby("label")["later"].transform("sum").to_numpy(dtype=np.float64)
        span = np.maximum(n_moved, n_later) / size
        # u in (0, 1]: a moved sample's place among its class's moved ones by descending look p_y (1: surest wrong)
        u = pd.Series(np.where(move, -p_y, np.nan)).groupby(label).rank(method="first").to_numpy()
        u = np.where(move, u / np.maximum(n_moved, 1.0), 0.0)
        key = np.where(move, 1.0 - span * (1.0 - u), pct_table)
    out = table.drop(columns="position").assign(_k=key)
    out = out.sort_values(["label", "_k", "index"], kind="mergesort").reset_index(drop=True)
    out = number_positions(out.drop(columns="_k"))
    return out.assign(rank=out["position"]), int(move.sum())


def second_look_continues(shares: list[float], relative: float = 0.1, absolute: float = 0.005) -> bool:
    """Whether a lengthened second look should train another epoch: the share of the first wave it got wrong
    fell, at the last epoch, by more than ``relative`` of the epoch before and by more than ``absolute``.

    A second-look network that has not yet learned the slower shortcut errs on aligned and conflicting first-wave
    samples alike, so its wrong share is large and falls while it learns; once the shortcut is learned the share
    settles near the share that conflicts with it. Stopping where it stops falling lets the look last as long as
    the slower shortcut needs instead of a fixed number of epochs (BENCHMARKS.md §7.15). Label-free: it reads
    only the class labels and the first ranking's wave.

    Args:
        shares: per epoch so far, the share of the first wave with second-look ``p_y`` below 0.5.
        relative, absolute: the least fall that counts (both must be exceeded).
    """
    if len(shares) < 2:
        return True
    before, now = shares[-2], shares[-1]
    return before - now > max(relative * before, absolute)


class RankingController(GeneratorPickling):
    """The elimination state of Stage 1: who is still active, when each sample left, and with what confidence.

    Args:
        labels: ``[N]`` class id per training position.
        num_classes: number of classes; every class must have at least one sample.
        p_critical: a sample is eliminated when its ``p_y > p_critical`` (strict).
        max_steps: ranking stops after this many steps even if samples remain.
        unranked: ``"last"`` (the paper: never-eliminated samples get rank ``last step + 1``) or ``"official"``
            (the official UrbanCars/BAR code: rank ``-1``).
        indices: dataset index per position (defaults to ``0..N-1``); carried into the ranking table.
        groups: optional group id per position, for per-step logging only (never used to rank).
        seed: seeds the generator that draws each step's training samples.
        strata: optional label-free stratum per position (e.g. "left in the first wave of the previous Stage 1
            run" vs not). Given, each step's draws give every non-empty stratum of a class the same share of that
            class's draws (classes keep their share of the active set), so a shortcut that a previous run's first
            wave followed no longer predicts the label in the draws and the ranker learns the next one. ``None``:
            uniform draws over the active set (the paper).
        retain: draw weight of an eliminated sample relative to an active one (``0``: eliminated samples leave
            training, the paper). Above 0 the ranker keeps seeing the samples it already fits, so after a wave
            that one fast shortcut emptied it learns the slower one from the rest *without* unlearning the fast
            one (trained on the rest alone it learns the fast shortcut inverted), and its final confidence can
            grade that wave (``SebraModule(within_step="final")``).
    """

    def __init__(
        self,
        labels: torch.Tensor,
        *,
        num_classes: int | None = None,
        p_critical: float = 0.75,
        max_steps: int = 50,
        unranked: Unranked = "last",
        indices: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        seed: int = 0,
        strata: torch.Tensor | None = None,
        retain: float = 0.0,
    ) -> None:
        check_ranking_args(1.0, p_critical, max_steps)
        if not 0.0 <= float(retain) <= 1.0:
            raise ValueError(f"retain must lie in [0, 1], got {retain!r}")
        if unranked not in ("last", "official"):
            raise ValueError(f"unranked must be 'last' or 'official', got {unranked!r}")
        labels = torch.as_tensor(labels, dtype=torch.long).cpu()
        n = len(labels)
        if n == 0:
            raise ValueError("cannot rank an empty training set")
        num_classes = int(num_classes) if num_classes is not None else int(labels.max()) + 1
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ValueError(f"label {int(bad[0])} is outside 0..{num_classes - 1}")
        counts = torch.bincount(labels, minlength=num_classes)
        if (counts == 0).any():
            empty = int(torch.nonzero(counts == 0)[0])
            raise ValueError(
                f"class {empty} has no training samples; every class in 0..{num_classes - 1} needs one"
            )
        self.labels = labels
        self.num_classes = num_classes
        self.p_critical = float(p_critical)
        self.max_steps = int(max_steps)
        self.unranked = unranked
        self.indices = (
            torch.arange(n) if indices is None else torch.as_tensor(indices, dtype=torch.long).cpu()
        )
        self.groups = None if groups is None else torch.as_tensor(groups, dtype=torch.long).cpu()
        self.strata = None if strata is None else torch.as_tensor(strata, dtype=torch.long).cpu()
        if self.strata is not None and (self.strata.shape != (n,) or bool((self.strata < 0).any())):
            raise ValueError(f"strata must hold one id >= 0 per training position ({n})")
        self.retain = float(retain)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.active = torch.ones(n, dtype=torch.bool)
        self.elim_step = torch.zeros(n, dtype=torch.long)  # 0 = not eliminated (yet)
        self.p_y = torch.full((n,), float("nan"))  # p_y when eliminated, else the latest score
        self.after_sum = torch.zeros(n, dtype=torch.float64)  # p_y summed from elimination on (observe())
        self.after_count = torch.zeros(n, dtype=torch.long)
        self.step = 0  # ranking steps completed
        self.history: list[dict] = []

    # --- progress ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def done(self) -> bool:
        """True when the step budget is spent or no sample is left active."""
        return self.step >= self.max_steps or not bool(self.active.any())

    @property
    def num_active(self) -> int:
        """How many samples are not yet eliminated."""
        return int(self.active.sum())

    def draw(self, num_samples: int | None = None) -> torch.Tensor:
        """Positions for the next training pass: ``num_samples`` (default N) draws with replacement from the active set."""
        if not self.active.any():
            raise RuntimeError("no active samples left to draw from")
        n = len(self) if num_samples is None else int(num_samples)
        return torch.multinomial(self.draw_weights(), n, replacement=True, generator=self.generator)

    def draw_weights(self) -> torch.Tensor:
        """Per-position draw weight: 1 on the active set, or (with ``strata``) ``n_active(class) / (S_class *
        n_active(class, stratum))``, where ``S_class`` counts the class's non-empty strata; ``retain`` when
        inactive (0 by default)."""
        active = self.active.float()
        kept = self.retain * (~self.active).float()
        if self.strata is None:
            return active + kept
        return stratum_balanced_weights(self.labels, self.strata, self.active).float() + kept

    def update(self, positions: torch.Tensor, p_y: torch.Tensor) -> torch.Tensor:
        """Close one ranking step with the scores of this step's scoring pass.

        Every scored active sample with ``p_y > p_critical`` is eliminated at this step. A position scored more than
        once (the official sampler-drawn scoring) counts with its highest ``p_y``. Inactive positions are ignored.

        Returns:
            The positions eliminated at this step.
        """
        if self.done:
            raise RuntimeError(f"ranking already finished after {self.step} steps")
        positions = torch.as_tensor(positions, dtype=torch.long).cpu()
        p_y = torch.as_tensor(p_y, dtype=torch.float32).cpu()
        best = torch.full((len(self),), float("-inf"))
        best.scatter_reduce_(0, positions, p_y, reduce="amax")
        scored = best > float("-inf")
        self.p_y[scored & self.active] = best[scored & self.active]
        leave = self.active & scored & (best > self.p_critical)
        self.step += 1
        self.elim_step[leave] = self.step
        self.active &= ~leave
        self.history.append(self._log_step(leave))
        return torch.nonzero(leave).squeeze(1)

    def _log_step(self, leave: torch.Tensor) -> dict:
        rec = {"step": self.step, "eliminated": int(leave.sum()), "active": int(self.active.sum())}
        for c in range(self.num_classes):
            rec[f"eliminated_class{c}"] = int((leave & (self.labels == c)).sum())
            rec[f"active_class{c}"] = int((self.active & (self.labels == c)).sum())
        if self.groups is not None:
            for g in torch.unique(self.groups[self.groups >= 0]).tolist():
                rec[f"eliminated_group{g}"] = int((leave & (self.groups == g)).sum())
                rec[f"active_group{g}"] = int((self.active & (self.groups == g)).sum())
        return rec

    def observe(self, p_y: torch.Tensor, window: int | None = None) -> None:
        """Record one scoring of *every* training position (``[N]``, NaN where not scored) after :meth:`update`:
        each eliminated sample adds its ``p_y`` to its running mean from the step it left on (that step's score
        included), so later networks keep grading a wave after it has left (:meth:`mean_after`). ``window``: a sample
        stops adding after that many scorings (``None``: until ranking ends), so the late networks, which have
        memorised their training set, do not dilute the grade."""
        p_y = torch.as_tensor(p_y, dtype=torch.float64).cpu()
        if p_y.shape != (len(self),):
            raise ValueError(
                f"observe needs one score per training position ({len(self)}), got {tuple(p_y.shape)}"
            )
        seen = (~self.active) & torch.isfinite(p_y)
        if window is not None:
            if int(window) < 1:
                raise ValueError(f"observe: window must be >= 1 scorings or None, got {window!r}")
            seen &= self.after_count < int(window)
        self.after_sum[seen] += p_y[seen]
        self.after_count[seen] += 1

    def mean_after(self) -> torch.Tensor:
        """Per position: mean ``p_y`` over the scorings since elimination (:meth:`observe`); for a sample never
        eliminated or never observed, its ``p_y`` (the latest score)."""
        mean = self.after_sum / self.after_count.clamp(min=1)
        return torch.where(self.after_count > 0, mean, self.p_y.double())

    # --- results -----------------------------------------------------------------------------------------------
    def ranks(self) -> torch.Tensor:
        """Rank per position: elimination step; never-eliminated get ``step + 1`` (``"last"``) or ``-1``."""
        r = self.elim_step.clone()
        r[r == 0] = self.step + 1 if self.unranked == "last" else -1
        return r

    def rankings(self, within: torch.Tensor | None = None) -> pd.DataFrame:
        """The ranking table (see :mod:`sebra.export`), sorted by class then position.

        Within a class, samples are ordered by rank (numerically, so ``-1`` comes first under ``"official"``, as the
        official Stage 2 reads it), then by a higher score first, then by dataset index (deterministic). The score
        is ``p_y`` at elimination, or ``within`` (one value per position, e.g. the final Stage 1 network's ``p_y``,
        kept as the column ``p_final``) when given.
        """
        df = pd.DataFrame(
            {
                "index": self.indices.numpy(),
                "label": self.labels.numpy(),
                "rank": self.ranks().numpy(),
                "p_y": self.p_y.numpy().astype(np.float64),
            }
        )
        if within is not None:
            within = torch.as_tensor(within, dtype=torch.float64).cpu()
            if within.shape != (len(self),):
                raise ValueError(
                    f"within must hold one score per training position ({len(self)}), "
                    f"got shape {tuple(within.shape)}"
                )
            df["p_final"] = within.numpy()
        if self.groups is not None:
            df["group"] = self.groups.numpy()
        return order_table(df, "p_final" if within is not None else "p_y")

    def history_frame(self) -> pd.DataFrame:
        """Per-step elimination counts as a table."""
        return pd.DataFrame(self.history)

    # --- persistence -------------------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict:
        return {
            "active": self.active.clone(),
            "elim_step": self.elim_step.clone(),
            "p_y": self.p_y.clone(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "history": list(self.history),
            "labels": self.labels.clone(),
            "indices": self.indices.clone(),
            "strata": None if self.strata is None else self.strata.clone(),
            "after_sum": self.after_sum.clone(),
            "after_count": self.after_count.clone(),
        }

    @override
    def load_state_dict(self, state: dict) -> None:
        if not torch.equal(state["labels"], self.labels) or not torch.equal(state["indices"], self.indices):
            raise ValueError(
                "ranking state belongs to another training set (labels or dataset indices differ)"
            )
        self.active = state["active"].clone()
        self.elim_step = state["elim_step"].clone()
        self.p_y = state["p_y"].clone()
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])
        strata = state.get("strata")
        self.strata = None if strata is None else strata.clone()
        if "after_sum" in state:  # older checkpoints: nothing observed
            self.after_sum = state["after_sum"].clone()
            self.after_count = state["after_count"].clone()


class ActiveSetSampler(DistributedSampler):
    """Draws one ranking step's training positions from the controller's active set when iterated.

    The draw happens when iteration starts (after the previous step's eliminations), with the controller's
    generator, so the same seed gives the same draws. Under data parallelism every process draws the same
    ``num_samples`` positions (their controllers are in the same state) and keeps its own strided share, padded by
    repeating the first draws so that every process gets the same number of batches.

    It subclasses :class:`~torch.utils.data.DistributedSampler` only so that Lightning recognises it as already
    sharded and does not wrap it in a second ``DistributedSamplerWrapper`` (which would shard and shuffle the draws
    again); none of the parent's machinery is used.
    """

    def __init__(
        self,
        controller: RankingController,
        num_samples: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= int(rank) < int(num_replicas):
            raise ValueError(f"rank must lie in 0..num_replicas - 1 = {int(num_replicas) - 1}, got {rank}")
        self.controller = controller
        self.num_samples = len(controller) if num_samples is None else int(num_samples)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self.seed, self.shuffle, self.drop_last = 0, controller.seed, False, False

    def __len__(self) -> int:
        return -(-self.num_samples // self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        draws = self.controller.draw(self.num_samples)
        if self.num_replicas > 1:
            pad = len(self) * self.num_replicas - len(draws)
            draws = torch.cat([draws, draws[:pad]])[self.rank :: self.num_replicas]
        yield from draws.tolist()

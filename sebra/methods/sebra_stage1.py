"""Sebra's Stage 1 as a component (:class:`SelfGuidedRanking`, composed by :class:`~sebra.methods.sebra.SebraModule`):
the ranking state, scoring the ranker at the end of each ranking step (sharded and gathered under data
parallelism), the eliminations, and the ranking table when ranking ends (combined over ``rank_repeats`` runs, and
with ``rank_by`` ``"confidence"`` or ``"fused"`` a plain cross-entropy ranker's confidence after
``confidence_steps`` passes), and the second look (``second_look_epochs``) that re-grades the first elimination wave
by what a network learns once that wave's shortcut is balanced away."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info
from timm.utils.model_ema import ModelEmaV3
from torch import nn

from sebra.datasets.sharding import ShardSampler, shard_positions
from sebra.diagnostics import PartitionCheck, tail_agreement, unchecked, wave_stability
from sebra.methods._args import check_args, check_choices
from sebra.ranking import (
    ActiveSetSampler,
    RankingController,
    check_ranking_args,
    combine_rankings,
    confidence_weighted_loss,
    first_wave,
    first_wave_weights,
    second_look_continues,
    second_look_moves,
    second_look_order,
)
from sebra.scoring import confidence_rankings, score_loader
from sebra.utils.rng import GeneratorPickling

__all__ = ["RankBy", "RankingHost", "SelfGuidedRanking"]

RankBy = Literal["elimination", "confidence", "fused"]
Scoring = Literal["full", "official"]
Unranked = Literal["last", "official"]
WithinStep = Literal["elimination", "final", "mean"]
RepeatDraws = Literal["uniform", "balanced"]
ConfidenceScore = Literal["last", "mean"]
LookReduce = Literal["mean", "median", "calm"]
LookLoss = Literal["ce", "weighted"]
LookPlace = Literal["percentile", "tail"]


class RankingHost(Protocol):
    """What :class:`SelfGuidedRanking` needs from the training loop that runs it (a LightningModule:
    :class:`~sebra.methods.sebra.SebraModule`): the data, the ranker network, the devices, and where to log."""

    ranker: nn.Module
    device: torch.device

    @property
    def datamodule(self) -> Any:
        """The sebra data module (``train_dataset``, ``train_eval_dataset``, ``loader``, ``batch_transform``)."""
        ...

    def replicas(self) -> tuple[int, int]:
        """``(world size, this process's rank)``."""
        ...

    def all_gather(self, data: torch.Tensor) -> torch.Tensor:
        """``data`` from every process, stacked (Lightning's ``all_gather``)."""
        ...

    def forward_context(self) -> AbstractContextManager:
        """The precision context forward passes run under."""
        ...

    def log_dict(self, dictionary: dict, **kwargs: Any) -> None:
        """Log metrics (Lightning's ``log_dict``)."""
        ...

    def reset_ranker(self, seed: int) -> None:
        """Re-initialise ``ranker`` in place from ``seed`` and clear its optimizer's state."""
        ...


class SelfGuidedRanking(GeneratorPickling):
    """Sebra's Stage 1: self-guided ranking by elimination, as a component with explicit settings and its own state.

    A ranking step is one epoch of the host's loop: the ranker trains on :meth:`sampler`'s draws from the active set
    with :meth:`loss`, then :meth:`close_step` scores it and eliminates; when ranking is over :meth:`close_step`
    returns the ranking table (``index, label, rank, position, p_y``), and the host starts its mitigation. Its state
    (elimination controller, runs so far, the confidence run) is :meth:`state_dict`, saved in the host's
    checkpoints, so ranking resumes mid-run exactly.

    The confidence run (``rank_by`` ``"confidence"``: instead of the elimination runs; ``"fused"``: after them) is
    ERM for ``confidence_steps`` epochs: a fresh ranker, plain cross-entropy, one pass per step over every training
    sample in a seeded order, nothing eliminated; then every sample is scored once (eval mode; with
    ``confidence_score="mean"`` after every epoch, and averaged) and ranked per class by ``p_y``, higher first
    (:func:`~sebra.scoring.confidence_rankings`). ``"fused"`` combines that order with the elimination runs' by
    mean position percentile (:func:`~sebra.ranking.combine_rankings`). The elimination controller is kept through
    the confidence run: its history and steps stay those of the elimination runs.

    The second look (``second_look_epochs > 0``, after the table above is made) trains a fresh ranker with plain
    cross-entropy for that many epochs on seeded draws (with replacement, as many as there are samples) that
    balance each class's first elimination wave against the rest of the class
    (:func:`~sebra.ranking.first_wave_weights`); every sample is scored after each epoch, and the first-wave
    samples whose mean ``p_y`` is below 0.5 move toward the tail (:func:`~sebra.ranking.second_look_order`).
    With ``second_look_max_epochs`` above ``second_look_epochs`` the look goes on past ``second_look_epochs``
    epochs while the share of the first wave it gets wrong keeps falling (:func:`second_look_continues`), and
    the order reads the mean ``p_y`` of its last ``second_look_epochs`` epochs (``second_look_reduce="median"``:
    their median). With ``second_look_reduce="calm"`` the look runs all ``second_look_max_epochs`` epochs and the order
    reads the mean ``p_y`` of the ``second_look_epochs`` of them that got the least of the first wave wrong
    (:meth:`second_look_calm_epochs`). With ``second_look_ema_epochs > 0`` the look scores through an exponential moving average of
    its network's weights (timm's ``ModelEmaV3``, a horizon of that many epochs) instead of its end-of-epoch
    network, whose snapshots erred on many first-wave samples at once on the dev variants (BENCHMARKS.md §7.15).
    With ``second_look_loss="weighted"`` the look trains with the ranking loss (``beta_inv`` as Stage 1) instead of
    plain cross-entropy. With ``second_look_place="tail"`` the moved samples are spread over the later waves'
    positions instead of taking the higher of their two percentiles.

    The settings are :class:`~sebra.methods.sebra.SebraModule`'s Stage 1 arguments, documented there.
    """

    def __init__(
        self,
        beta_inv: float = 0.7,
        p_critical: float = 0.75,
        max_steps: int = 50,
        scoring: Scoring = "full",
        unranked: Unranked = "last",
        draws_per_step: int | Literal["active"] | None = None,
        within_step: WithinStep = "elimination",
        mean_window: int | None = None,
        rank_repeats: int = 1,
        repeat_draws: RepeatDraws = "uniform",
        first_step_passes: float = 1.0,
        retain_eliminated: float = 0.0,
        rank_by: RankBy = "elimination",
        confidence_steps: int = 1,
        confidence_score: ConfidenceScore = "last",
        second_look_epochs: int = 0,
        second_look_max_epochs: int = 0,
        second_look_reduce: LookReduce = "mean",
        second_look_ema_epochs: float = 0.0,
        second_look_loss: LookLoss = "ce",
        second_look_place: LookPlace = "percentile",
        seed: int = 0,
    ) -> None:
        check_ranking_args(beta_inv, p_critical, max_steps)
        check_choices(
            SelfGuidedRanking,
            {
                "scoring": scoring,
                "unranked": unranked,
                "within_step": within_step,
                "repeat_draws": repeat_draws,
                "rank_by": rank_by,
                "confidence_score": confidence_score,
                "second_look_reduce": second_look_reduce,
                "second_look_loss": second_look_loss,
                "second_look_place": second_look_place,
            },
        )
        check_args(
            "SelfGuidedRanking",
            None,
            mean_window=mean_window,
            rank_repeats=rank_repeats,
            confidence_steps=confidence_steps,
            first_step_passes=first_step_passes,
            retain_eliminated=retain_eliminated,
            second_look_epochs=second_look_epochs,
            second_look_max_epochs=second_look_max_epochs,
            seed=seed,
        )
        if second_look_max_epochs and second_look_max_epochs < second_look_epochs:
            raise ValueError(
                f"second_look_max_epochs ({second_look_max_epochs}) must be 0 (a fixed look) or at least "
                f"second_look_epochs ({second_look_epochs}): the look runs that many epochs before it may stop"
            )
        if second_look_max_epochs and not second_look_epochs:
            raise ValueError(
                "second_look_max_epochs > 0 lengthens a second look: set second_look_epochs (its window, e.g. 3)"
            )
        if second_look_reduce == "calm" and not second_look_max_epochs > second_look_epochs > 0:
            raise ValueError(
                "second_look_reduce='calm' reads the second_look_epochs calmest of second_look_max_epochs epochs: "
                f"it needs second_look_max_epochs > second_look_epochs > 0, got {second_look_max_epochs} and "
                f"{second_look_epochs}"
            )
        if not (isinstance(second_look_ema_epochs, (int, float)) and second_look_ema_epochs >= 0):
            raise ValueError(
                f"second_look_ema_epochs must be a number >= 0 (0: score the look's end-of-epoch network), got "
                f"{second_look_ema_epochs!r}"
            )
        if second_look_ema_epochs and not second_look_epochs:
            raise ValueError(
                "second_look_ema_epochs > 0 scores the second look through a weight average: set "
                "second_look_epochs (e.g. 3)"
            )
        if second_look_epochs and rank_by == "confidence":
            raise ValueError(
                "second_look_epochs > 0 re-grades the first elimination wave: it needs rank_by='elimination' or "
                "'fused', got rank_by='confidence' (no elimination wave)"
            )
        if not (
            draws_per_step is None
            or draws_per_step == "active"
            or (
                isinstance(draws_per_step, int)
                and not isinstance(draws_per_step, bool)
                and draws_per_step >= 1
            )
        ):
            raise ValueError(
                f"draws_per_step must be None, 'active' or an integer >= 1, got {draws_per_step!r}"
            )
        if within_step == "mean" and scoring != "full":
            raise ValueError(
                f"within_step='mean' scores every sample once per step in eval mode: it needs scoring='full', "
                f"got scoring={scoring!r}"
            )
        self.beta_inv, self.p_critical, self.max_steps = beta_inv, p_critical, int(max_steps)
        self.scoring, self.unranked, self.draws_per_step = scoring, unranked, draws_per_step
        self.within_step, self.mean_window = within_step, mean_window
        self.rank_repeats, self.repeat_draws = int(rank_repeats), repeat_draws
        self.first_step_passes, self.retain_eliminated = float(first_step_passes), float(retain_eliminated)
        self.rank_by, self.confidence_steps = rank_by, int(confidence_steps)
        self.confidence_score, self.seed = confidence_score, int(seed)
        self.second_look_epochs = int(second_look_epochs)
        self.second_look_max_epochs = max(int(second_look_max_epochs), self.second_look_epochs)
        self.second_look_reduce = second_look_reduce
        self.second_look_ema_epochs = float(second_look_ema_epochs)
        self.second_look_loss = second_look_loss
        self.second_look_place = second_look_place
        self.num_classes: int | None = None  # the data's, known at start()
        # state
        self.controller: RankingController | None = None
        self._pending_controller_state: dict | None = None  # from a checkpoint loaded before start()
        self.repeat = 0  # Stage 1 run in progress (rank_repeats > 1)
        # the confidence run (rank_by "confidence": from the start; "fused": after the elimination runs)
        self.confidence_run = rank_by == "confidence"
        self.confidence_steps_done = 0
        self.confidence_seed = self.seed  # with the run's epoch, seeds its draw order
        self.confidence_sum: torch.Tensor | None = None  # confidence_score="mean": p_y summed over its epochs
        self._stage1_table: pd.DataFrame | None = None  # the elimination runs' table, kept for "fused"
        self._repeat_tables: list[pd.DataFrame] = []  # finished Stage 1 runs' rankings
        self._repeat_history: list[pd.DataFrame] = []
        self._mid_scores: torch.Tensor | None = None  # first step's mid-step scores (one-shortcut check)
        self.first_check: PartitionCheck | None = None  # the check, made when the first step closes
        # the second look (second_look_epochs > 0): after the table is made, before it is published
        self.second_look_run = False
        self.second_look_done = 0  # its epochs so far
        self.second_look_seed = self.seed
        self.second_look_recent: list[
            torch.Tensor
        ] = []  # p_y per position, its last second_look_epochs epochs (every epoch for the "calm" reduce)
        self.second_look_shares: list[float] = []  # per epoch: share of the first wave with p_y < 0.5
        self.second_look_stop: str | None = None  # why it ended: "fixed", "plateau", "cap" or "calm"
        self.second_look_moved: int | None = None  # first-wave samples it moved, once done
        # per sample what the finished look saw (second_look.csv: index, label, first_wave, look_p_y, moved);
        # None without a look finished in this process
        self.second_look_scores: pd.DataFrame | None = None
        self._look_base: tuple[pd.DataFrame, str] | None = None  # (the table it re-grades, its note)
        self._look_first: torch.Tensor | None = None  # [N] bool: in the class's first wave, per position
        self._look_ema: ModelEmaV3 | None = (
            None  # second_look_ema_epochs > 0: the look network's weight average
        )
        self._look_ema_pending: dict | None = (
            None  # its state from a checkpoint, applied when the look resumes
        )

    # --- what the host asks ----------------------------------------------------------------------------------------
    def epochs_needed(self) -> int:
        """Ranking steps of every elimination run plus the confidence run's epochs: the most epochs ranking takes."""
        elimination = 0 if self.rank_by == "confidence" else self.max_steps * self.rank_repeats
        confidence = 0 if self.rank_by == "elimination" else self.confidence_steps
        return elimination + confidence + self.second_look_max_epochs

    def start(
        self,
        labels: torch.Tensor,
        indices: torch.Tensor,
        groups: torch.Tensor | None,
        num_classes: int | None,
    ) -> None:
        """Build the first run's elimination state over the training samples (``labels``, dataset ``indices``,
        ``groups`` when known), or apply the one a checkpoint loaded earlier; nothing when it exists already."""
        if self.controller is None:
            self.num_classes = num_classes
            self.controller = self._new_controller(labels, indices, groups, self.seed)
        if self._pending_controller_state is not None:
            self.controller.load_state_dict(self._pending_controller_state)
            self._pending_controller_state = None

    def _new_controller(
        self,
        labels: torch.Tensor,
        indices: torch.Tensor,
        groups: torch.Tensor | None,
        seed: int,
        strata: torch.Tensor | None = None,
    ) -> RankingController:
        return RankingController(
            labels,
            num_classes=self.num_classes,
            p_critical=self.p_critical,
            max_steps=self.max_steps,
            unranked=self.unranked,
            indices=indices,
            groups=groups,
            seed=seed,
            strata=strata,
            retain=self.retain_eliminated,
        )

    def sampler(self, replicas: tuple[int, int]) -> Any:
        """This ranking step's training sampler: draws from the active set, or the confidence run's pass."""
        if self.second_look_run:
            return ShardSampler(self.second_look_positions(replicas), *replicas)
        if self.confidence_run:
            return ShardSampler(self.confidence_positions(replicas), *replicas)
        return ActiveSetSampler(self.controller, self.draws(), *replicas)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The ranker's loss: ``sg(p_y)^beta_inv * CE`` (plain cross-entropy in the confidence run, and in the
        second look unless ``second_look_loss="weighted"``)."""
        plain = self.confidence_run or (self.second_look_run and self.second_look_loss == "ce")
        return confidence_weighted_loss(logits, labels, 0.0 if plain else self.beta_inv)

    def draws(self) -> int | None:
        """Training draws for the next ranking step (``None``: the training-set size); the first step of each run
        draws ``first_step_passes`` times as many."""
        d = self.draws_per_step
        if d == "active":
            d = max(1, self.controller.num_active)
        passes = self.first_step_passes
        if self.controller.step == 0 and passes != 1.0:
            return max(1, round((d if d is not None else len(self.controller)) * passes))
        return d

    # --- scoring -----------------------------------------------------------------------------------------------
    def score(
        self, host: RankingHost, every: bool = False, full: bool = False, net: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``(positions, p_y)``: every active sample once in eval mode, or the official draw;
        ``every``: every training sample once in eval mode (the final network's scores for ``within_step``);
        ``full``: the active set in eval mode whatever ``scoring`` says (the mid-step check); ``net``: the network
        that scores (default: the ranker; the second look's weight average with ``second_look_ema_epochs``).

        Under data parallelism this process's strided share only (see :meth:`gathered_scores`).
        """
        dm, ctl = host.datamodule, self.controller
        replicas = host.replicas()
        world, rank = replicas
        if every or full or self.scoring == "full":
            pool = torch.ones_like(ctl.active) if every else ctl.active
            positions = torch.nonzero(pool).squeeze(1)[rank::world]
            loader = dm.loader(dm.train_eval_dataset, sampler=positions.tolist())
        else:
            sampler = ActiveSetSampler(ctl, self.draws(), world, rank)
            positions = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
            loader = dm.loader(dm.train_dataset, sampler=positions.tolist(), batch_size=dm.batch_size)
        scores = score_loader(
            net if net is not None else host.ranker,
            loader,
            device=host.device,
            transform=dm.batch_transform,
            forward_context=host.forward_context,
            train=self.scoring == "official" and not every and not full,
        )
        host.ranker.train()
        return positions, scores.p_y

    def gathered_scores(
        self, host: RankingHost, every: bool = False, full: bool = False, net: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`score` on every process with rank 0's BatchNorm buffers, gathered (``positions, p_y``)."""
        distributed = host.replicas()[0] > 1
        if distributed:
            _sync_buffers(net if net is not None else host.ranker)
        positions, p_y = self.score(host, every=every, full=full, net=net)
        if distributed:
            positions, p_y = _gather_scores(host, positions, p_y)
        return positions, p_y

    def _dense(self, positions: torch.Tensor, p_y: torch.Tensor) -> torch.Tensor:
        """Scores as one ``[N]`` tensor over training positions (NaN where not scored)."""
        out = torch.full((len(self.controller),), float("nan"))
        out[positions] = p_y.float()
        return out

    def after_batch(self, host: RankingHost, batch_idx: int, num_batches: int) -> None:
        """At the middle of the first run's first ranking step, score the active set once (eval mode, no
        augmentation) for the one-shortcut check (:mod:`sebra.diagnostics`). The global RNG is left as it was, so
        the ranking does not change. In the second look with ``second_look_ema_epochs``, update its weight
        average instead."""
        if self.second_look_run and self.second_look_ema_epochs:
            self._update_look_ema(host, num_batches)
            return
        if (
            self.confidence_run
            or self.second_look_run
            or self.repeat != 0
            or self.controller.step != 0
            or num_batches < 2
            or batch_idx + 1 != num_batches // 2
        ):
            return
        with torch.random.fork_rng(devices=[]):
            self._mid_scores = self._dense(*self.gathered_scores(host, full=True))

    def _first_step_check(self, p_end: torch.Tensor) -> PartitionCheck:
        ctl = self.controller
        wave = ctl.elim_step == 1
        if self._mid_scores is None:
            return unchecked(
                ctl.labels, wave, "ranking blindness not checked: no mid-step scores of the first step"
            )
        return wave_stability(ctl.labels, wave, self._mid_scores, p_end)

    # --- closing a step ----------------------------------------------------------------------------------------
    def close_step(self, host: RankingHost) -> tuple[pd.DataFrame, str] | None:
        """Score the ranker and eliminate (or close a confidence epoch). Returns ``(ranking table, what it was
        made of)`` when ranking is over, else ``None``."""
        if self.second_look_run:
            return self._close_second_look_step(host)
        if self.confidence_run:
            return self._close_confidence_step(host)
        ctl = self.controller
        if self.within_step == "mean":
            # every sample scored once (eval mode): the active ones decide the eliminations as with scoring="full",
            # the eliminated ones extend their mean p_y since they left
            end = self._dense(*self.gathered_scores(host, every=True))
            positions = torch.nonzero(ctl.active).squeeze(1)
            p_y = end[positions]
            ctl.update(positions, p_y)
            ctl.observe(end, self.mean_window)
        else:
            positions, p_y = self.gathered_scores(host)
            ctl.update(positions, p_y)
            end = self._dense(positions, p_y)
        if self.repeat == 0 and ctl.step == 1:
            self.first_check = self._first_step_check(end)
            self._mid_scores = None
        rec = ctl.history[-1]
        host.log_dict(
            {f"rank/{k}": float(v) for k, v in rec.items() if k != "step"}, on_step=False, on_epoch=True
        )
        rank_zero_info(f"ranking step {ctl.step}: eliminated {rec['eliminated']}, {rec['active']} active")
        return self._finish_run(host) if ctl.done else None

    def _finish_run(self, host: RankingHost) -> tuple[pd.DataFrame, str] | None:
        ctl = self.controller
        within = None
        if self.within_step == "final":
            within = self._dense(*self.gathered_scores(host, every=True))
        elif self.within_step == "mean":
            within = ctl.mean_after()
        df = ctl.rankings(within)
        repeats = self.rank_repeats
        if repeats > 1:
            self._repeat_tables.append(df)
            self._repeat_history.append(ctl.history_frame().assign(repeat=self.repeat))
            if self.repeat + 1 < repeats:
                rank_zero_info(
                    f"Stage 1 run {self.repeat + 1} of {repeats} done after {ctl.step} ranking steps; "
                    "the next starts from a fresh ranker"
                )
                self._next_repeat(host)
                return None
            df = combine_rankings(self._repeat_tables)
        if self.rank_by == "fused":
            rank_zero_info(
                f"Stage 1 elimination done after {ctl.step} ranking steps; the confidence run "
                f"({self.confidence_steps} epoch(s) of cross-entropy) starts from a fresh ranker"
            )
            self._stage1_table = df
            self._start_confidence_run(host, self.seed + 1000 * repeats)
            return None
        return self._finish(host, df, f"after {ctl.step} ranking steps")

    def _next_repeat(self, host: RankingHost) -> None:
        """Start the next Stage 1 run: the ranker re-initialised, a new elimination controller with its own draw
        seed; with ``repeat_draws="balanced"`` its draws are balanced between the previous run's first elimination
        wave and the rest of each class."""
        self.repeat += 1
        seed = self.seed + 1000 * self.repeat
        host.reset_ranker(seed)
        old = self.controller
        strata = None
        if self.repeat_draws == "balanced":
            # the previous run's first wave vs the rest: the shortcut that wave followed stops predicting the label
            strata = (old.elim_step != 1).long()
        self.controller = self._new_controller(old.labels, old.indices, old.groups, seed, strata)

    # --- the confidence run --------------------------------------------------------------------------------------
    def _start_confidence_run(self, host: RankingHost, seed: int) -> None:
        """Train a fresh ranker with plain cross-entropy from the next epoch on (``rank_by="fused"``)."""
        self.confidence_run = True
        self.confidence_steps_done = 0
        self.confidence_seed = seed
        self.confidence_sum = None
        host.reset_ranker(seed)

    def confidence_positions(self, replicas: tuple[int, int] = (1, 0)) -> list[int]:
        """This epoch's training positions in the confidence run: every sample once, in an order seeded by the
        run's seed and epoch (the same on every process, and however often the loader is rebuilt), this process's
        strided share (padded to equal length)."""
        order = torch.Generator().manual_seed(self.confidence_seed * 1009 + self.confidence_steps_done)
        perm = torch.randperm(len(self.controller), generator=order)
        share, _ = shard_positions(len(perm), *replicas)
        return perm[share].tolist()

    def _close_confidence_step(self, host: RankingHost) -> tuple[pd.DataFrame, str] | None:
        self.confidence_steps_done += 1
        total = self.confidence_steps
        mean = self.confidence_score == "mean"
        if mean or self.confidence_steps_done == total:
            p_y = self._dense(*self.gathered_scores(host, every=True))
            if mean:  # learning speed: scored after every epoch, ranked by the mean
                self.confidence_sum = p_y if self.confidence_sum is None else self.confidence_sum + p_y
        rank_zero_info(f"confidence run: epoch {self.confidence_steps_done} of {total} done")
        if self.confidence_steps_done < total:
            return None
        ctl = self.controller
        if mean:
            p_y = self.confidence_sum / total
        df = confidence_rankings(ctl.indices, ctl.labels, p_y)
        if self._stage1_table is not None:
            # the two halves' least spurious tails, where Stage 2 draws its positives (sebra.diagnostics)
            self.first_check = tail_agreement(self._stage1_table, df)
            fused = combine_rankings([self._stage1_table, df])
            df = fused.assign(rank=fused["position"])  # one sample per rank, as the confidence order has
        note = (
            f"after {total} confidence epoch(s)"
            + (" (mean p_y)" if mean else "")
            + (f" fused with {ctl.step} ranking steps" if self._stage1_table is not None else "")
        )
        return self._finish(host, df, note)

    # --- the second look -----------------------------------------------------------------------------------------
    def _finish(self, host: RankingHost, df: pd.DataFrame, note: str) -> tuple[pd.DataFrame, str] | None:
        """The finished table, or, with ``second_look_epochs``, the second look started on it."""
        if not self.second_look_epochs:
            return self._result(df, note)
        ctl = self.controller
        waves = self._stage1_table if self._stage1_table is not None else df
        first = pd.Series(first_wave(waves).to_numpy(), index=waves["index"].to_numpy())
        self._look_first = torch.from_numpy(np.array(first.loc[ctl.indices.numpy()].to_numpy(dtype=bool)))
        self._look_base = (df, note)
        self.second_look_run, self.confidence_run = True, False
        self.second_look_done, self.second_look_recent, self.second_look_shares = 0, [], []
        self.second_look_stop = None
        self._look_ema, self._look_ema_pending = None, None
        self.second_look_seed = self.seed + 1000 * (self.rank_repeats + 1)
        host.reset_ranker(self.second_look_seed)
        rank_zero_info(
            f"Stage 1 ranking made ({note}); the second look ({self._look_epochs_text()} of cross-entropy "
            f"on draws balancing each class's first wave of {int(self._look_first.sum())} samples against the "
            "rest) starts from a fresh ranker"
        )
        return None

    def second_look_positions(self, replicas: tuple[int, int] = (1, 0)) -> list[int]:
        """This epoch's training positions in the second look: as many seeded draws with replacement as there are
        samples, each class's first wave and the rest equally likely (the same on every process, however often the
        loader is rebuilt), this process's strided share."""
        ctl = self.controller
        weights = first_wave_weights(ctl.labels, self._look_first)
        order = torch.Generator().manual_seed(self.second_look_seed * 1009 + self.second_look_done)
        draws = torch.multinomial(weights, len(weights), replacement=True, generator=order)
        share, _ = shard_positions(len(draws), *replicas)
        return draws[share].tolist()

    def _look_epochs_text(self) -> str:
        if self.second_look_reduce == "calm":
            return f"{self.second_look_max_epochs} epochs"
        if self.second_look_max_epochs > self.second_look_epochs:
            return f"{self.second_look_epochs} to {self.second_look_max_epochs} epochs"
        return f"{self.second_look_epochs} epoch(s)"

    def _update_look_ema(self, host: RankingHost, num_batches: int) -> None:
        """After a second-look optimizer step, fold the ranker into the look's weight average (timm's
        ``ModelEmaV3``, parameters and BatchNorm buffers). It starts as a copy of the ranker after the look's first
        step; its decay, ``1 - 1 / (second_look_ema_epochs * batches per epoch)``, gives the average a horizon of
        that many epochs whatever the data's size."""
        if self._look_ema is None:
            pending, self._look_ema_pending = self._look_ema_pending, None
            decay = 1.0 - 1.0 / max(1.0, self.second_look_ema_epochs * max(1, num_batches))
            if pending is not None:
                decay = float(pending["decay"])
            self._look_ema = ModelEmaV3(host.ranker, decay=decay)
            if pending is not None:  # resumed mid-look: the average so far, then this step folded in
                self._look_ema.module.load_state_dict(pending["state"])
                self._look_ema.update(host.ranker)
            return
        self._look_ema.update(host.ranker)

    def _look_network(self) -> nn.Module | None:
        """The network the second look scores with: its weight average (``second_look_ema_epochs``) or the
        ranker (``None``)."""
        if not self.second_look_ema_epochs:
            return None
        if self._look_ema is None:
            raise RuntimeError(
                "second_look_ema_epochs > 0, but the look's weight average was never updated: the look epoch "
                "trained no batch"
            )
        return self._look_ema.module

    def _close_second_look_step(self, host: RankingHost) -> tuple[pd.DataFrame, str] | None:
        self.second_look_done += 1
        p_y = self._dense(*self.gathered_scores(host, every=True, net=self._look_network()))
        window = self.second_look_epochs
        recent = [*self.second_look_recent, p_y]  # the calm reduce chooses its epochs once all have run
        self.second_look_recent = recent if self.second_look_reduce == "calm" else recent[-window:]
        wave = self._look_first
        share = float((p_y[wave] < 0.5).float().mean()) if bool(wave.any()) else 0.0
        self.second_look_shares.append(share)
        done, cap = self.second_look_done, self.second_look_max_epochs
        rank_zero_info(
            f"second look: epoch {done} of {self._look_epochs_text()} done; it gets {100 * share:.1f}% of the "
            "first wave wrong"
        )
        if done < window:
            return None
        if self.second_look_reduce == "calm":
            if done < cap:
                return None
            self.second_look_stop = "calm"
        elif cap > window:
            if done < cap and second_look_continues(self.second_look_shares):
                return None
            still_falling = second_look_continues(self.second_look_shares)
            self.second_look_stop = "cap" if still_falling else "plateau"
        else:
            self.second_look_stop = "fixed"
        base, note = self._look_base
        ctl = self.controller
        score = pd.Series(self._look_score().numpy(), index=ctl.indices.numpy())
        first = pd.Series(self._look_first.numpy(), index=ctl.indices.numpy())
        keys = base["index"].to_numpy()
        first_rows, score_rows = first.loc[keys].to_numpy(), score.loc[keys].to_numpy()
        df, moved = second_look_order(base, first_rows, score_rows, place=self.second_look_place)
        self.second_look_scores = pd.DataFrame(
            {
                "index": keys,
                "label": base["label"].to_numpy(),
                "first_wave": first_rows.astype(bool),
                "look_p_y": score_rows,
                "moved": second_look_moves(first_rows, score_rows),
            }
        )
        self.second_look_run, self.second_look_moved = False, moved
        self._look_ema = None  # the look is over: its average is not needed any more
        wave = int(self._look_first.sum())
        after = f"; the second look ({done} epochs) moved {moved} of the {wave} first-wave samples toward the tail"
        return self._result(df, note, after)

    def _look_score(self) -> torch.Tensor:
        """Per position, the ``p_y`` the second look orders and moves by: over its last epochs, their mean
        (``second_look_reduce="mean"``) or their median (``"median"``: one epoch whose snapshot errs on many samples
        at once, as the look network's did on the dev variants of BENCHMARKS.md §7.15, moves nothing by itself)."""
        recent = self.second_look_recent
        if self.second_look_reduce == "calm":
            recent = [recent[k] for k in self.second_look_calm_epochs()]
        if self.second_look_reduce == "median":
            return torch.stack(recent).double().quantile(0.5, dim=0).to(recent[0].dtype)
        total = recent[0]
        for later in recent[1:]:  # summed in epoch order, as the fixed look always did
            total = total + later
        return total / len(recent)

    def second_look_calm_epochs(self) -> list[int]:
        """The ``second_look_reduce="calm"`` look's epochs it reads (0-based, in epoch order): the
        ``second_look_epochs`` with the lowest share of the first wave wrong, the earlier one on a tie.

        On the dev variants the look network's end-of-epoch snapshot jumps: on farm-objcolor-faintpatch seed 1 its
        wrong share went 14.8 / 6.0 / 36.6 / 8.6 / 3.7 / 15.2% over six epochs, and an epoch that errs on a third of
        the wave errs mostly on aligned samples (its B-only AUC 0.72 against 0.82-0.91 for the calm epochs). Reading
        only the calm epochs leaves such a snapshot out wherever it falls (BENCHMARKS.md §7.17). Label-free: the
        shares read only the class labels and the first ranking's wave."""
        shares = self.second_look_shares
        order = sorted(range(len(shares)), key=lambda k: (shares[k], k))
        return sorted(order[: self.second_look_epochs])

    def _result(self, df: pd.DataFrame, note: str, after: str = "") -> tuple[pd.DataFrame, str]:
        """The finished table and a sentence on what made it (``after`` ends it); the check made (or said to be
        missing)."""
        if self.first_check is None:  # e.g. a first step of one batch, or no elimination run
            reason = (
                "ranking blindness not checked: rank_by='confidence' has no elimination wave"
                if self.rank_by == "confidence"
                else "ranking blindness not checked"
            )
            self.first_check = unchecked(self.controller.labels, None, reason)
        if self.rank_by != "confidence":
            if self.rank_repeats > 1:
                note += f" (run {self.repeat + 1} of {self.rank_repeats}; rankings combined)"
            note += f", {self.controller.num_active} never eliminated"
        return df, note + after

    def second_look_summary(self) -> dict | None:
        """What the second look did, once done (``ranking_diagnostics.json``'s ``second_look``): its epochs, the
        first wave's size, how many of it moved and their share; ``None`` without a finished second look."""
        if self.second_look_moved is None or self._look_first is None:
            return None
        wave = int(self._look_first.sum())
        return {
            "epochs": self.second_look_done or self.second_look_epochs,
            "window": self.second_look_epochs,
            "reduce": self.second_look_reduce,
            "ema_epochs": self.second_look_ema_epochs,
            "loss": self.second_look_loss,
            "place": self.second_look_place,
            "max_epochs": self.second_look_max_epochs,
            "stop": self.second_look_stop,
            "wrong_share_by_epoch": list(self.second_look_shares),
            **(
                {"read_epochs": [k + 1 for k in self.second_look_calm_epochs()]}
                if self.second_look_reduce == "calm"
                else {}
            ),
            "first_wave": wave,
            "moved": self.second_look_moved,
            "moved_share": self.second_look_moved / wave if wave else 0.0,
        }

    # --- what was done -----------------------------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        """Per ranking step of every elimination run so far: the eliminations (``ranking_history.csv``'s rows,
        with ``repeat``, the run)."""
        runs = [*self._repeat_history]
        if self.controller is not None and len(runs) < self.repeat + 1:
            runs.append(self.controller.history_frame().assign(repeat=self.repeat))
        return pd.concat(runs, ignore_index=True) if runs else pd.DataFrame()

    @property
    def repeat_tables(self) -> list[pd.DataFrame]:
        """The finished elimination runs' tables (``rank_repeats > 1``), before they are combined."""
        return list(self._repeat_tables)

    @property
    def elimination_table(self) -> pd.DataFrame | None:
        """With ``rank_by="fused"``: the elimination runs' (combined) table, before it is fused."""
        return self._stage1_table

    @property
    def steps(self) -> int:
        """Ranking steps the elimination run in progress (or the last one) has taken."""
        return self.controller.step if self.controller is not None else 0

    # --- state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed ranking needs, as plain Python values (the controller's own ``state_dict``; the
        second look's weight average, when one is running, as its tensors)."""
        return {
            "repeat": self.repeat,
            "repeat_tables": [t.to_dict("list") for t in self._repeat_tables],
            "repeat_history": [t.to_dict("list") for t in self._repeat_history],
            "confidence_run": self.confidence_run,
            "confidence_steps_done": self.confidence_steps_done,
            "confidence_seed": self.confidence_seed,
            "confidence_sum": self.confidence_sum.tolist() if self.confidence_sum is not None else None,
            "stage1_table": self._stage1_table.to_dict("list") if self._stage1_table is not None else None,
            "first_check": self.first_check.to_dict() if self.first_check is not None else None,
            "second_look": {
                "run": self.second_look_run,
                "done": self.second_look_done,
                "seed": self.second_look_seed,
                "recent": [t.tolist() for t in self.second_look_recent],
                "shares": list(self.second_look_shares),
                "stop": self.second_look_stop,
                "moved": self.second_look_moved,
                "base": self._look_base[0].to_dict("list") if self._look_base is not None else None,
                "note": self._look_base[1] if self._look_base is not None else None,
                "first": self._look_first.tolist() if self._look_first is not None else None,
                "ema": self._look_ema_state(),
            },
            "controller": self.controller.state_dict() if self.controller is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`. Before :meth:`start` (``load_from_checkpoint``) the controller's state is
        kept and applied there."""
        self.repeat = state.get("repeat", 0)
        self._repeat_tables = [pd.DataFrame(t) for t in state.get("repeat_tables", [])]
        self._repeat_history = [pd.DataFrame(t) for t in state.get("repeat_history", [])]
        self.confidence_run = state.get("confidence_run", False)
        self.confidence_steps_done = state.get("confidence_steps_done", 0)
        self.confidence_seed = state.get("confidence_seed", self.confidence_seed)
        total = state.get("confidence_sum")
        self.confidence_sum = torch.tensor(total, dtype=torch.float32) if total is not None else None
        table = state.get("stage1_table")
        self._stage1_table = pd.DataFrame(table) if table is not None else None
        check = state.get("first_check")
        self.first_check = PartitionCheck.from_dict(check) if check is not None else None
        look = state.get("second_look") or {}  # absent in checkpoints from before the second look
        self.second_look_run = look.get("run", False)
        self.second_look_done = look.get("done", 0)
        self.second_look_seed = look.get("seed", self.second_look_seed)
        recent = look.get("recent")
        if (
            recent is None and look.get("sum") and self.second_look_done
        ):  # a checkpoint from the fixed-only look
            mean = torch.tensor(look["sum"], dtype=torch.float32) / self.second_look_done
            recent = [mean.tolist()] * self.second_look_done  # the same window mean, so the same order
        self.second_look_recent = [torch.tensor(r, dtype=torch.float32) for r in (recent or [])]
        self.second_look_shares = list(look.get("shares", []))
        self.second_look_stop = look.get("stop")
        self.second_look_moved = look.get("moved")
        base = look.get("base")
        self._look_base = (pd.DataFrame(base), look.get("note", "")) if base is not None else None
        first = look.get("first")
        self._look_first = torch.tensor(first, dtype=torch.bool) if first is not None else None
        self._look_ema, self._look_ema_pending = None, look.get("ema")
        if state.get("controller") is not None:
            if self.controller is not None:
                self.controller.load_state_dict(state["controller"])
            else:
                self._pending_controller_state = state["controller"]

    def _look_ema_state(self) -> dict | None:
        """The look's weight average for a checkpoint (its decay and tensors), or what a resumed fit has not yet
        applied; ``None`` when there is none."""
        if self._look_ema is None:
            return self._look_ema_pending
        state = {k: v.detach().cpu().clone() for k, v in self._look_ema.module.state_dict().items()}
        return {"decay": self._look_ema.decay, "state": state}


def _sync_buffers(net: nn.Module) -> None:
    """Give every process rank 0's buffers of ``net`` (BatchNorm running statistics) before scoring.

    DDP keeps the parameters equal, but each process's last training batches moved its own running statistics
    (DDP only broadcasts buffers before the next forward through its wrapper, which scoring bypasses).
    """
    if dist.is_available() and dist.is_initialized():
        for buf in net.buffers():
            dist.broadcast(buf.data, src=0)


def _gather_scores(
    host: RankingHost, positions: torch.Tensor, p_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All processes' ``(positions, p_y)``, in the same order on every process.

    The shares may differ in length by one: they are padded with position -1 for ``all_gather`` (which needs
    equal shapes), and the padding is dropped again.
    """
    size = int(host.all_gather(torch.tensor([len(positions)], device=host.device)).max())
    pad = size - len(positions)
    positions = torch.cat([positions.long(), torch.full((pad,), -1, dtype=torch.long)])
    p_y = torch.cat([p_y.float(), torch.full((pad,), float("nan"))])
    g_pos = host.all_gather(positions.to(host.device)).reshape(-1).cpu()
    g_p = host.all_gather(p_y.to(host.device)).reshape(-1).cpu()
    keep = g_pos >= 0
    return g_pos[keep], g_p[keep]

"""SebraModule: Stage 1 (self-guided ranking) and Stage 2 (rank-aware contrastive mitigation) in one ``fit``.

One Lightning epoch is one ranking step while ranking, then one mitigation epoch. The data module's training loader
is rebuilt every epoch through its ``train_loader`` hook: in Stage 1 it draws from the active set
(:class:`~sebra.ranking.ActiveSetSampler`), in Stage 2 it serves the epoch's mined pairs. The two stages share only
the ranking table (``self.rankings``, also written to ``rankings.csv`` in the logger's folder when there is one).
The module composes two components with explicit settings and their own state: the ranker
(:class:`~sebra.methods.sebra_stage1.SelfGuidedRanking`, ``self.ranking``) and the mitigation
(:class:`~sebra.methods.sebra_stage2.PairMitigation`, ``self.mitigation``), which reads only the ranking table and
the training split; this module owns the two networks, their optimizers and the loop.

Data parallelism (``Trainer(devices=k, strategy="ddp"/"ddp_spawn")``): every process holds the same ranking state
and draws the same N positions per step, training on its strided share; scoring (``full``) is sharded the same way,
the ``(position, p_y)`` pairs are all-gathered and every process applies the same eliminations, so the rankings are
identical on all processes and written once (global rank 0). Stage 2 pair tables are mined with the same seeded
generator on every process, then strided; the contrastive loss (its denominator and the BatchNorm statistics of
the anchor + positive forward) sees each process's own batch, as in the official code, so keep the per-process
``batch_size`` of a single-device run rather than dividing it.

Resuming: ``last.ckpt`` is written after every epoch, ranking steps included
(:class:`~sebra.methods.checkpoints.LastCheckpoint`); ``trainer.fit(..., ckpt_path=...)`` continues the ranking (active set,
elimination steps, draw generator) or Stage 2 (epoch, pair generator) where it stopped, with the data module's
augmentation generator.
"""

from __future__ import annotations

import json
import numbers
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.utils.data import DataLoader
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.datasets.sharding import ShardSampler
from sebra.diagnostics import PartitionCheck
from sebra.export import check_ranking_values, check_rankings, load_rankings, save_rankings
from sebra.methods._args import Optimizer
from sebra.methods._network_args import NetworkArgs
from sebra.methods._optim import make_optimizer
from sebra.methods.phase import Phase, as_int
from sebra.methods.sebra_stage1 import (
    ConfidenceScore,
    LookLoss,
    LookPlace,
    LookReduce,
    RankBy,
    RepeatDraws,
    Scoring,
    SelfGuidedRanking,
    Unranked,
    WithinStep,
)
from sebra.methods.sebra_stage2 import (
    CEOn,
    FeaturePass,
    PairDataset,
    PairMitigation,
    Pairs,
    check_given_rankings,
    stage2_bins,
)
from sebra.methods.two_phase import TwoPhaseMethod
from sebra.ranking import RankingController
from sebra.utils.files import atomic_write

__all__ = ["PairDataset", "SebraModule", "stage2_bins"]

RANK, MITIGATE = "rank", "mitigate"


class SebraModule(NetworkArgs, TwoPhaseMethod):
    """Sebra (ICLR 2025) as a LightningModule: ``trainer.fit(SebraModule(...), datamodule=dm)``.

    Use ``Trainer(max_epochs=-1)`` (or at least ``max_steps + epochs``): the module ends the fit itself.
    Stage 2's epochs are counted in ``final_epoch``.

    Args:
        beta_inv: exponent of the Stage 1 weight ``sg(p_y)^beta_inv``.
        p_critical: Stage 1 eliminates samples with ``p_y > p_critical``.
        max_steps: maximum number of ranking steps.
        rank_optimizer, rank_lr, rank_momentum, rank_weight_decay: Stage 1 optimizer (kept across steps).
        scoring: ``full`` (every active sample once per step, eval mode, no augmentation: deterministic) or
            ``official`` (a second sampler-drawn pass in train mode with the training transform).
        unranked: never-eliminated samples go last (``last``, the paper) or get rank -1 (``official``).
        draws_per_step: training draws per ranking step: the training-set size by default (the official code), an
            integer, or ``"active"`` (as many draws as samples still active: one pass's worth over the active set,
            so late steps, with few samples left, do not memorise them with N draws).
        within_step: what orders the samples eliminated at the same step (the ranking table's ``position``):
            ``elimination`` (their ``p_y`` when eliminated, higher first) or ``final`` (the ``p_y`` of the *final*
            Stage 1 network, scored once on every training sample when ranking ends, higher first). When one
            shortcut's aligned samples leave in one wave, the network keeps training on what is left, where the
            other shortcut is still aligned, and learns it; its confidence then grades the early wave by that other
            shortcut (BENCHMARKS.md §7); but after many steps that network has memorised its training set and its
            order is mostly noise. ``mean``: every training sample is scored at the end of every step, and a
            sample's key is its mean ``p_y`` from the step it left on: the networks just after a wave left grade it
            by what they learn next, while late, saturated scores add little (needs ``scoring="full"``; best with
            ``retain_eliminated > 0``, without which later networks learn the wave's shortcut inverted). The paper
            leaves the within-step order open (the official code keeps batch order).
        mean_window: with ``within_step="mean"``, how many scorings a sample's mean takes, its elimination step's
            included (``None``: every step until ranking ends; ``2``: the step it left at and the next one).
        rank_repeats: run Stage 1 this many times, each with a fresh ranker, optimizer and draws (seeds ``seed``,
            ``seed + 1000``, ...), and combine the rankings: within a class, samples are ordered by their mean
            position percentile (:func:`~sebra.ranking.combine_rankings`). One run's order depends on which
            shortcut it happened to learn first and on where its elimination waves split; the mean damps that
            (BENCHMARKS.md §7). Costs ``rank_repeats`` times the Stage 1 time; pair on ``rank_bins`` with it.
        repeat_draws: how runs after the first draw their training samples: ``uniform`` over the active set (every
            run alike) or ``balanced``: each class's draws split equally between the samples the *previous* run
            eliminated in its first step and the others. When one shortcut is learned far faster than the other,
            the first wave is exactly that shortcut's aligned samples and the first run is blind to the slower one
            (BENCHMARKS.md §7.5); balanced draws make the faster shortcut useless to the next ranker, which learns
            the slower one and ranks by it, and the combined ranking carries both.
        first_step_passes: training draws of each run's *first* ranking step, in multiples of a step's draws
            (the paper: 1). The first elimination wave is ordered by what the ranker has learned when it is scored;
            after one pass that is only the fastest shortcut when another is learned several times more slowly
            (BENCHMARKS.md §7.5). A longer first step lets the slower shortcut be learned before the wave leaves,
            so its within-step ``p_y`` order grades both; later steps keep their size.
        retain_eliminated: draw weight of an eliminated sample relative to an active one in the later steps of a
            run (the paper: 0, eliminated samples leave training). Trained on what is left after a one-shortcut
            wave, the ranker learns the slower shortcut *and* the fast one inverted (it predicts the wrong class on
            everything left), so with ``within_step="final"`` its confidence inverts the wave's order; keeping the
            eliminated samples in the draws at a small weight keeps the fast shortcut's sign, so the final network
            grades the wave by the slower shortcut (BENCHMARKS.md §7.6).
        rank_by: what the ranking table is made of. ``elimination`` (the paper): the elimination runs above.
            ``confidence``: no elimination; a ranker trained with plain cross-entropy (ERM, the rank optimizer) for
            ``confidence_steps`` epochs scores every training sample once, and each class is ordered by ``p_y``,
            higher first (one sample per rank). ``fused``: the elimination runs, then that confidence run from a
            fresh ranker, the two orders combined per class by mean position percentile. When one shortcut is learned
            many times faster than the other, the first elimination wave is exactly its aligned samples and carries
            nothing of the slower one, while an early ERM network's confidence already grades by both on some data
            (BENCHMARKS.md §7.8). Both need ``rank_bins`` (one sample per rank). The ``rank_*`` optimizer settings
            and the data module's batch size apply to the confidence run too.
        confidence_steps: epochs of the confidence run (``rank_by`` ``confidence`` or ``fused``), a setting chosen
            without labels (1: ERM confidence after one epoch, the grid's ``erm_conf`` ranker).
        confidence_score: what orders the confidence run. ``last``: ``p_y`` after its last epoch. ``mean``: the mean
            ``p_y`` over scorings after each of its epochs (every sample scored once per epoch, eval mode), a
            per-sample learning-speed statistic: a sample of a shortcut learned in the first epoch scores high at
            every point, one the ranker needs more epochs for only at the later ones, so the order is graded by how
            early each sample is learned instead of by one network's snapshot (the grid's ``erm_curve`` ranker,
            BENCHMARKS.md §7.10). It costs one scoring pass per epoch.
        second_look_epochs: after the ranking table is made, a second look at its first elimination wave (``0``:
            none, the paper). A fresh ranker trains with plain cross-entropy for this many epochs on draws that
            balance each class's first wave (the samples its lowest rank holds: what the ranker learned first)
            against the rest of the class, so the shortcut that made the wave no longer predicts the label and the
            network learns the *next* one; every sample is scored after each epoch. The first-wave samples whose
            mean ``p_y`` stays below 0.5 (those that conflict with the slower shortcut, which a wave made while only
            the fast one was learned cannot see) move toward the tail, each to the higher of its two position
            percentiles (:func:`~sebra.ranking.second_look_order`); the rest keep their place. Where the ranking
            already grades both shortcuts it moves almost nothing (BENCHMARKS.md §7.11). Needs ``rank_bins``
            (one sample per rank) and an elimination run (not ``rank_by="confidence"``).
        second_look_max_epochs: ``0`` (the default): the second look lasts ``second_look_epochs`` epochs. Above
            ``second_look_epochs``: it goes on, up to this many epochs, while the share of the first wave it gets
            wrong still falls by more than a tenth (and half a point) from one epoch to the next
            (:func:`~sebra.ranking.second_look_continues`), and the order reads the mean ``p_y`` of its last
            ``second_look_epochs`` epochs: a slower shortcut is then given the epochs it needs (BENCHMARKS.md
            §7.15). ``ranking_diagnostics.json`` records the epochs run, why it stopped and the share per epoch.
        second_look_reduce: how the second look's last epochs are read per sample: ``mean`` (the default, shipped
            in §7.11) or ``median`` (a sample moves only if most of those epochs get it wrong). On the dev variants
            the look network's end-of-epoch snapshot sometimes erred on many first-wave samples at once (its wrong
            share went 5% → 12% → 5%); the median keeps one such epoch from moving them (BENCHMARKS.md §7.15).
            ``calm``: the look runs all ``second_look_max_epochs`` epochs (no plateau stop) and reads the mean
            ``p_y`` of the ``second_look_epochs`` of them with the lowest share of the first wave wrong, so a
            snapshot that errs on a third of the wave is left out wherever it falls (BENCHMARKS.md §7.17).
        second_look_ema_epochs: ``0`` (the default, shipped): the look scores its network as it is at the end of
            each epoch. Above 0: it scores an exponential moving average of that network's weights (timm's
            ``ModelEmaV3``, decay ``1 - 1 / (second_look_ema_epochs * batches per epoch)``), so one epoch's last
            steps cannot swing the scores of many first-wave samples at once. Not shipped: on the dev variants the
            average lagged (its first epoch got up to half the wave wrong) and it moved more aligned samples, 6
            points lower on both failure variants (BENCHMARKS.md §7.15, trial 3).
        second_look_loss: what the second look trains with: ``ce`` (the default here: plain cross-entropy, the
            look as §7.11 shipped it) or ``weighted`` (Stage 1's ``sg(p_y)^beta_inv * CE``; shipped in
            ``builtin.yaml``). Proposed so that, with the fast shortcut balanced away, the look leans on its
            easiest remaining cue, the slower shortcut, more than on the core. Chosen on dev (+4.9 worst-group, 3
            variants x 5 seeds), though the audit did not show more slow-shortcut samples reaching Stage 2's
            positives (BENCHMARKS.md §7.15, trial 4).
        second_look_place: where the samples the look moves go: ``percentile`` (the default: each to the higher of
            its two position percentiles, :func:`~sebra.ranking.second_look_order`) or ``tail`` (spread evenly over
            the positions of its class's later waves, interleaved with them). Not shipped: on the dev variants it
            changed nothing that mattered, because what limits the look is which samples it moves, not where it
            puts them (BENCHMARKS.md §7.16, trial 1).
        rank_only: run Stage 1 only (the fit ends with the ranking table; ``epochs`` is ignored, nothing to test).
        epochs: Stage 2 epochs (>= 1).
        gap: positives come from rank ``r + gap`` or higher.
        temperature, ce_weight: contrastive temperature and the weight ``lambda`` of the cross-entropy term.
        contrastive_weight: weight of the contrastive term (the paper: 1). ``0`` switches it off: Stage 2 is then
            cross-entropy on the rank-chosen images alone, and skips the feature passes the contrastive term needs
            (anchors and negatives are not encoded when ``ce_on="positive"``).
        ce_on: which images get the CE term: ``positive`` (official), ``anchor`` or ``both``.
        pairs: ``paper`` (per-class highest rank, negative differs from the anchor when possible) or ``official``.
        feature_pass: ``official`` (positives and negatives re-encoded in eval mode without gradients) or ``shared``
            (positive features taken, detached, from the training forward: one pass fewer).
        optimizer, weight_decay: Stage 2 optimizer (its ``lr``, ``momentum`` and ``lr_schedule``: ``**kwargs``).
        bn_eval: keep Stage 2 BatchNorm in eval mode (reproduces the official CelebA code).
        rank_bins: Stage 2 pairs on ``rank_bins`` equal-size per-class bins of the ranked order (``position``)
            instead of the raw elimination steps, as the official ImageNet trainer re-bins its ranks (10 bins).
            Useful when Stage 1 ends in few steps: the within-step order (higher ``p_y`` first) then still grades
            the samples. ``None``: the raw ranks (UrbanCars/CelebA/BAR code).
        batch_size: Stage 2 anchors per batch (default: the data module's batch size).
        rankings: a ranking table (DataFrame or a ``rankings.csv`` path): skips Stage 1.
        **kwargs: the timm network of both stages (Stage 2 starts from a fresh copy), Stage 2's ``lr``,
            ``momentum`` and ``lr_schedule`` (none or cosine), ``seed`` (the networks, the Stage 1 draws and the
            Stage 2 pair tables) and the GPU options ``channels_last``, ``compile``
            (:class:`~sebra.methods._network_args.NetworkArgs`; mixed precision itself is
            ``Trainer(precision="bf16-mixed")`` or ``"16-mixed"``, and the Stage 1 scoring passes run under it);
            ``selection`` (during Stage 2: ``val_wga``, ``val_acc`` or ``last``) and ``num_classes``
            (:class:`~sebra.methods.base.BaseMethod`).
    """

    FIRST, FINAL = RANK, MITIGATE
    EPOCHS_NEEDED = "max_steps + epochs"

    def __init__(
        self,
        beta_inv: float = 0.7,
        p_critical: float = 0.75,
        max_steps: int = 50,
        rank_optimizer: Optimizer = "sgd",
        rank_lr: float = 1e-3,
        rank_momentum: float = 0.9,
        rank_weight_decay: float = 0.0,
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
        rank_only: bool = False,
        epochs: int = 50,
        gap: int = 5,
        temperature: float = 0.05,
        ce_weight: float = 0.5,
        contrastive_weight: float = 1.0,
        ce_on: CEOn = "positive",
        pairs: Pairs = "paper",
        feature_pass: FeaturePass = "official",
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        bn_eval: bool = False,
        rank_bins: int | None = None,
        batch_size: int | None = None,
        rankings: str | Path | pd.DataFrame | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # saves every argument but rankings: NetworkArgs collects the whole chain
        seed = self.hparams.seed
        if not rank_only and isinstance(epochs, numbers.Integral) and epochs == 0:
            raise ValueError(
                "SebraModule: epochs must be >= 1 (Stage 2 epochs), got 0; for Stage 1 only pass "
                "rank_only=True (or run `sebra rank`)"
            )
        self.check_hparams(
            {"epochs": {"integer": True, "low": 0 if rank_only else 1, "note": "Stage 2 epochs"}}
        )
        if not (rankings is None or isinstance(rankings, (str, Path, pd.DataFrame))):
            raise ValueError(
                f"SebraModule: rankings must be a ranking table (DataFrame) or a rankings.csv path, "
                f"got {type(rankings).__name__}"
            )
        if isinstance(rankings, pd.DataFrame):
            check_rankings(rankings, "SebraModule(rankings=...)")
            check_ranking_values(rankings, "SebraModule(rankings=...)")
        if rank_by != "elimination" and rankings is None and rank_bins is None:
            raise ValueError(
                f"rank_by={rank_by!r} ranks one sample per rank, so Stage 2 must pair on position bins: "
                "set rank_bins (e.g. 10)"
            )
        if second_look_epochs and rankings is None and rank_bins is None:
            raise ValueError(
                "second_look_epochs > 0 ranks one sample per rank, so Stage 2 must pair on position bins: "
                "set rank_bins (e.g. 10)"
            )
        if rank_only:
            self.hparams.epochs = 0  # Stage 1, then done
        #: Stage 1, the ranker (its settings are this module's Stage 1 arguments)
        self.ranking = SelfGuidedRanking(
            beta_inv=beta_inv,
            p_critical=p_critical,
            max_steps=max_steps,
            scoring=scoring,
            unranked=unranked,
            draws_per_step=draws_per_step,
            within_step=within_step,
            mean_window=mean_window,
            rank_repeats=rank_repeats,
            repeat_draws=repeat_draws,
            first_step_passes=first_step_passes,
            retain_eliminated=retain_eliminated,
            rank_by=rank_by,
            confidence_steps=confidence_steps,
            confidence_score=confidence_score,
            second_look_epochs=second_look_epochs,
            second_look_max_epochs=second_look_max_epochs,
            second_look_reduce=second_look_reduce,
            second_look_ema_epochs=second_look_ema_epochs,
            second_look_loss=second_look_loss,
            second_look_place=second_look_place,
            seed=seed,
        )
        #: Stage 2, the mitigation: reads only the ranking table and the training split
        self.mitigation = PairMitigation(
            gap=gap,
            temperature=temperature,
            ce_weight=ce_weight,
            contrastive_weight=contrastive_weight,
            ce_on=ce_on,
            pairs=pairs,
            feature_pass=feature_pass,
            bn_eval=bn_eval,
            rank_bins=rank_bins,
            seed=seed,
        )
        self.given_rankings = load_rankings(rankings) if isinstance(rankings, (str, Path)) else rankings
        self.stage = RANK if self.given_rankings is None else MITIGATE
        if self.given_rankings is not None:
            self.ranking.confidence_run = False  # nothing to rank
        self.rankings: pd.DataFrame | None = None
        self.ranker: Classifier | None = None

    # --- the components' state, read by callers ----------------------------------------------------------------
    @property
    def controller(self) -> RankingController | None:
        """Stage 1's elimination state (of the run in progress, or the last one); ``None`` with given rankings."""
        return self.ranking.controller

    @property
    def repeat(self) -> int:
        """The Stage 1 run in progress (0-based; ``rank_repeats > 1``)."""
        return self.ranking.repeat

    @property
    def pairs_seen(self) -> int:
        """Anchors trained on in Stage 2 (this process)."""
        return self.mitigation.pairs_seen

    # --- what the ranker needs from its host (sebra.methods.sebra_stage1.RankingHost) ---------------------------
    def replicas(self) -> tuple[int, int]:
        """``(world size, this process's rank)``."""
        return self._replicas()

    def forward_context(self) -> AbstractContextManager:
        """The trainer's precision context (the scoring passes run under the training precision)."""
        return self.trainer.precision_plugin.forward_context()

    def reset_ranker(self, seed: int) -> None:
        """Re-initialise the ranker in place from ``seed`` (the optimizer keeps its parameters; its state is
        cleared): a fresh ranker for the next Stage 1 run or the confidence run."""
        fresh = self.make_classifier(seed)
        self.ranker.load_state_dict(fresh.state_dict())
        rank_opt = self.optimizers()[0]
        getattr(rank_opt, "optimizer", rank_opt).state.clear()

    @override
    def phase(self) -> Phase:
        h, r = self.hparams, self.ranking
        if self.stage == RANK and r.second_look_run:
            return Phase("Stage 1 second look", "epoch", r.second_look_done + 1, r.second_look_max_epochs)
        if self.stage == RANK and r.confidence_run:
            return Phase("Stage 1 confidence run", "epoch", r.confidence_steps_done + 1, r.confidence_steps)
        if self.stage == RANK:
            name = f"Stage 1 run {r.repeat + 1}/{r.rank_repeats}" if r.rank_repeats > 1 else "Stage 1"
            return Phase(name, "ranking step", r.steps + 1, r.max_steps, early_end=True)
        return Phase("Stage 2", "epoch", self.final_epoch + 1, as_int(h.get("epochs")))

    def ranking_history(self) -> pd.DataFrame:
        """Per ranking step of every Stage 1 run so far: the eliminations (``ranking_history.csv``'s rows, with
        ``repeat``, the run)."""
        return self.ranking.history()

    @property
    def ranking_check(self) -> PartitionCheck | None:
        """The label-free one-shortcut check of this fit's Stage 1 (:mod:`sebra.diagnostics`), once it ranked."""
        return self.ranking.first_check if self.rankings is not None else None

    @property
    def second_look(self) -> dict | None:
        """What this fit's second look did (``second_look_epochs > 0``), once it ranked: ``epochs``,
        ``first_wave``, ``moved``, ``moved_share``; ``None`` otherwise."""
        return self.ranking.second_look_summary() if self.rankings is not None else None

    # --- networks and optimizers -------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        if self.net is None:
            self.ranker = self.make_classifier(self.hparams.seed)
            self.net = self.make_classifier(self.hparams.seed + 1)  # Stage 2 starts from a fresh network
            self._apply_gpu_options(self.ranker, self.net)

    def first_network(self) -> nn.Module:
        """The Stage 1 ranker."""
        return self.ranker

    def first_optimizer(self) -> torch.optim.Optimizer:
        """The Stage 1 optimizer (``rank_optimizer``, ``rank_lr``, ...), kept across ranking steps."""
        h = self.hparams
        return make_optimizer(
            h.rank_optimizer, self.ranker.parameters(), h.rank_lr, h.rank_momentum, h.rank_weight_decay
        )

    def epochs_needed(self) -> int:
        """``max_steps`` per Stage 1 elimination run and the confidence run's epochs (none with given rankings)
        plus the Stage 2 ``epochs``."""
        ranking = 0 if self.given_rankings is not None else self.ranking.epochs_needed()
        return self.hparams.epochs + ranking

    def end_first_phase_epoch(self) -> None:
        """Close the ranking step; when ranking is over, publish the table and start Stage 2."""
        done = self.ranking.close_step(self)
        if done is not None:
            self._publish_rankings(*done)

    # --- what the fit produced ---------------------------------------------------------------------------------
    def produced_rankings(self) -> dict[str, pd.DataFrame]:
        """Stage 1's ranking table (the method's own row), once ranked."""
        return {"": self.rankings} if self.rankings is not None else {}

    def extra_metrics(self) -> dict[str, float]:
        """``rank_steps``: the ranking steps Stage 1's (last) elimination run took (NaN when the rankings were
        given, 0 with ``rank_by="confidence"``); ``confidence_steps`` when a confidence run ranked too."""
        if self.rankings is None:
            return {}
        ctl = self.controller
        out = {"rank_steps": float(ctl.step if ctl is not None else float("nan"))}
        if ctl is not None and self.ranking.rank_by != "elimination":
            out["confidence_steps"] = float(self.ranking.confidence_steps_done)
        if self.ranking.second_look_moved is not None:
            out["second_look_moved"] = float(self.ranking.second_look_moved)
        return out

    # --- set-up ------------------------------------------------------------------------------------------------
    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = self.datamodule
        if dm is None or not hasattr(dm, "batch_transform"):
            raise ValueError(
                "SebraModule needs a sebra data module (a SebraDataModule subclass): "
                "trainer.fit(model, datamodule=dm); its loaders are rebuilt every ranking step"
            )
        if not hasattr(dm, "train_dataset"):
            dm.setup(stage)
        train = dm.train_dataset
        if self.given_rankings is None:
            groups = train.groups if (train.groups >= 0).any() else None
            self.ranking.start(train.labels, train.indices, groups, self.num_classes)
        elif self.rankings is None:
            self.rankings = check_given_rankings(self.given_rankings, train, type(self).__name__)

    # --- the training loader, per stage ------------------------------------------------------------------------
    def train_loader(self, dm: Any) -> DataLoader:
        """Called by :class:`SebraDataModule.train_dataloader` every epoch."""
        if self.stage == RANK:
            sampler = self.ranking.sampler(self._replicas())
            return dm.loader(dm.train_dataset, batch_size=dm.batch_size, sampler=sampler)
        table = self.mitigation.epoch_pairs(
            self.rankings, dm.train_dataset, self.final_epoch, self._replicas()
        )
        pairs = PairDataset(dm.train_dataset, table.anchor, table.positive, table.negative)
        # Already this process's share: a ShardSampler keeps Lightning from sharding it again.
        return dm.loader(
            pairs,
            batch_size=self.hparams.batch_size or dm.batch_size,
            sampler=ShardSampler(range(len(pairs)), *self._replicas()),
        )

    # --- training ----------------------------------------------------------------------------------------------
    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rank_opt, opt = self.optimizers()
        if self.stage == RANK:
            loss = self.ranking.loss(self.ranker(batch["image"]), batch["label"])
            self.optimizer_step_on(rank_opt, loss)
            self.log("rank_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
            self.ranking.after_batch(self, batch_idx, int(self.trainer.num_training_batches))
            return loss
        loss, parts = self.mitigation.loss(self.net, batch)
        self.optimizer_step_on(opt, loss)
        self.log_dict(
            {"train_loss": loss, "train_con": parts["con"], "train_ce": parts["ce"]},
            prog_bar=True,
            on_step=False,
            on_epoch=True,
        )
        return loss

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.stage != RANK:
            self.mitigation.train_mode(self.net)

    @override
    def on_train_epoch_end(self) -> None:
        if self.stage == MITIGATE:
            self.log("pairs_dropped", float(self.mitigation.n_dropped), on_step=False, on_epoch=True)
        super().on_train_epoch_end()

    # --- the ranking table -------------------------------------------------------------------------------------
    def _publish_rankings(self, df: pd.DataFrame, note: str) -> None:
        """Make ``df`` the fit's ranking table: the training split's paths, attributes and groups joined on the
        dataset index, the side files written, and Stage 2 started (or the fit ended)."""
        train = self.datamodule.train_dataset
        extra = train.table.drop(columns=["label"]).set_index("index")
        keep = [c for c in ["path", *train.attr_names, "group"] if c in extra.columns and c not in df.columns]
        df = df.join(extra[keep], on="index")
        if "group" in extra.columns and "group" in df.columns:
            df["group"] = df["group"].astype("int64")
        self.rankings = df
        check, history = self.ranking.first_check, self.ranking_history()
        log_dir = self.side_file_dir()
        if log_dir is not None:
            self.rankings_path = save_rankings(df, log_dir / "rankings.csv")
            atomic_write(log_dir / "ranking_history.csv", lambda tmp: history.to_csv(tmp, index=False))
            atomic_write(
                log_dir / "ranking_diagnostics.json",
                lambda tmp: Path(tmp).write_text(json.dumps(self._diagnostics(check), indent=1)),
            )
            look = self.ranking.second_look_scores
            if look is not None:
                atomic_write(log_dir / "second_look.csv", lambda tmp: look.to_csv(tmp, index=False))
        rank_zero_info(
            f"Stage 1 done {note}" + ("; Stage 2 (mitigation) starts" if self.hparams.epochs > 0 else "")
        )
        self.start_final_phase()

    def _diagnostics(self, check: PartitionCheck) -> dict:
        """``ranking_diagnostics.json``: the check, and what the second look did when there was one."""
        look = self.ranking.second_look_summary()
        return {**check.to_dict(), **({"second_look": look} if look is not None else {})}

    # --- checkpoints -------------------------------------------------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The components' keys sit beside the module's (flat, as before the components existed): old checkpoints
        # load unchanged.
        checkpoint["sebra"] = {
            **self.ranking.state_dict(),
            **self.mitigation.state_dict(),
            "stage": self.stage,
            "rankings": self.rankings.to_dict("list") if self.rankings is not None else None,
            "mitigation_epoch": self.final_epoch,
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("sebra")
        if state is not None:
            self.stage = state["stage"]
            self.ranking.load_state_dict(state)
            self.mitigation.load_state_dict(state)
            if state["rankings"] is not None:
                self.rankings = pd.DataFrame(state["rankings"])
            self.final_epoch = state["mitigation_epoch"]
        super().on_load_checkpoint(checkpoint)

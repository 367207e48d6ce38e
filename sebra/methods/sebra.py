"""SebraModule: Stage 1 (self-guided ranking) and Stage 2 (rank-aware contrastive mitigation) in one ``fit``.

One Lightning epoch is one ranking step while ranking, then one mitigation epoch. The data module's training loader
is rebuilt every epoch through its ``train_loader`` hook: in Stage 1 it draws from the active set
(:class:`~sebra.ranking.ActiveSetSampler`), in Stage 2 it serves the epoch's mined pairs. The two stages share only
the ranking table (``self.rankings``, also written to ``<log_dir>/rankings.csv``).

Data parallelism (``Trainer(devices=k, strategy="ddp"/"ddp_spawn")``): every process holds the same ranking state
and draws the same N positions per step, training on its strided share; scoring (``full``) is sharded the same way,
the ``(position, p_y)`` pairs are all-gathered and every process applies the same eliminations, so the rankings are
identical on all processes and written once (global rank 0). Stage 2 pair tables are mined with the same seeded
generator on every process, then strided; the contrastive loss (its denominator and the BatchNorm statistics of
the anchor + positive forward) sees each process's own batch, as in the official code, so keep the per-process
``batch_size`` of a single-device run rather than dividing it.

Resuming: ``last.ckpt`` is written after every epoch, ranking steps included
(:class:`~sebra.methods.base.LastCheckpoint`); ``trainer.fit(..., ckpt_path=...)`` continues the ranking (active set,
elimination steps, draw generator) or Stage 2 (epoch, pair generator) where it stopped, with the data module's
augmentation generator.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.contrastive import RankContrastiveLoss, mine_rank_pairs
from sebra.datasets.datamodule import ShardSampler
from sebra.export import check_ranking_values, check_rankings, load_rankings, save_rankings
from sebra.methods.base import BaseMethod, Selection, check_args, make_optimizer
from sebra.ranking import (
    ActiveSetSampler,
    RankingController,
    check_ranking_args,
    combine_rankings,
    confidence_weighted_loss,
)
from sebra.scoring import score_loader
from sebra.utils.files import atomic_write

__all__ = ["PairDataset", "SebraModule", "stage2_bins"]

RANK, MITIGATE, DONE = "rank", "mitigate", "done"


def stage2_bins(rankings: pd.DataFrame, bins: int) -> np.ndarray:
    """Per-class equal-size bins ``1..bins`` of the ranked order: ``ceil(position / n_class * bins)``."""
    n = rankings.groupby("label")["position"].transform("max").to_numpy()
    return np.ceil(rankings["position"].to_numpy() / n * bins).astype(np.int64).clip(1, bins)


class PairDataset(Dataset):
    """Serves one epoch of (anchor, positive, negative) rows; each image gets its own augmentation draw."""

    def __init__(
        self, base: Dataset, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> None:
        self.base, self.anchor, self.positive, self.negative = base, anchor, positive, negative

    def __len__(self) -> int:
        return len(self.anchor)

    def __getitem__(self, i: int) -> dict:
        return {
            "anchor": self.base[int(self.anchor[i])],
            "positive": self.base[int(self.positive[i])],
            "negative": self.base[int(self.negative[i])],
        }


class SebraModule(BaseMethod):
    """Sebra (ICLR 2025) as a LightningModule: ``trainer.fit(SebraModule(...), datamodule=dm)``.

    Use ``Trainer(max_epochs=-1)`` (or at least ``max_steps + epochs``): the module ends the fit itself.

    Args:
        backbone, pretrained, weights_file: timm network used by both stages (Stage 2 starts from a fresh copy).
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
            shortcut (BENCHMARKS.md §7). The paper leaves the within-step order open (the official code keeps
            batch order).
        rank_repeats: run Stage 1 this many times, each with a fresh ranker, optimizer and draws (seeds ``seed``,
            ``seed + 1000``, ...), and combine the rankings: within a class, samples are ordered by their mean
            position percentile (:func:`~sebra.ranking.combine_rankings`). One run's order depends on which
            shortcut it happened to learn first and on where its elimination waves split; the mean damps that
            (BENCHMARKS.md §7). Costs ``rank_repeats`` times the Stage 1 time; pair on ``rank_bins`` with it.
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
        optimizer, lr, momentum, weight_decay, lr_schedule: Stage 2 optimizer (``lr_schedule``: none or cosine).
        bn_eval: keep Stage 2 BatchNorm in eval mode (reproduces the official CelebA code).
        rank_bins: Stage 2 pairs on ``rank_bins`` equal-size per-class bins of the ranked order (``position``)
            instead of the raw elimination steps, as the official ImageNet trainer re-bins its ranks (10 bins).
            Useful when Stage 1 ends in few steps: the within-step order (higher ``p_y`` first) then still grades
            the samples. ``None``: the raw ranks (UrbanCars/CelebA/BAR code).
        batch_size: Stage 2 anchors per batch (default: the data module's batch size).
        selection: checkpoint selection during Stage 2 (``val_wga``, ``val_acc`` or ``last``).
        rankings: a ranking table (DataFrame or a ``rankings.csv`` path): skips Stage 1.
        seed: seeds the Stage 1 draws and the Stage 2 pair tables.
        channels_last: keep both networks and their inputs in ``channels_last`` memory format (faster convolutions
            with mixed precision on recent GPUs). Mixed precision itself is ``Trainer(precision="bf16-mixed")`` or
            ``"16-mixed"``; the Stage 1 scoring pass runs under the same precision.
        compile: ``torch.compile`` both backbones (in place: checkpoints keep their keys). The first steps are
            slow while it compiles.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        weights_file: str | None = None,
        beta_inv: float = 0.7,
        p_critical: float = 0.75,
        max_steps: int = 50,
        rank_optimizer: str = "sgd",
        rank_lr: float = 1e-3,
        rank_momentum: float = 0.9,
        rank_weight_decay: float = 0.0,
        scoring: Literal["full", "official"] = "full",
        unranked: Literal["last", "official"] = "last",
        draws_per_step: int | Literal["active"] | None = None,
        within_step: Literal["elimination", "final"] = "elimination",
        rank_repeats: int = 1,
        rank_only: bool = False,
        epochs: int = 50,
        gap: int = 5,
        temperature: float = 0.05,
        ce_weight: float = 0.5,
        contrastive_weight: float = 1.0,
        ce_on: Literal["positive", "anchor", "both"] = "positive",
        pairs: Literal["paper", "official"] = "paper",
        feature_pass: Literal["official", "shared"] = "official",
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: str = "none",
        bn_eval: bool = False,
        rank_bins: int | None = None,
        batch_size: int | None = None,
        selection: Selection = "val_wga",
        rankings: pd.DataFrame | str | None = None,
        seed: int = 0,
        num_classes: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__(selection=selection, num_classes=num_classes)
        check_ranking_args(beta_inv, p_critical, max_steps)
        for name, value, allowed in (
            ("scoring", scoring, ("full", "official")),
            ("unranked", unranked, ("last", "official")),
            ("ce_on", ce_on, ("positive", "anchor", "both")),
            ("pairs", pairs, ("paper", "official")),
            ("feature_pass", feature_pass, ("official", "shared")),
            ("lr_schedule", lr_schedule, ("none", "cosine")),
            ("within_step", within_step, ("elimination", "final")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not rank_only and isinstance(epochs, numbers.Integral) and epochs == 0:
            raise ValueError(
                "SebraModule: epochs must be >= 1 (Stage 2 epochs), got 0; for Stage 1 only pass "
                "rank_only=True (or run `sebra rank`)"
            )
        check_args(
            "SebraModule",
            {"epochs": {"integer": True, "low": 0 if rank_only else 1, "note": "Stage 2 epochs"}},
            backbone=backbone,
            max_steps=max_steps,
            rank_optimizer=rank_optimizer,
            rank_lr=rank_lr,
            rank_momentum=rank_momentum,
            rank_weight_decay=rank_weight_decay,
            epochs=epochs,
            gap=gap,
            temperature=temperature,
            ce_weight=ce_weight,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            rank_bins=rank_bins,
            batch_size=batch_size,
            seed=seed,
            num_classes=num_classes,
        )
        if not (rankings is None or isinstance(rankings, (str, Path, pd.DataFrame))):
            raise ValueError(
                f"SebraModule: rankings must be a ranking table (DataFrame) or a rankings.csv path, "
                f"got {type(rankings).__name__}"
            )
        if isinstance(rankings, pd.DataFrame):
            check_rankings(rankings, "SebraModule(rankings=...)")
            check_ranking_values(rankings, "SebraModule(rankings=...)")
        if not (
            draws_per_step is None
            or draws_per_step == "active"
            or (isinstance(draws_per_step, int) and draws_per_step >= 1)
        ):
            raise ValueError(
                f"draws_per_step must be None, 'active' or an integer >= 1, got {draws_per_step!r}"
            )
        if int(rank_repeats) != rank_repeats or rank_repeats < 1:
            raise ValueError(f"rank_repeats must be an integer >= 1, got {rank_repeats!r}")
        self.save_hyperparameters(ignore=["rankings"])
        if rank_only:
            self.hparams.epochs = 0  # Stage 1, then done
        self.given_rankings = load_rankings(rankings) if isinstance(rankings, (str, Path)) else rankings
        self.stage = RANK if self.given_rankings is None else MITIGATE
        self.controller: RankingController | None = None
        self.rankings: pd.DataFrame | None = None
        self.ranker: Classifier | None = None
        self.net: Classifier | None = None
        if contrastive_weight < 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {contrastive_weight}")
        self.criterion = RankContrastiveLoss(temperature, ce_weight, contrastive_weight)
        self.mitigation_epoch = 0
        self.pairs_seen = 0  # anchors trained on in Stage 2 (this process)
        self.pair_generator = torch.Generator().manual_seed(seed + 1)
        self._pending_controller_state: dict | None = None  # from a checkpoint loaded before setup()
        self.repeat = 0  # Stage 1 run in progress (rank_repeats > 1)
        self._repeat_tables: list[pd.DataFrame] = []  # finished Stage 1 runs' rankings
        self._repeat_history: list[pd.DataFrame] = []
        self._pair_cache: tuple[int, Any] | None = None  # (mitigation epoch, this process's pair table)
        self.step_seconds: list[float] = []
        self.automatic_optimization = False

    # --- networks and optimizers -------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        h = self.hparams
        if self.net is None:

            def make():
                return Classifier(
                    h.backbone, self.num_classes, pretrained=h.pretrained, weights_file=h.weights_file
                )

            with torch.random.fork_rng(
                devices=[]
            ):  # initialisation from `seed`, whatever the global RNG holds
                torch.manual_seed(h.seed)
                self.ranker = make()
                torch.manual_seed(h.seed + 1)
                self.net = make()  # Stage 2 starts from a fresh network
            self._apply_gpu_options(self.ranker, self.net)

    @override
    def configure_optimizers(self):
        h = self.hparams
        rank_opt = make_optimizer(
            h.rank_optimizer, self.ranker.parameters(), h.rank_lr, h.rank_momentum, h.rank_weight_decay
        )
        opt = make_optimizer(h.optimizer, self.net.parameters(), h.lr, h.momentum, h.weight_decay)
        return [rank_opt, opt]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network being trained: the ranker in Stage 1, the debiased network after it."""
        return (self.ranker if self.stage == RANK else self.net)(x)

    def in_final_phase(self) -> bool:
        """True in Stage 2, the only stage whose checkpoints are selectable."""
        return self.stage != RANK

    def produced_rankings(self) -> dict[str, pd.DataFrame]:
        """Stage 1's ranking table (the method's own row), once ranked."""
        return {"": self.rankings} if self.rankings is not None else {}

    def extra_metrics(self) -> dict[str, float]:
        """``rank_steps``: the ranking steps Stage 1 took (NaN when the rankings were given)."""
        if self.rankings is None:
            return {}
        ctl = self.controller
        return {"rank_steps": float(ctl.step if ctl is not None else float("nan"))}

    # --- set-up ------------------------------------------------------------------------------------------------
    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        trainer = self.trainer
        if stage == "fit":
            repeats = int(self.hparams.get("rank_repeats", 1))
            need = self.hparams.epochs + (
                0 if self.given_rankings is not None else self.hparams.max_steps * repeats
            )
            max_epochs = trainer.fit_loop.max_epochs
            if max_epochs is not None and max_epochs != -1 and max_epochs < need:
                raise ValueError(
                    f"Trainer(max_epochs={max_epochs}) is too small for max_steps + epochs = {need}; use "
                    "Trainer(max_epochs=-1): SebraModule ends the fit itself"
                )
            trainer.reload_dataloaders_every_n_epochs = 1  # the train loader changes every step / epoch
        dm = self.datamodule
        if dm is None or not hasattr(dm, "batch_transform"):
            raise ValueError(
                "SebraModule needs a sebra data module (a SebraDataModule subclass): "
                "trainer.fit(model, datamodule=dm); its loaders are rebuilt every ranking step"
            )
        if not hasattr(dm, "train_dataset"):
            dm.setup(stage)
        train = dm.train_dataset
        if self.controller is None and self.given_rankings is None:
            self.controller = RankingController(
                train.labels,
                num_classes=self.num_classes,
                p_critical=self.hparams.p_critical,
                max_steps=self.hparams.max_steps,
                unranked=self.hparams.unranked,
                indices=train.indices,
                groups=train.groups if (train.groups >= 0).any() else None,
                seed=self.hparams.seed,
            )
        if self.controller is not None and self._pending_controller_state is not None:
            self.controller.load_state_dict(self._pending_controller_state)
            self._pending_controller_state = None
        if self.given_rankings is not None and self.rankings is None:
            self.rankings = self._check_rankings(self.given_rankings, train)

    @staticmethod
    def _check_rankings(df: pd.DataFrame, train: Any) -> pd.DataFrame:
        missing = set(train.indices.tolist()) - set(df["index"].tolist())
        if missing:
            raise ValueError(
                f"rankings lack {len(missing)} training samples (dataset index {min(missing)} first)"
            )
        by_index = df.set_index("index").loc[train.indices.numpy()]
        bad = by_index["label"].to_numpy() != train.labels.numpy()
        if bad.any():
            idx = int(train.indices[torch.as_tensor(bad)][0])
            raise ValueError(f"rankings give dataset index {idx} another label than the training data")
        return df

    # --- the training loader, per stage ------------------------------------------------------------------------
    def train_loader(self, dm: Any) -> DataLoader:
        """Called by :class:`SebraDataModule.train_dataloader` every epoch."""
        if self.stage == RANK:
            sampler = ActiveSetSampler(self.controller, self._draws(), *self._replicas())
            return dm.loader(dm.train_dataset, batch_size=dm.batch_size, sampler=sampler)
        table = self._epoch_pairs(dm.train_dataset)
        pairs = PairDataset(dm.train_dataset, table.anchor, table.positive, table.negative)
        # Already this process's share: a ShardSampler keeps Lightning from sharding it again.
        return dm.loader(
            pairs,
            batch_size=self.hparams.batch_size or dm.batch_size,
            sampler=ShardSampler(range(len(pairs)), *self._replicas()),
        )

    def _draws(self) -> int | None:
        """Training draws for the next ranking step (``None``: the training-set size)."""
        d = self.hparams.draws_per_step
        if d == "active":
            return max(1, self.controller.num_active)
        return d

    def _replicas(self) -> tuple[int, int]:
        t = self._trainer
        return (t.world_size, t.global_rank) if t is not None else (1, 0)

    def _ranks_by_position(self, train: Any) -> torch.Tensor:
        """The rank used for pairing, per training position: the raw rank, or its per-class bin (``rank_bins``)."""
        df = self.rankings
        if self.hparams.rank_bins:
            df = df.assign(rank=stage2_bins(df, self.hparams.rank_bins))
        r = df.set_index("index").loc[train.indices.numpy(), "rank"].to_numpy()
        return torch.tensor(r, dtype=torch.long)

    def _epoch_pairs(self, train: Any):
        """Mine this epoch's pair table from the ranks, then shuffle its rows (both seeded).

        Mined once per mitigation epoch: Lightning may build the training loader twice for one epoch (it does when
        resuming from a checkpoint), and the seeded generator must advance exactly once per epoch.
        """
        if self._pair_cache is not None and self._pair_cache[0] == self.mitigation_epoch:
            return self._pair_cache[1]
        table = mine_rank_pairs(
            self._ranks_by_position(train),
            train.labels,
            gap=self.hparams.gap,
            generator=self.pair_generator,
            official=self.hparams.pairs == "official",
        )
        perm = torch.randperm(len(table), generator=self.pair_generator)
        world, rank = self._replicas()
        if world > 1:  # same table on every process; each keeps a strided share, padded to equal batch counts
            size = -(-len(perm) // world)
            perm = torch.cat([perm, perm[: size * world - len(perm)]])[rank::world]
        self.n_dropped = table.n_dropped
        share = type(table)(table.anchor[perm], table.positive[perm], table.negative[perm], table.n_dropped)
        self._pair_cache = (self.mitigation_epoch, share)
        return share

    # --- training ----------------------------------------------------------------------------------------------
    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rank_opt, opt = self.optimizers()
        if self.stage == RANK:
            logits = self.ranker(batch["image"])
            loss = confidence_weighted_loss(logits, batch["label"], self.hparams.beta_inv)
            rank_opt.zero_grad()
            self.manual_backward(loss)
            rank_opt.step()
            self.log("rank_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
            return loss
        loss, parts = self._mitigation_loss(batch)
        self.pairs_seen += len(batch["anchor"]["label"])
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log_dict(
            {"train_loss": loss, "train_con": parts["con"], "train_ce": parts["ce"]},
            prog_bar=True,
            on_step=False,
            on_epoch=True,
        )
        return loss

    def _mitigation_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        a, p, n = batch["anchor"], batch["positive"], batch["negative"]
        y = a["label"]
        net, bn_eval = self.net, self.hparams.bn_eval
        if self.criterion.con_weight == 0:  # CE on the chosen images only: no contrastive feature passes
            ce_on = self.hparams.ce_on
            if ce_on == "positive":
                x, labels = p["image"], p["label"]
            elif ce_on == "anchor":
                x, labels = a["image"], y
            else:
                x, labels = torch.cat([a["image"], p["image"]]), torch.cat([y, p["label"]])
            ce = F.cross_entropy(net(x), labels)
            return self.criterion.ce_weight * ce, {
                "con": torch.zeros((), device=ce.device),
                "ce": ce.detach(),
            }
        with torch.no_grad():
            net.eval()
            if self.hparams.feature_pass == "official":
                zp_ref, zn_ref = net.features(torch.cat([p["image"], n["image"]])).chunk(2)
            else:
                zn_ref = net.features(n["image"])
            net.train(not bn_eval)
        feats = net.features(torch.cat([a["image"], p["image"]]))
        za, zp = feats.chunk(2)
        if self.hparams.feature_pass == "shared":
            zp_ref = zp.detach()
        ce_on = self.hparams.ce_on
        if ce_on == "positive":
            logits, labels = net.head(zp), p["label"]
        elif ce_on == "anchor":
            logits, labels = net.head(za), y
        else:
            logits, labels = net.head(feats), torch.cat([y, p["label"]])
        return self.criterion(za, zp_ref, zn_ref, logits, labels)

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.log("stage", 1.0 if self.stage == RANK else 2.0, prog_bar=True, on_step=False, on_epoch=True)
        if self.stage != RANK:
            self.net.train(not self.hparams.bn_eval)

    @override
    def on_train_epoch_end(self) -> None:
        if self.stage == RANK:
            self._close_ranking_step()
            return
        if self.stage == MITIGATE:
            self.mitigation_epoch += 1
            if self.hparams.lr_schedule == "cosine":
                _, opt = self.optimizers()
                for g in opt.param_groups:
                    g.setdefault("initial_lr", g["lr"])
                    g["lr"] = (
                        0.5
                        * g["initial_lr"]
                        * (
                            1
                            + torch.cos(
                                torch.tensor(torch.pi * self.mitigation_epoch / self.hparams.epochs)
                            ).item()
                        )
                    )
            self.log("pairs_dropped", float(getattr(self, "n_dropped", 0)), on_step=False, on_epoch=True)
            if self.mitigation_epoch >= self.hparams.epochs:
                self.stage = DONE
                self.trainer.should_stop = True

    # --- Stage 1 scoring and elimination -----------------------------------------------------------------------
    @torch.no_grad()
    def _score(self, every: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``(positions, p_y)``: every active sample once in eval mode, or the official draw;
        ``every``: every training sample once in eval mode (the final network's scores for ``within_step``).

        Under data parallelism this process's strided share only (see :meth:`_gather_scores`).
        """
        dm, ctl = self.datamodule, self.controller
        world, rank = self._replicas()
        if every or self.hparams.scoring == "full":
            pool = torch.ones_like(ctl.active) if every else ctl.active
            positions = torch.nonzero(pool).squeeze(1)[rank::world]
            loader = dm.loader(dm.train_eval_dataset, sampler=positions.tolist())
        else:
            sampler = ActiveSetSampler(ctl, self._draws(), world, rank)
            positions = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
            loader = dm.loader(dm.train_dataset, sampler=positions.tolist(), batch_size=dm.batch_size)
        scores = score_loader(
            self.ranker,
            loader,
            device=self.device,
            transform=dm.batch_transform,
            forward_context=self.trainer.precision_plugin.forward_context,
            train=self.hparams.scoring == "official" and not every,
        )
        self.ranker.train()
        return positions, scores.p_y

    def _close_ranking_step(self) -> None:
        ctl = self.controller
        distributed = self._replicas()[0] > 1
        if distributed:
            self._sync_ranker_buffers()
        positions, p_y = self._score()
        if distributed:
            positions, p_y = self._gather_scores(positions, p_y)
        ctl.update(positions, p_y)
        rec = ctl.history[-1]
        self.log_dict(
            {f"rank/{k}": float(v) for k, v in rec.items() if k != "step"}, on_step=False, on_epoch=True
        )
        rank_zero_info(f"ranking step {ctl.step}: eliminated {rec['eliminated']}, {rec['active']} active")
        if ctl.done:
            self._finish_ranking()

    def _sync_ranker_buffers(self) -> None:
        """Give every process rank 0's ranker buffers (BatchNorm running statistics) before scoring.

        DDP keeps the parameters equal, but each process's last training batches moved its own running statistics
        (DDP only broadcasts buffers before the next forward through its wrapper, which scoring bypasses).
        """
        if dist.is_available() and dist.is_initialized():
            for buf in self.ranker.buffers():
                dist.broadcast(buf.data, src=0)

    def _gather_scores(self, positions: torch.Tensor, p_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All processes' ``(positions, p_y)``, in the same order on every process.

        The shares may differ in length by one: they are padded with position -1 for ``all_gather`` (which needs
        equal shapes), and the padding is dropped again.
        """
        size = int(self.all_gather(torch.tensor([len(positions)], device=self.device)).max())
        pad = size - len(positions)
        positions = torch.cat([positions.long(), torch.full((pad,), -1, dtype=torch.long)])
        p_y = torch.cat([p_y.float(), torch.full((pad,), float("nan"))])
        g_pos = self.all_gather(positions.to(self.device)).reshape(-1).cpu()
        g_p = self.all_gather(p_y.to(self.device)).reshape(-1).cpu()
        keep = g_pos >= 0
        return g_pos[keep], g_p[keep]

    def _finish_ranking(self) -> None:
        ctl = self.controller
        within = None
        if self.hparams.get("within_step", "elimination") == "final":
            positions, p_y = self._score(every=True)
            if self._replicas()[0] > 1:
                positions, p_y = self._gather_scores(positions, p_y)
            within = torch.full((len(ctl),), float("nan"))
            within[positions] = p_y.float()
        df = ctl.rankings(within)
        history = ctl.history_frame().assign(repeat=self.repeat)
        repeats = int(self.hparams.get("rank_repeats", 1))
        if repeats > 1:
            self._repeat_tables.append(df)
            self._repeat_history.append(history)
            if self.repeat + 1 < repeats:
                rank_zero_info(
                    f"Stage 1 run {self.repeat + 1} of {repeats} done after {ctl.step} ranking steps; "
                    "the next starts from a fresh ranker"
                )
                self._next_repeat()
                return
            df = combine_rankings(self._repeat_tables)
            history = pd.concat(self._repeat_history, ignore_index=True)
        train = self.datamodule.train_dataset
        extra = train.table.drop(columns=["label"]).set_index("index")
        keep = [c for c in ["path", *train.attr_names, "group"] if c in extra.columns and c not in df.columns]
        df = df.join(extra[keep], on="index")
        if "group" in extra.columns and "group" in df.columns:
            df["group"] = df["group"].astype("int64")
        self.rankings = df
        log_dir = self.trainer.log_dir if self._trainer is not None else None
        if log_dir is not None and self.trainer.is_global_zero:
            self.rankings_path = save_rankings(df, Path(log_dir) / "rankings.csv")
            atomic_write(Path(log_dir) / "ranking_history.csv", lambda tmp: history.to_csv(tmp, index=False))
        runs = f" (run {self.repeat + 1} of {repeats}; rankings combined)" if repeats > 1 else ""
        rank_zero_info(
            f"Stage 1 done after {ctl.step} ranking steps{runs}, {ctl.num_active} never eliminated"
            + ("; Stage 2 (mitigation) starts" if self.hparams.epochs > 0 else "")
        )
        self.stage = MITIGATE if self.hparams.epochs > 0 else DONE
        if self.stage == DONE:
            self.trainer.should_stop = True

    def _next_repeat(self) -> None:
        """Start the next Stage 1 run: the ranker re-initialised in place (the optimizer keeps its parameters, its
        state is cleared), a new elimination controller with its own draw seed."""
        self.repeat += 1
        h = self.hparams
        seed = h.seed + 1000 * self.repeat
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = Classifier(
                h.backbone, self.num_classes, pretrained=h.pretrained, weights_file=h.weights_file
            )
        self.ranker.load_state_dict(fresh.state_dict())
        rank_opt = self.optimizers()[0]
        getattr(rank_opt, "optimizer", rank_opt).state.clear()
        old = self.controller
        self.controller = RankingController(
            old.labels,
            num_classes=old.num_classes,
            p_critical=old.p_critical,
            max_steps=old.max_steps,
            unranked=old.unranked,
            indices=old.indices,
            groups=old.groups,
            seed=seed,
        )

    # --- checkpoints -------------------------------------------------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sebra"] = {
            "repeat": self.repeat,
            "repeat_tables": [t.to_dict("list") for t in self._repeat_tables],
            "repeat_history": [t.to_dict("list") for t in self._repeat_history],
            "stage": self.stage,
            "controller": self.controller.state_dict() if self.controller is not None else None,
            "rankings": self.rankings.to_dict("list") if self.rankings is not None else None,
            "mitigation_epoch": self.mitigation_epoch,
            "pairs_seen": self.pairs_seen,
            "pair_generator": self.pair_generator.get_state(),
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("sebra")
        if state is None:
            return
        self.stage = state["stage"]
        self.repeat = state.get("repeat", 0)
        self._repeat_tables = [pd.DataFrame(t) for t in state.get("repeat_tables", [])]
        self._repeat_history = [pd.DataFrame(t) for t in state.get("repeat_history", [])]
        super().on_load_checkpoint(checkpoint)
        if state["controller"] is not None:
            if self.controller is not None:
                self.controller.load_state_dict(state["controller"])
            else:  # loaded before setup() built the controller (e.g. load_from_checkpoint): applied there
                self._pending_controller_state = state["controller"]
        if state["rankings"] is not None:
            self.rankings = pd.DataFrame(state["rankings"])
        self.mitigation_epoch = state["mitigation_epoch"]
        self.pairs_seen = state.get("pairs_seen", self.pairs_seen)
        self.pair_generator.set_state(state["pair_generator"])

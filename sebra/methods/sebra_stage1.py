"""Sebra's Stage 1 inside :class:`~sebra.methods.sebra.SebraModule`: the ranking state, scoring the ranker at the
end of each ranking step (sharded and gathered under data parallelism), the eliminations, and the ranking table
when ranking ends (combined over ``rank_repeats`` runs, and with ``rank_by`` ``"confidence"`` or ``"fused"`` a
plain cross-entropy ranker's confidence after ``confidence_steps`` passes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info

from sebra.datasets.datamodule import ShardSampler, shard_positions
from sebra.diagnostics import PartitionCheck, tail_agreement, unchecked, wave_stability
from sebra.export import save_rankings
from sebra.ranking import ActiveSetSampler, RankingController, combine_rankings
from sebra.scoring import confidence_rankings, score_loader
from sebra.utils.files import atomic_write

__all__ = ["RankingSteps"]


class RankingSteps:
    """The Stage 1 part of :class:`~sebra.methods.sebra.SebraModule` (a mixin: it uses the module's
    hyper-parameters, ``ranker``, ``controller`` and trainer).

    A ranking step is one Lightning epoch: the ranker trains on draws from the active set, then
    :meth:`_close_ranking_step` scores it and eliminates; when the controller is done, :meth:`_finish_ranking` builds
    ``rankings`` (or starts the next of ``rank_repeats`` runs) and the module moves on to Stage 2.

    The confidence run (``rank_by`` ``"confidence"``: instead of the elimination runs; ``"fused"``: after them) is
    ERM for ``confidence_steps`` epochs: a fresh ranker, plain cross-entropy, one pass per step over every training
    sample in a seeded order, nothing eliminated; then every sample is scored once (eval mode; with
    ``confidence_score="mean"`` after every epoch, and averaged) and ranked per class by ``p_y``, higher first
    (:func:`~sebra.scoring.confidence_rankings`). ``"fused"`` combines that order with the elimination runs' by
    mean position percentile (:func:`~sebra.ranking.combine_rankings`). The elimination
    controller is kept through the confidence run: its history and steps stay those of the elimination runs.
    """

    def _new_controller(
        self,
        labels: torch.Tensor,
        indices: torch.Tensor,
        groups: torch.Tensor | None,
        seed: int,
        strata: torch.Tensor | None = None,
    ) -> RankingController:
        """The elimination state of a Stage 1 run over the training samples (``labels``, dataset ``indices``,
        ``groups`` when known), drawing from ``seed`` (balanced over ``strata`` when given)."""
        h = self.hparams
        return RankingController(
            labels,
            num_classes=self.num_classes,
            p_critical=h.p_critical,
            max_steps=h.max_steps,
            unranked=h.unranked,
            indices=indices,
            groups=groups,
            seed=seed,
            strata=strata,
            retain=h.retain_eliminated,
        )

    def _draws(self) -> int | None:
        """Training draws for the next ranking step (``None``: the training-set size); the first step of each run
        draws ``first_step_passes`` times as many."""
        d = self.hparams.draws_per_step
        if d == "active":
            d = max(1, self.controller.num_active)
        passes = float(self.hparams.first_step_passes)
        if self.controller.step == 0 and passes != 1.0:
            return max(1, round((d if d is not None else len(self.controller)) * passes))
        return d

    def _score(self, every: bool = False, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``(positions, p_y)``: every active sample once in eval mode, or the official draw;
        ``every``: every training sample once in eval mode (the final network's scores for ``within_step``).

        Under data parallelism this process's strided share only (see :meth:`_gather_scores`).
        """
        dm, ctl = self.datamodule, self.controller
        world, rank = self._replicas()
        if every or full or self.hparams.scoring == "full":
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
            train=self.hparams.scoring == "official" and not every and not full,
        )
        self.ranker.train()
        return positions, scores.p_y

    def _gathered_scores(self, every: bool = False, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_score` on every process with rank 0's BatchNorm buffers, gathered (``positions, p_y``)."""
        distributed = self._replicas()[0] > 1
        if distributed:
            self._sync_ranker_buffers()
        positions, p_y = self._score(every=every, full=full)
        if distributed:
            positions, p_y = self._gather_scores(positions, p_y)
        return positions, p_y

    def _dense(self, positions: torch.Tensor, p_y: torch.Tensor) -> torch.Tensor:
        """Scores as one ``[N]`` tensor over training positions (NaN where not scored)."""
        out = torch.full((len(self.controller),), float("nan"))
        out[positions] = p_y.float()
        return out

    def _maybe_score_mid_step(self, batch_idx: int) -> None:
        """At the middle of the first run's first ranking step, score the active set once (eval mode, no
        augmentation) for the one-shortcut check (:mod:`sebra.diagnostics`). The global RNG is left as it was, so
        the ranking does not change."""
        n = int(self.trainer.num_training_batches)
        if (
            self.confidence_run
            or self.repeat != 0
            or self.controller.step != 0
            or n < 2
            or batch_idx + 1 != n // 2
        ):
            return
        with torch.random.fork_rng(devices=[]):
            self._mid_scores = self._dense(*self._gathered_scores(full=True))

    def _first_step_check(self, p_end: torch.Tensor) -> PartitionCheck:
        ctl = self.controller
        wave = ctl.elim_step == 1
        if self._mid_scores is None:
            return unchecked(
                ctl.labels, wave, "ranking blindness not checked: no mid-step scores of the first step"
            )
        return wave_stability(ctl.labels, wave, self._mid_scores, p_end)

    def _close_ranking_step(self) -> None:
        if self.confidence_run:
            self._close_confidence_step()
            return
        ctl = self.controller
        if self.hparams.within_step == "mean":
            # every sample scored once (eval mode): the active ones decide the eliminations as with scoring="full",
            # the eliminated ones extend their mean p_y since they left
            end = self._dense(*self._gathered_scores(every=True))
            positions = torch.nonzero(ctl.active).squeeze(1)
            p_y = end[positions]
            ctl.update(positions, p_y)
            ctl.observe(end, self.hparams.mean_window)
        else:
            positions, p_y = self._gathered_scores()
            ctl.update(positions, p_y)
            end = self._dense(positions, p_y)
        if self.repeat == 0 and ctl.step == 1:
            self.first_check = self._first_step_check(end)
            self._mid_scores = None
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
        if self.hparams.within_step == "final":
            within = self._dense(*self._gathered_scores(every=True))
        elif self.hparams.within_step == "mean":
            within = ctl.mean_after()
        df = ctl.rankings(within)
        repeats = int(self.hparams.rank_repeats)
        if repeats > 1:
            self._repeat_tables.append(df)
            self._repeat_history.append(ctl.history_frame().assign(repeat=self.repeat))
            if self.repeat + 1 < repeats:
                rank_zero_info(
                    f"Stage 1 run {self.repeat + 1} of {repeats} done after {ctl.step} ranking steps; "
                    "the next starts from a fresh ranker"
                )
                self._next_repeat()
                return
            df = combine_rankings(self._repeat_tables)
        if self.hparams.rank_by == "fused":
            rank_zero_info(
                f"Stage 1 elimination done after {ctl.step} ranking steps; the confidence run "
                f"({self.hparams.confidence_steps} epoch(s) of cross-entropy) starts from a fresh ranker"
            )
            self._stage1_table = df
            self._start_confidence_run(self.hparams.seed + 1000 * repeats)
            return
        self._publish_rankings(df, f"after {ctl.step} ranking steps")

    # --- the confidence run --------------------------------------------------------------------------------------
    def _start_confidence_run(self, seed: int) -> None:
        """Train a fresh ranker with plain cross-entropy from the next epoch on (``rank_by="fused"``)."""
        self.confidence_run = True
        self.confidence_steps_done = 0
        self.confidence_seed = seed
        self.confidence_sum = None
        self._reset_ranker(seed)

    def confidence_positions(self) -> list[int]:
        """This epoch's training positions in the confidence run: every sample once, in an order seeded by the
        run's seed and epoch (the same on every process, and however often the loader is rebuilt), this process's
        strided share (padded to equal length)."""
        order = torch.Generator().manual_seed(self.confidence_seed * 1009 + self.confidence_steps_done)
        perm = torch.randperm(len(self.controller), generator=order)
        share, _ = shard_positions(len(perm), *self._replicas())
        return perm[share].tolist()

    def confidence_sampler(self) -> ShardSampler:
        """The confidence run's sampler (already this process's share)."""
        return ShardSampler(self.confidence_positions(), *self._replicas())

    def _close_confidence_step(self) -> None:
        self.confidence_steps_done += 1
        total = int(self.hparams.confidence_steps)
        mean = self.hparams.confidence_score == "mean"
        if mean or self.confidence_steps_done == total:
            p_y = self._dense(*self._gathered_scores(every=True))
            if mean:  # learning speed: scored after every epoch, ranked by the mean
                self.confidence_sum = p_y if self.confidence_sum is None else self.confidence_sum + p_y
        rank_zero_info(f"confidence run: epoch {self.confidence_steps_done} of {total} done")
        if self.confidence_steps_done < total:
            return
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
        self._publish_rankings(df, note)

    # --- the ranking table -------------------------------------------------------------------------------------
    def _publish_rankings(self, df: pd.DataFrame, note: str) -> None:
        """Make ``df`` the fit's ranking table: the training split's paths, attributes and groups joined on the
        dataset index, the side files written, and Stage 2 started (or the fit ended)."""
        ctl = self.controller
        repeats = int(self.hparams.rank_repeats)
        train = self.datamodule.train_dataset
        extra = train.table.drop(columns=["label"]).set_index("index")
        keep = [c for c in ["path", *train.attr_names, "group"] if c in extra.columns and c not in df.columns]
        df = df.join(extra[keep], on="index")
        if "group" in extra.columns and "group" in df.columns:
            df["group"] = df["group"].astype("int64")
        self.rankings = df
        if self.first_check is None:  # e.g. a first step of one batch, or no elimination run
            reason = (
                "ranking blindness not checked: rank_by='confidence' has no elimination wave"
                if self.hparams.rank_by == "confidence"
                else "ranking blindness not checked"
            )
            self.first_check = unchecked(ctl.labels, None, reason)
        check = self.first_check
        history = self.ranking_history()
        log_dir = self.side_file_dir()
        if log_dir is not None:
            self.rankings_path = save_rankings(df, log_dir / "rankings.csv")
            atomic_write(log_dir / "ranking_history.csv", lambda tmp: history.to_csv(tmp, index=False))
            atomic_write(
                log_dir / "ranking_diagnostics.json",
                lambda tmp: Path(tmp).write_text(json.dumps(check.to_dict(), indent=1)),
            )
        runs = (
            f" (run {self.repeat + 1} of {repeats}; rankings combined)"
            if repeats > 1 and self.hparams.rank_by != "confidence"
            else ""
        )
        left = f", {ctl.num_active} never eliminated" if self.hparams.rank_by != "confidence" else ""
        rank_zero_info(
            f"Stage 1 done {note}{runs}{left}"
            + ("; Stage 2 (mitigation) starts" if self.hparams.epochs > 0 else "")
        )
        self.start_final_phase()

    def _next_repeat(self) -> None:
        """Start the next Stage 1 run: the ranker re-initialised in place (the optimizer keeps its parameters, its
        state is cleared), a new elimination controller with its own draw seed; with ``repeat_draws="balanced"``
        its draws are balanced between the previous run's first elimination wave and the rest of each class."""
        self.repeat += 1
        seed = self.hparams.seed + 1000 * self.repeat
        self._reset_ranker(seed)
        old = self.controller
        strata = None
        if self.hparams.repeat_draws == "balanced":
            # the previous run's first wave vs the rest: the shortcut that wave followed stops predicting the label
            strata = (old.elim_step != 1).long()
        self.controller = self._new_controller(old.labels, old.indices, old.groups, seed, strata)

    def _reset_ranker(self, seed: int) -> None:
        """Re-initialise the ranker in place from ``seed`` (the optimizer keeps its parameters; its state is
        cleared)."""
        fresh = self.make_classifier(seed)
        self.ranker.load_state_dict(fresh.state_dict())
        rank_opt = self.optimizers()[0]
        getattr(rank_opt, "optimizer", rank_opt).state.clear()

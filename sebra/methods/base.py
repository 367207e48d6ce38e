"""What every sebra method shares: group metrics on val/test, model selection, checkpoints to resume from, the
seeded networks, and where a fit writes its side files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import ARG_RULES, Selection, check_args, check_choices
from sebra.methods._devices import apply_gpu_options
from sebra.methods._group_layout import group_metric
from sebra.methods._optim import make_optimizer
from sebra.methods.checkpoints import checkpoint_callbacks, is_module_checkpoint, resolve_selection
from sebra.methods.finite import check_finite_loss
from sebra.methods.phase import Phase, epoch_phase
from sebra.utils.files import remove_stale_temporaries
from sebra.utils.rng import GeneratorPickling

__all__ = ["BaseMethod", "EpochLimited"]


class BaseMethod(GeneratorPickling, L.LightningModule):
    """Base LightningModule: per-split :class:`~sebra.metrics.GroupAccuracy`, logging of its results, model selection.

    Subclasses build their networks in ``configure_model`` (the data module tells the number of classes and the
    group layout) and define ``forward`` (logits of the network being evaluated) and ``training_step``. Their
    hyper-parameters name the network (``backbone``, ``pretrained``, ``weights_file``), its optimizer
    (``optimizer``, ``lr``, ``momentum``, ``weight_decay``) and, optionally, the GPU options ``channels_last`` and
    ``compile``.

    Args:
        selection: checkpoint kept for testing: ``val_wga`` (best validation worst-group accuracy: uses validation
            group labels, the paper's protocol for UrbanCars and CelebA; on data without them, e.g. a class-per-folder
            tree, the fit falls back to ``val_acc`` with a warning), ``val_acc`` (best validation accuracy: no
            group labels at all) or ``last``.
        num_classes: defaults to the data module's.
    """

    def __init__(self, selection: Selection = "val_wga", num_classes: int | None = None) -> None:
        super().__init__()
        check_choices(type(self), {"selection": selection})
        self.selection = selection
        self.num_classes = num_classes
        self.metrics = torch.nn.ModuleDict()

    def phase(self) -> Phase:
        """Where this fit is (the console's progress line and the non-finite messages name it): one-phase methods
        count epochs of ``hparams.epochs``; two-phase methods say their own phase."""
        return epoch_phase(self)

    # --- set-up from the data module ---------------------------------------------------------------------------
    @property
    def datamodule(self) -> Any:
        """The trainer's data module, or None outside a fit."""
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    @override
    def setup(self, stage: str) -> None:
        dm = self.datamodule
        if self.num_classes is None:
            if dm is None:
                raise ValueError("num_classes is not set and no datamodule was given to the trainer")
            self.num_classes = dm.num_classes
        if not self.metrics:
            for split in ("val", "test"):
                self.metrics[split] = group_metric(dm)
        if stage == "fit":
            self._remove_stale_temporaries()

    def side_file_dir(self) -> Path | None:
        """Where this process writes the files a fit produces beside its metrics (``rankings.csv``, JTT's error
        set, ...): the logger's folder on global rank 0; None on other processes and without a logger, so a fit
        without a logger writes nothing into the working directory (the results stay on the module).

        Every process must call it: the folder is broadcast from rank 0 under data parallelism.
        """
        trainer = self._trainer
        if trainer is None or not trainer.loggers:
            return None
        log_dir = trainer.log_dir
        return Path(log_dir) if log_dir and trainer.is_global_zero else None

    def check_hparams(self, rules: dict[str, dict[str, Any]] | None = None) -> None:
        """Check every saved hyper-parameter: each one typed as a ``Literal`` against its type
        (:func:`~sebra.methods._args.check_choices`), each one :mod:`sebra.methods._args` has a numeric rule for
        against it (``rules`` overrides them), in signature order; raises ``ValueError`` naming the class, the
        argument and the value."""
        check_choices(type(self), dict(self.hparams))
        checked = {k: v for k, v in self.hparams.items() if k in ARG_RULES or k == "backbone"}
        check_args(type(self).__name__, rules, **checked)

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files a killed run left in the log folder (a resumed run continues there)."""
        log_dir = self.side_file_dir()
        if log_dir is not None:
            for tmp in remove_stale_temporaries(log_dir):
                rank_zero_info(f"removed {tmp}, a temporary file of a write that was killed")

    def _replicas(self) -> tuple[int, int]:
        """``(world size, global rank)`` of the fit (``(1, 0)`` outside one)."""
        t = self._trainer
        return (t.world_size, t.global_rank) if t is not None else (1, 0)

    # --- networks and optimizers -------------------------------------------------------------------------------
    def make_classifier(self, seed: int) -> Classifier:
        """The method's timm network, initialised from ``seed`` whatever the global RNG holds (which it leaves as
        it was)."""
        h = self.hparams
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Classifier(
                h.backbone, self.num_classes, pretrained=h.pretrained, weights_file=h.weights_file
            )

    def _apply_gpu_options(self, *nets: nn.Module | None) -> None:
        """The ``channels_last`` and ``compile`` hyper-parameters applied to ``nets``
        (:func:`~sebra.methods._devices.apply_gpu_options`)."""
        h = self.hparams
        apply_gpu_options(*nets, channels_last=bool(h.channels_last), compile=bool(h.compile))

    def optimizer_for(self, params: Any) -> torch.optim.Optimizer:
        """The optimizer the hyper-parameters name (``optimizer``, ``lr``, ``momentum``, ``weight_decay``)."""
        h = self.hparams
        return make_optimizer(h.optimizer, params, h.lr, h.momentum, h.weight_decay)

    # --- what a fit produced besides the tested network (read by the benchmark runner) ---------------------------
    def produced_rankings(self) -> dict[str, pd.DataFrame]:
        """Per-sample ranking tables this run produced, keyed by result-row suffix ("" = the method's own row)."""
        return {}

    def extra_metrics(self) -> dict[str, float]:
        """Scalars this run adds to its result rows (e.g. Stage 1 steps, JTT's error-set size)."""
        return {}

    # --- evaluation --------------------------------------------------------------------------------------------
    def in_final_phase(self) -> bool:
        """Whether the module now trains the network it reports. Two-phase methods (Sebra's ranking, JTT's
        identification) override it; their first-phase epochs are neither validated nor selectable."""
        return True

    @property
    def selectable(self) -> bool:
        """Whether this epoch's validation may select the checkpoint. Fixed at epoch start, because two-phase
        methods switch phase in ``on_train_epoch_end``, before the epoch's validation and checkpoint run."""
        return getattr(self, "_selectable_epoch", self.in_final_phase())

    @override
    def on_train_epoch_start(self) -> None:
        self._selectable_epoch = self.in_final_phase()

    def fit_finished(self) -> bool:
        """Whether the module already trained everything it trains (a fit resumed from the ``last.ckpt`` of a
        finished fit)."""
        return False

    @override
    def on_train_start(self) -> None:
        if self.fit_finished():  # the module ends the fit itself; resumed after its end it would never stop
            rank_zero_info(
                f"{type(self).__name__}: the checkpoint holds a finished fit; nothing left to train"
            )
            self.trainer.should_stop = True

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._selectable_epoch = self.in_final_phase()  # subclasses restore their phase first, then call this

    # --- the NaN guard: every method, automatic or manual optimization -----------------------------------------
    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._batch_idx = batch_idx  # named by the NaN guard's message

    @override
    def on_before_backward(self, loss: torch.Tensor) -> None:
        """Stop at the first non-finite loss, before it reaches the weights
        (:func:`~sebra.methods.finite.check_finite_loss`): a NaN fit would otherwise run on, report chance accuracy
        and write a ranking of NaN scores."""
        check_finite_loss(self, loss, getattr(self, "_batch_idx", None))

    def _eval_step(self, batch: dict, split: str) -> None:
        logits = self(batch["image"])
        labels, groups = batch["label"], batch["group"]
        valid = batch.get("valid")  # padding rows of a data-parallel shard (see SebraDataModule.eval_loader)
        if valid is not None and not bool(valid.all()):
            logits, labels, groups = logits[valid], labels[valid], groups[valid]
        self.metrics[split].update(logits, labels, groups)

    @override
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.selectable:
            self._eval_step(batch, "val")

    @override
    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metric(self, split: str) -> dict[str, float]:
        metric = self.metrics[split]
        if not metric.update_called:
            return {}
        res = metric.compute()
        metric.reset()
        out = {}
        for k, v in res.items():
            if k in ("group_acc", "cell"):
                for g, a in enumerate(torch.as_tensor(v).reshape(-1).tolist()):
                    out[f"{split}_{k}{g}"] = a
            else:
                out[f"{split}_{k}"] = float(v)
        self.log_dict(
            {k: v for k, v in out.items() if not math.isnan(v)}, sync_dist=False
        )  # empty groups: NaN
        return out

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_metric("val")

    @override
    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_metric("test")

    # --- selection ---------------------------------------------------------------------------------------------
    @override
    def configure_callbacks(self) -> list:
        """A :class:`~sebra.methods.checkpoints.SelectionCheckpoint` (the checkpoint tested) and a
        :class:`~sebra.methods.checkpoints.LastCheckpoint` (``last.ckpt``, to resume).

        Lightning lets callbacks returned here *replace* Trainer callbacks of the same class or a parent class: a
        ``ModelCheckpoint`` (or a plain ``SelectionCheckpoint``) passed in ``Trainer(callbacks=[...])`` (and the
        Trainer's default one) is dropped, with an info message. To keep a checkpoint callback of your own, pass an instance of a ``ModelCheckpoint``
        *subclass* (e.g. ``class MyCheckpoint(ModelCheckpoint): pass``); it is kept beside these two.
        ``Trainer(enable_checkpointing=False)`` turns both off.
        """
        trainer = self._trainer
        if trainer is not None and not trainer.checkpoint_callbacks:
            return []  # enable_checkpointing=False
        if trainer is not None and any(is_module_checkpoint(c) for c in trainer.checkpoint_callbacks):
            return []  # test/validate after fit on the same Trainer: keep the fit's instances (one per purpose)
        self.selection = resolve_selection(self.selection, self.datamodule, type(self).__name__)
        return checkpoint_callbacks(self.selection)


class EpochLimited(BaseMethod):
    """A one-phase method that trains ``hparams.epochs`` epochs and stops the trainer itself (so the Trainer may
    run with ``max_epochs=-1``), and knows a resumed fit that already ran them all."""

    @override
    def on_train_epoch_end(self) -> None:
        if self.current_epoch + 1 >= self.hparams.epochs:
            self.trainer.should_stop = True

    @override
    def fit_finished(self) -> bool:
        """True once every configured epoch has run."""
        return self.current_epoch >= self.hparams.epochs

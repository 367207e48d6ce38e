"""Methods that train two networks one after the other in one ``trainer.fit`` (Sebra and JTT)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import Selection
from sebra.methods._devices import allow_unused_parameters
from sebra.methods._optim import cosine_lr
from sebra.methods.base import BaseMethod
from sebra.methods.finite import NonFiniteScores, nonfinite_scores_message, phase_step

__all__ = ["DONE", "TwoPhaseMethod"]

DONE = "done"


class TwoPhaseMethod(BaseMethod):
    """Two networks trained one after the other in one ``trainer.fit``; one Lightning epoch is one epoch (or ranking
    step) of the phase in progress, named in ``stage`` (``FIRST``, ``FINAL``, then ``"done"``).

    The first phase trains a network that only serves the second (Sebra's ranker, JTT's identification network): its
    epochs are neither validated nor selectable. The final phase trains ``net``, the network validated, selected and
    tested, for ``hparams.epochs`` epochs (counted in ``final_epoch``, with the cosine schedule when
    ``hparams.lr_schedule`` asks for it); then the module ends the fit itself, so use ``Trainer(max_epochs=-1)``.
    Each network has its own optimizer (``configure_optimizers`` returns them in phase order), stepped by hand, and
    the training loader is rebuilt every epoch (the subclass's ``train_loader``).

    Subclasses name the phases (``FIRST``, ``FINAL``) and define :meth:`first_network`, :meth:`first_optimizer`,
    :meth:`epochs_needed` (with ``EPOCHS_NEEDED``, what it adds up) and :meth:`end_first_phase_epoch`, which calls
    :meth:`start_final_phase` when the first phase is over.
    """

    FIRST: ClassVar[str]
    FINAL: ClassVar[str]
    EPOCHS_NEEDED: ClassVar[str]

    def __init__(self, selection: Selection = "val_wga", num_classes: int | None = None) -> None:
        super().__init__(selection=selection, num_classes=num_classes)
        self.automatic_optimization = False
        self.stage = self.FIRST
        self.final_epoch = 0  # final-phase epochs completed
        self.net: Classifier | None = None

    # --- what subclasses define ----------------------------------------------------------------------------------
    def first_network(self) -> nn.Module:
        """The network the first phase trains."""
        raise NotImplementedError

    def first_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of :meth:`first_network`."""
        raise NotImplementedError

    def epochs_needed(self) -> int:
        """The Lightning epochs the whole fit may take (``Trainer(max_epochs)`` must allow them)."""
        raise NotImplementedError

    def end_first_phase_epoch(self) -> None:
        """Close an epoch of the first phase (and start the final phase after its last)."""
        raise NotImplementedError

    # --- phases --------------------------------------------------------------------------------------------------
    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network being trained: the first phase's, then ``net``."""
        return (self.first_network() if self.stage == self.FIRST else self.net)(x)

    def in_final_phase(self) -> bool:
        """True once the first phase is over: only the final phase's epochs are selectable."""
        return self.stage != self.FIRST

    def fit_finished(self) -> bool:
        """True once the final phase has run its epochs."""
        return self.stage == DONE

    def start_final_phase(self) -> None:
        """Switch to the final phase, or end the fit when it has no epochs (Sebra's ``rank_only``)."""
        self.stage = self.FINAL if self.hparams.epochs > 0 else DONE
        if self.stage == DONE:
            self.trainer.should_stop = True

    @override
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.first_optimizer(), self.optimizer_for(self.net.parameters())]

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        allow_unused_parameters(self)
        if stage == "fit":
            need = self.epochs_needed()
            max_epochs = self.trainer.fit_loop.max_epochs
            if max_epochs is not None and max_epochs != -1 and max_epochs < need:
                raise ValueError(
                    f"Trainer(max_epochs={max_epochs}) is too small for {self.EPOCHS_NEEDED} = {need}; use "
                    f"Trainer(max_epochs=-1): {type(self).__name__} ends the fit itself"
                )
            self.trainer.reload_dataloaders_every_n_epochs = 1  # the training loader changes with the phase

    def optimizer_step_on(self, optimizer: Any, loss: torch.Tensor) -> None:
        """One manual optimization step of ``loss`` with ``optimizer``."""
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.log(
            "stage", 1.0 if self.stage == self.FIRST else 2.0, prog_bar=True, on_step=False, on_epoch=True
        )

    @override
    def on_train_epoch_end(self) -> None:
        if self.stage == self.FIRST:
            where = phase_step(self)  # before the epoch's counters move on
            try:  # the first phase's scoring (Sebra's ranking step, JTT's identification)
                self.end_first_phase_epoch()
            except NonFiniteScores as e:
                raise NonFiniteScores(nonfinite_scores_message(self, e, where)) from None
        elif self.stage == self.FINAL:
            self.final_epoch += 1
            h = self.hparams
            if h.lr_schedule == "cosine":
                cosine_lr(self.optimizers()[1], self.final_epoch, h.epochs)
            if self.final_epoch >= h.epochs:
                self.stage = DONE
                self.trainer.should_stop = True

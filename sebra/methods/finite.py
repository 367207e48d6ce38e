"""The NaN guard every method shares: a fit stops at the first non-finite loss or score, in one line that names the
phase, the step and the likely causes, instead of training on (and ranking from, and reporting) NaN."""

from __future__ import annotations

from typing import Any

import torch

from sebra.methods.phase import current_phase

__all__ = ["NonFiniteError", "NonFiniteScores", "check_finite_loss", "nonfinite_scores_message", "phase_step"]


class NonFiniteError(ValueError):
    """A loss or score became NaN or infinite (a ``ValueError``: the commands print its message alone)."""


class NonFiniteScores(NonFiniteError):
    """A scoring pass (:func:`sebra.scoring.score_loader`) produced a NaN or infinite score."""


def phase_step(module: Any, batch_idx: int | None = None) -> str:
    """Where ``module``'s fit is: ``"Stage 1 ranking step 2"``, ``"ERM epoch 3"``, with the batch when known."""
    phase = current_phase(module)
    batch = f", batch {batch_idx + 1}" if batch_idx is not None else ""
    return f"{phase.name} {phase.unit} {phase.index}{batch}"


def _lr_name(module: Any) -> str:
    """The learning-rate argument of the phase in progress (``rank_lr`` in Sebra's Stage 1, ``id_lr`` in JTT's
    identification, else ``lr``), with its value."""
    h = getattr(module, "hparams", {}) or {}
    stage = getattr(module, "stage", None)
    name = {"rank": "rank_lr", "identify": "id_lr"}.get(stage, "lr")
    if h.get(name) is None:
        name = "lr"
    value = h.get(name)
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value!r}"


def _causes(module: Any) -> str:
    trainer = getattr(module, "_trainer", None)
    precision = str(getattr(trainer, "precision", "32-true")) if trainer is not None else "32-true"
    half = (
        f", or {precision} precision overflowing (try Trainer(precision='32-true'))"
        if "16" in precision
        else ""
    )
    return (
        f"likely causes: a learning rate too high ({_lr_name(module)}), a normalisation with std 0 or inputs "
        f"that are not finite (data mean/std){half}"
    )


def check_finite_loss(module: Any, loss: torch.Tensor, batch_idx: int | None = None) -> None:
    """Raise :class:`NonFiniteError` when ``loss`` holds a NaN or infinity, before it is back-propagated."""
    if bool(torch.isfinite(loss.detach()).all()):
        return
    value = loss.detach().float().reshape(-1)[~torch.isfinite(loss.detach().float().reshape(-1))][0].item()
    raise NonFiniteError(
        f"{type(module).__name__}: the training loss is {value} at {phase_step(module, batch_idx)}; "
        f"stopped before training on it ({_causes(module)})"
    )


def nonfinite_scores_message(module: Any, error: Exception, where: str | None = None) -> str:
    """One line for a scoring pass that found non-finite scores (:func:`sebra.scoring.score_loader`'s ``error``),
    naming the module's phase and step (``where``, default :func:`phase_step` now)."""
    return f"{type(module).__name__}: {error} at {where or phase_step(module)} ({_causes(module)})"

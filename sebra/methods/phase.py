"""Where a fit is, as each method says it (:meth:`~sebra.methods.base.BaseMethod.phase`): the console's progress
lines and the non-finite-loss messages read this one value instead of each method's counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Phase", "as_int", "current_phase", "epoch_phase"]


@dataclass(frozen=True)
class Phase:
    """Where a fit is.

    Attributes:
        name: the phase (``"Stage 1"``, ``"Stage 1 run 2/3"``, ``"Stage 2"``, ``"ERM"``, ``"JTT identification"``).
        unit: what it counts (``"ranking step"``, ``"epoch"``).
        index: the unit in progress, from 1.
        total: how many units the phase has (at most, with ``early_end``), or ``None``.
        early_end: the phase may end before ``total`` (Stage 1 ends once every sample is eliminated).
    """

    name: str
    unit: str
    index: int
    total: int | None = None
    early_end: bool = False


def as_int(value: Any) -> int | None:
    """``int(value)``, or ``None`` when it is not a number (an unset hyper-parameter)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def epoch_phase(module: Any, name: str | None = None) -> Phase:
    """A one-phase fit: epoch ``current_epoch + 1`` of ``hparams.epochs``, named ``name`` or the module's class name
    without ``Module`` (``ERMModule`` -> ``"ERM"``)."""
    h = getattr(module, "hparams", {}) or {}
    if name is None:
        cls = type(module).__name__
        name = cls.removesuffix("Module") or cls
    return Phase(name, "epoch", int(getattr(module, "current_epoch", 0)) + 1, as_int(h.get("epochs")))


def current_phase(module: Any) -> Phase:
    """The phase ``module`` trains in now: its own :meth:`~sebra.methods.base.BaseMethod.phase` when it has one,
    else (a LightningModule of the user's) :func:`epoch_phase`."""
    phase = getattr(module, "phase", None)
    return phase() if callable(phase) else epoch_phase(module)

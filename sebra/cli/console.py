"""What the commands print while they train: Lightning's chatter muted, and one progress line per training phase.

:func:`quiet_lightning` keeps sebra's own messages (``ranking step 3: eliminated 36, 1 active``) and real warnings and
drops Lightning's banners, tips and notices; ``--verbose`` on a command skips it. :class:`PhaseProgress` is a Lightning
callback that shows the phase a method is in (Stage 1 ranking step, Stage 2 epoch, ERM epoch, ...), how far it is, the
time spent and an estimate of the time left: one line updated in place on a terminal, plain lines in a log file. It only
reads the module's counters (no random numbers drawn, no forward pass), so a run's results do not depend on it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from sebra.methods.phase import Phase, current_phase

__all__ = ["NOISE_WARNINGS", "Phase", "PhaseProgress", "current_phase", "format_duration", "quiet_lightning"]

#: Warnings (message patterns) that say nothing about the user's run: Lightning's default-logger notice, the pytree
#: deprecation Lightning's own calls trigger in recent torch, the notices of a folder written again.
NOISE_WARNINGS = (
    r".*`tensorboardX` has been removed as a dependency.*",
    r".*LeafSpec.*",
    r".*does not have many workers.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*Checkpoint directory .* exists and is not empty.*",
)

_PARENT_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
#: Where ``rank_zero_info`` logs, for Lightning's messages and for sebra's alike (the record's file tells them apart).
_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


def _package_dirs() -> tuple[str, ...]:
    import lightning_utilities

    dirs = set()
    for module in (L, lightning_utilities):
        folder = os.path.dirname(module.__file__ or "")
        dirs |= {folder + os.sep, os.path.realpath(folder) + os.sep}
    return tuple(sorted(dirs))


class _DropLightningInfo(logging.Filter):
    """Lets warnings through, and the info messages of code outside Lightning (sebra's ``rank_zero_info`` lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.dirs = _package_dirs()

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.dirs)


@contextlib.contextmanager
def quiet_lightning(verbose: bool = False, own_messages: bool = True) -> Iterator[None]:
    """Inside the block, no Lightning info lines (GPU/TPU available, tips, the callbacks-override notice, model
    summary, "Restoring states ...") and none of its "possible user" warnings or :data:`NOISE_WARNINGS`.

    Args:
        verbose: change nothing (the commands' ``--verbose``).
        own_messages: keep the info messages sebra logs through Lightning (Stage 1's per-step eliminations, JTT's
            error set); ``False`` mutes them too (the benchmark runner, many runs in one log).
    """
    if verbose:
        yield
        return
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    parents = [logging.getLogger(n) for n in _PARENT_LOGGERS]
    rank_zero = [logging.getLogger(n) for n in _RANK_ZERO_LOGGERS]
    levels = [(lg, lg.level) for lg in parents + rank_zero]
    drop = _DropLightningInfo()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        for pattern in NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for lg in parents:
            lg.setLevel(logging.WARNING)
        for lg in rank_zero:
            lg.setLevel(logging.INFO if own_messages else logging.WARNING)
            lg.addFilter(drop)
        try:
            yield
        finally:
            for lg in rank_zero:
                lg.removeFilter(drop)
            for lg, level in levels:
                lg.setLevel(level)


# ---------------------------------------------------------------------------------------------------- progress
def format_duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


class PhaseProgress(Callback):
    """One progress line per training phase: the unit in progress (``Stage 1 ranking step 2/12``, ``Stage 2 epoch
    3/8``, ``ERM epoch 4/10``), the batch within it, the phase's elapsed time and its ETA; a closing line per
    phase (``Stage 2: 8 epochs in 1:02``).

    On a terminal the line is redrawn in place (and cleared at each epoch end, so the module's own messages, e.g.
    the ranking step's eliminations, print on lines of their own); elsewhere (a CI log) a plain line is printed at
    each epoch end and at most every ``every`` seconds within an epoch. The ETA extrapolates the phase's time per
    unit so far; for Stage 1 it assumes all ``max_steps`` run, so it is shown as an upper estimate (``ETA ≤``).
    Global rank 0 only.

    Args:
        stream: where to write (default ``sys.stderr`` at the time of writing).
        every: seconds between plain lines within an epoch (no terminal).
        refresh: seconds between redraws on a terminal.
        clock: the time source (tests).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        every: float = 60.0,
        refresh: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.stream, self.every, self.refresh, self.clock = stream, every, refresh, clock
        self.phase: Phase | None = None
        self._key: tuple[str, str] | None = None
        self._start = self._drawn = self._printed = 0.0
        self._units = 0  # units finished in this phase (by this process: a resumed fit starts at 0)
        self._part = 0.0  # share of the unit in progress done
        self._batch, self._batches = 0, 0.0
        self._open = False  # a partial line is on the terminal
        self._tty = False  # self.tty, read once per epoch (not a system call per batch)

    # --- output -------------------------------------------------------------------------------------------------
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    @property
    def tty(self) -> bool:
        """Whether the stream is a terminal (lines redrawn in place)."""
        try:
            return bool(self._out().isatty())
        except (AttributeError, ValueError):
            return False

    def _write(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()

    def _clear(self) -> None:
        if self._open:
            self._write("\r\x1b[K")
            self._open = False

    def _draw(self, status: str = "", force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._drawn < self.refresh:
            return
        self._drawn = now
        self._write("\r\x1b[K" + self.line(now, status))
        self._open = True

    def _print(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")

    # --- the text -----------------------------------------------------------------------------------------------
    def eta(self, now: float) -> float | None:
        """Seconds left in the phase at time ``now``, or ``None`` before the first batch (or without a total)."""
        ph = self.phase
        if ph is None or ph.total is None:
            return None
        done = self._units + self._part
        if done <= 0:
            return None
        left = max(0.0, ph.total - (ph.index - 1) - self._part)
        return (now - self._start) / done * left

    def line(self, now: float, status: str = "") -> str:
        """The progress text at time ``now`` (``status``, e.g. ``validating``, in place of the batch count)."""
        ph = self.phase
        if ph is None:
            return ""
        parts = [f"{ph.name} {ph.unit} {ph.index}" + (f"/{ph.total}" if ph.total else "")]
        if status:
            parts.append(status)
        elif self._batches and math.isfinite(self._batches):
            parts.append(f"batch {self._batch}/{int(self._batches)}")
        parts.append(f"{format_duration(now - self._start)} elapsed")
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"ETA {'≤ ' if ph.early_end else ''}{format_duration(eta)}")
        return " · ".join(parts)

    def _close_phase(self) -> None:
        ph = self.phase
        if ph is not None and self._units:
            self._print(
                f"{ph.name}: {_plural(self._units, ph.unit)} in {format_duration(self.clock() - self._start)}"
            )
        self._clear()
        self.phase, self._key = None, None

    # --- Lightning hooks ----------------------------------------------------------------------------------------
    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        ph = current_phase(pl_module)
        if (ph.name, ph.unit) != self._key:
            self._close_phase()
            self._key, self._start, self._units = (ph.name, ph.unit), self.clock(), 0
            self._printed = self._start
        self.phase = ph
        self._part, self._batch, self._batches = 0.0, 0, float(trainer.num_training_batches or 0)
        self._tty = self.tty
        if self._tty:
            self._draw(force=True)

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero or self.phase is None:
            return
        self._batch = batch_idx + 1
        if self._batches and math.isfinite(self._batches):
            self._part = min(1.0, self._batch / self._batches)
        if self._tty:
            self._draw()
        elif self.clock() - self._printed >= self.every:
            self._printed = self.clock()
            self._print(self.line(self._printed))

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking and self.phase is not None and self._tty:
            self._draw("validating", force=True)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before the module's own on_train_epoch_end (Stage 1 scores and eliminates there, and says so).
        if not trainer.is_global_zero or self.phase is None:
            return
        self._part = 1.0
        if self._tty:
            self._clear()
        else:
            self._printed = self.clock()
            self._print(self.line(self._printed))
        self._units, self._part = self._units + 1, 0.0

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._close_phase()

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._tty = self.tty

    @override
    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.is_global_zero and self._tty:
            total = trainer.num_test_batches[dataloader_idx] if trainer.num_test_batches else 0
            shown = f"/{int(total)}" if total and math.isfinite(total) else ""
            self._write(f"\r\x1b[KTest batch {batch_idx + 1}{shown}")
            self._open = True

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._clear()

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self._open:
            self._write("\n")  # the traceback starts on a line of its own
            self._open = False

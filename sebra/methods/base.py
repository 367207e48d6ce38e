"""What every sebra method shares: group metrics on val/test, model selection, checkpoints to resume from,
optimizer construction, data-parallel and GPU settings."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from typing_extensions import override

from sebra.metrics import GroupAccuracy
from sebra.utils.files import remove_stale_temporaries
from sebra.utils.rng import GeneratorPickling

__all__ = [
    "OPTIMIZERS",
    "SELECTIONS",
    "BaseMethod",
    "LastCheckpoint",
    "SelectionCheckpoint",
    "check_args",
    "check_backbone",
    "make_optimizer",
    "require",
]

Selection = Literal["val_wga", "val_acc", "last"]
SELECTIONS = ("val_wga", "val_acc", "last")
OPTIMIZERS = ("sgd", "adam", "adamw")


def require(
    owner: str,
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    none_ok: bool = False,
    note: str = "",
) -> None:
    """Raise ``ValueError`` unless ``value`` is a number (an integer with ``integer``) in the allowed range.

    The message names the class, the argument, the allowed range and the value, e.g.
    ``SebraModule: gap must be >= 1 (an integer), got 2.5``.

    Args:
        owner: the class whose constructor checks (shown first).
        name: the argument.
        low, high: inclusive bounds (``low_open``: ``low`` itself is excluded).
        none_ok: ``None`` is allowed too.
        note: appended in parentheses (what the value means).
    """
    if value is None and none_ok:
        return
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        rng = f"in {'(' if low_open else '['}{low}, {high}]"
    elif low is not None:
        rng = f"{'>' if low_open else '>='} {low}"
    elif high is not None:
        rng = f"<= {high}"
    else:
        rng = ""
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    ok = ok and not (isinstance(value, float) and math.isnan(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        alt = " or None" if none_ok else ""
        what = f"{rng}{alt} ({kind}{'; ' + note if note else ''})" if rng else f"{kind}{alt}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")


def check_backbone(owner: str, name: Any) -> None:
    """Raise ``ValueError`` when ``name`` is not a timm model name (``resnet50``, ``resnet50.tv_in1k``, ...).

    Names with a scheme (``hf-hub:...``, ``local-dir:...``) are left to ``timm.create_model`` at fit time.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{owner}: backbone must be a timm model name such as 'resnet50', got {name!r}")
    if ":" in name:
        return
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=3, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ValueError(
        f"{owner}: unknown model: backbone {name!r} is not a timm model name{hint} "
        "(timm.list_models('pattern*') lists them)"
    )


def make_optimizer(
    name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``sgd`` / ``adam`` / ``adamw`` by name, so configs stay flat."""
    name = str(name).lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


#: The allowed range of each constructor argument the methods share (``require``'s keywords), by name.
ARG_RULES: dict[str, dict[str, Any]] = {
    "epochs": {"integer": True, "low": 1},
    "id_epochs": {"integer": True, "low": 1},
    "max_steps": {"integer": True, "low": 1, "note": "ranking steps"},
    "gap": {"integer": True, "low": 1, "note": "positives come from rank r + gap or higher"},
    "batch_size": {"integer": True, "low": 1, "none_ok": True},
    "rank_bins": {"integer": True, "low": 2, "none_ok": True},
    "num_classes": {"integer": True, "low": 2, "none_ok": True},
    "seed": {"integer": True},
    "lr": {"low": 0, "low_open": True},
    "rank_lr": {"low": 0, "low_open": True},
    "id_lr": {"low": 0, "low_open": True, "none_ok": True},
    "momentum": {"low": 0},
    "rank_momentum": {"low": 0},
    "weight_decay": {"low": 0},
    "rank_weight_decay": {"low": 0},
    "id_weight_decay": {"low": 0, "none_ok": True},
    "temperature": {"low": 0, "low_open": True},
    "ce_weight": {"low": 0, "note": "the weight lambda of the cross-entropy term"},
    "upweight": {"low": 1, "note": "1 = plain ERM retraining"},
    "eta": {"low": 0},
    "adjustment": {"low": 0},
}
ARG_CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "rank_optimizer": OPTIMIZERS,
    "lr_schedule": ("none", "cosine"),
}


def check_args(owner: str, rules: dict[str, dict[str, Any]] | None = None, /, **values: Any) -> None:
    """Check constructor arguments against :data:`ARG_RULES` / :data:`ARG_CHOICES` (``rules`` overrides them);
    ``backbone`` must be a timm model name (:func:`check_backbone`). Raises ``ValueError`` naming ``owner``, the
    argument, what is allowed and the value given."""
    rules = {**ARG_RULES, **(rules or {})}
    for name, value in values.items():
        if name == "backbone":
            check_backbone(owner, value)
        elif name in ARG_CHOICES:
            case_free = name.endswith("optimizer")  # make_optimizer reads SGD as sgd
            if not isinstance(value, str) or (value.lower() if case_free else value) not in ARG_CHOICES[name]:
                raise ValueError(
                    f"{owner}: {name} must be one of {', '.join(ARG_CHOICES[name])}, got {value!r}"
                )
        else:
            require(owner, name, value, **rules[name])


class SelectionCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that ignores epochs the module marks as not selectable (Sebra's ranking steps)."""

    def _selectable(self, pl_module: L.LightningModule) -> bool:
        return bool(getattr(pl_module, "selectable", True))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._selectable(pl_module):
            super().on_validation_end(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._selectable(pl_module):
            super().on_train_epoch_end(trainer, pl_module)


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` at the end of every training epoch, Sebra's ranking steps included: the one to resume from.

    It saves after the module's own ``on_train_epoch_end`` (Lightning runs checkpoint callbacks last), so the file
    holds the state *after* the epoch's ranking step or mitigation epoch was closed, and
    ``trainer.fit(..., ckpt_path=<dir>/last.ckpt)`` (or ``ckpt_path="last"``) continues with the next epoch.
    It never selects: :class:`SelectionCheckpoint` keeps the checkpoint used for testing.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.update(monitor=None, save_top_k=0, save_last=True, save_on_train_epoch_end=True)
        super().__init__(**kwargs)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return  # only at the end of the training epoch (after the module's epoch-end hook)


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: 4-d inputs in ``channels_last`` memory format (module level: picklable)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


class BaseMethod(GeneratorPickling, L.LightningModule):
    """Base LightningModule: per-split :class:`GroupAccuracy`, logging of its results, model selection.

    Subclasses build their networks in ``configure_model`` (the data module tells the number of classes and the
    group layout) and define ``forward`` (logits of the network being evaluated) and ``training_step``.

    Args:
        selection: checkpoint kept for testing: ``val_wga`` (best validation worst-group accuracy: uses validation
            group labels, the paper's protocol for UrbanCars and CelebA), ``val_acc`` (best validation accuracy: no
            group labels at all) or ``last``.
        num_classes: defaults to the data module's.
    """

    def __init__(self, selection: Selection = "val_wga", num_classes: int | None = None) -> None:
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.selection = selection
        self.num_classes = num_classes
        self.metrics = torch.nn.ModuleDict()

    # --- set-up from the data module ---------------------------------------------------------------------------
    @property
    def datamodule(self) -> Any:
        """The trainer's data module, or None outside a fit."""
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    @override
    def setup(self, stage: str) -> None:
        self._allow_unused_parameters()
        dm = self.datamodule
        if self.num_classes is None:
            if dm is None:
                raise ValueError("num_classes is not set and no datamodule was given to the trainer")
            self.num_classes = dm.num_classes
        if not self.metrics:
            for split in ("val", "test"):
                self.metrics[split] = self._make_metric(dm, split)
        if stage == "fit":
            self._check_given_rankings(dm)
            self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files a killed run left in the log folder (a resumed run continues there)."""
        trainer = self._trainer
        if trainer is None:
            return
        log_dir = trainer.log_dir  # a broadcast under data parallelism: every process must ask
        if log_dir and trainer.is_global_zero:
            for tmp in remove_stale_temporaries(log_dir):
                rank_zero_info(f"removed {tmp}, a temporary file of a write that was killed")

    def _check_given_rankings(self, dm: Any) -> None:
        """A ranking table given to the module (``given_rankings``, e.g. ``SebraModule(rankings=...)``) ranks the
        training split: a row whose dataset index is not a training sample is refused."""
        given = getattr(self, "given_rankings", None)
        train = getattr(dm, "train_dataset", None) if dm is not None else None
        if given is None or train is None or "index" not in given.columns:
            return
        ids = np.asarray(given["index"].to_numpy(), dtype=np.int64)
        unknown = ~np.isin(ids, train.indices.numpy())
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise ValueError(
                f"{type(self).__name__}(rankings=...): row {i} (dataset index {ids[i]}) is not a training sample of "
                f"{train.name!r}, nor are {int(unknown.sum()) - 1} other row(s); expected one row per training sample "
                f"(the rankings of this data set's training split, {len(train)} samples)"
            )

    @staticmethod
    def _make_metric(dm: Any, split: str) -> GroupAccuracy:
        """Group layout read off the data: each group id's class and attribute values."""
        if dm is None or not getattr(dm, "splits", None) or dm.num_groups == 0:
            return GroupAccuracy(num_groups=1)
        tables = [ds.table for ds in dm.splits.values()]
        layout: dict[int, tuple[int, tuple[int, ...]]] = {}
        bias = dm.bias
        cols = list(bias.attr_names) if bias is not None else []
        for t in tables:
            t = t[t["group"] >= 0].drop_duplicates("group")
            for row in t.itertuples(index=False):
                d = row._asdict()
                layout.setdefault(int(d["group"]), (int(d["label"]), tuple(int(d[c]) for c in cols)))
        num_groups = max(layout) + 1
        if bias is None or len(layout) != num_groups:
            return GroupAccuracy(num_groups=num_groups)
        return GroupAccuracy.from_bias_spec(bias, layout)

    # --- data parallelism and GPU options -----------------------------------------------------------------------
    def _allow_unused_parameters(self) -> None:
        """Under DDP, let manually optimised modules leave parameters unused in a step.

        Sebra (ranker, then mitigation network) and JTT (identification, then final network) train one of their two
        networks at a time, so each step leaves the other's parameters without gradients, which DDP's reducer only
        accepts with ``find_unused_parameters=True``. Runs in ``setup``, before the strategy wraps the model.
        """
        trainer = self._trainer
        if trainer is None or self.automatic_optimization or trainer.world_size < 2:
            return
        strategy = trainer.strategy
        kwargs = getattr(strategy, "_ddp_kwargs", None)
        if (
            isinstance(strategy, DDPStrategy)
            and isinstance(kwargs, dict)
            and not kwargs.get("find_unused_parameters")
        ):
            kwargs["find_unused_parameters"] = True
            rank_zero_info(
                f"{type(self).__name__} trains one network at a time: DDP find_unused_parameters=True"
            )

    def _apply_gpu_options(self, *nets: nn.Module | None) -> None:
        """``channels_last`` (weights and inputs in NHWC memory format) and ``compile`` (``torch.compile`` of each
        backbone, in place, so checkpoints keep their keys), when the module's hyper-parameters ask for them."""
        channels_last = bool(getattr(self.hparams, "channels_last", False))
        compile_ = bool(getattr(self.hparams, "compile", False))
        for net in nets:
            if net is None:
                continue
            body = getattr(net, "backbone", net)
            if channels_last:
                net.to(memory_format=torch.channels_last)
                body.register_forward_pre_hook(_channels_last_input)
            if compile_:
                body.compile()

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
        finished fit). Default: the ``stage`` a two-phase method keeps (SebraModule) is ``"done"``."""
        return getattr(self, "stage", None) == "done"

    @override
    def on_train_start(self) -> None:
        if self.fit_finished():  # the module ends the fit itself; resumed after its end it would never stop
            rank_zero_info(
                f"{type(self).__name__}: the checkpoint holds a finished fit; nothing left to train"
            )
            self.trainer.should_stop = True

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._selectable_epoch = self.in_final_phase()

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
    def configure_callbacks(self) -> list:
        """A :class:`SelectionCheckpoint` (the checkpoint tested) and a :class:`LastCheckpoint` (``last.ckpt``, to resume).

        Lightning lets callbacks returned here *replace* Trainer callbacks of the same class or a parent class: a
        ``ModelCheckpoint`` passed in ``Trainer(callbacks=[...])`` (and the Trainer's default one) is dropped, with an
        info message. To keep a checkpoint callback of your own, pass an instance of a ``ModelCheckpoint``
        *subclass* (e.g. ``class MyCheckpoint(ModelCheckpoint): pass``); it is kept beside these two.
        ``Trainer(enable_checkpointing=False)`` turns both off.
        """
        trainer = self._trainer
        if trainer is not None and not trainer.checkpoint_callbacks:
            return []  # enable_checkpointing=False
        last = LastCheckpoint()
        if self.selection == "last":
            return [SelectionCheckpoint(monitor=None, save_last=False, filename="last-{epoch}"), last]
        monitor = self.selection  # val_wga or val_acc, as logged above
        return [
            SelectionCheckpoint(
                monitor=monitor,
                mode="max",
                save_top_k=1,
                filename=f"best-{{epoch}}-{{{monitor}:.4f}}",
                auto_insert_metric_name=False,
            ),
            last,
        ]

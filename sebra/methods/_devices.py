"""Data parallelism and GPU options of the methods: DDP settings for two-network methods, ``channels_last`` and
``torch.compile``."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

__all__ = ["allow_unused_parameters", "apply_gpu_options"]


def allow_unused_parameters(module: L.LightningModule) -> None:
    """Under DDP, let a manually optimised module leave parameters unused in a step.

    Sebra (ranker, then mitigation network) and JTT (identification, then final network) train one of their two
    networks at a time, so each step leaves the other's parameters without gradients, which DDP's reducer only
    accepts with ``find_unused_parameters=True``. Call it in ``setup``, before the strategy wraps the model.

    Lightning has no public setter for the keyword arguments a constructed ``DDPStrategy`` passes to
    ``DistributedDataParallel``, so this sets its private ``_ddp_kwargs`` (left alone when that attribute is
    missing, and when the user already set the option).
    """
    trainer = module._trainer
    if trainer is None or module.automatic_optimization or trainer.world_size < 2:
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
            f"{type(module).__name__} trains one network at a time: DDP find_unused_parameters=True"
        )


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: 4-d inputs in ``channels_last`` memory format (module level: picklable)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def apply_gpu_options(*nets: nn.Module | None, channels_last: bool = False, compile: bool = False) -> None:
    """``channels_last`` (weights and inputs in NHWC memory format) and ``compile`` (``torch.compile`` of each
    backbone, in place, so checkpoints keep their keys) on each network (``None`` entries are skipped)."""
    for net in nets:
        if net is None:
            continue
        body = getattr(net, "backbone", net)
        if channels_last:
            net.to(memory_format=torch.channels_last)
            body.register_forward_pre_hook(_channels_last_input)
        if compile:
            body.compile()

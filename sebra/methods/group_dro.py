"""GroupDRO (Sagawa et al., ICLR 2020): minimise the worst training-group loss through online group weights.

This is a reference that **uses training group labels**, which Sebra, JTT and ERM never see; the benchmark tables
mark it as such. The reweighting is a plain :class:`torch.nn.Module` with buffers (:class:`GroupDROLoss`), apart from
the LightningModule, so its update can be checked against a hand computation without a Trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from sebra.methods._args import check_args
from sebra.methods.erm import ERMModule

__all__ = ["GroupDROLoss", "GroupDROModule"]


class GroupDROLoss(nn.Module):
    """Online group DRO objective with exponentiated-gradient group weights ``q`` (a buffer, saved in checkpoints).

    Per batch, with ``loss_g`` the mean loss of group ``g``'s samples in the batch:

    1. for every group **present** in the batch, ``q_g <- q_g * exp(eta * (loss_g + C_g / sqrt(n_g)))`` (no gradient);
    2. ``q <- q / sum(q)``;
    3. return ``sum_g q_g * loss_g`` with the **updated** ``q`` (absent groups contribute 0).

    This is ``LossComputer.compute_robust_loss`` of the reference code (kohpangwei/group_DRO ``loss.py``), whose
    update also multiplies absent groups by ``exp(eta * 0) = 1``; the only difference is that an adjustment ``C_g``
    is not added for absent groups here (the brief and the paper's Algorithm 1 update present groups only).

    Args:
        num_groups: number of group ids ``G`` (ids ``0 .. G-1``).
        eta: step size of the group-weight update (the reference code's ``--robust_step_size``, default 0.01).
        adjustment: generalisation adjustment ``C`` (one value, or one per group); 0 (default) turns it off.
        group_counts: ``[G]`` training samples per group (``n_g``); needed when ``adjustment`` is non-zero.
    """

    q: torch.Tensor
    adjust: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        eta: float = 0.01,
        adjustment: float | Sequence[float] = 0.0,
        group_counts: torch.Tensor | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if int(num_groups) < 1:
            raise ValueError(f"GroupDROLoss: num_groups must be >= 1, got {num_groups}")
        if not eta >= 0:
            raise ValueError(f"GroupDROLoss: eta must be >= 0, got {eta}")
        self.num_groups = int(num_groups)
        self.eta = float(eta)
        c = torch.as_tensor(adjustment, dtype=torch.float32).reshape(-1)
        if c.numel() == 1:
            c = c.expand(self.num_groups).clone()
        if c.numel() != self.num_groups:
            raise ValueError(f"GroupDROLoss: adjustment needs 1 or {self.num_groups} values, got {c.numel()}")
        if (c != 0).any():
            if group_counts is None:
                raise ValueError(
                    "GroupDROLoss: a non-zero adjustment needs group_counts (training samples per group)"
                )
            n = torch.as_tensor(group_counts, dtype=torch.float32).reshape(-1)
            if n.numel() != self.num_groups:
                raise ValueError(
                    f"GroupDROLoss: group_counts needs {self.num_groups} values, got {n.numel()}"
                )
            if ((n <= 0) & (c != 0)).any():
                g = int(torch.nonzero((n <= 0) & (c != 0))[0])
                raise ValueError(
                    f"GroupDROLoss: group {g} has no training samples, so C/sqrt(n_g) is undefined"
                )
            c = torch.where(c != 0, c / n.clamp(min=1).sqrt(), torch.zeros_like(c))
        self.register_buffer("q", torch.full((self.num_groups,), 1.0 / self.num_groups))
        self.register_buffer("adjust", c)  # C_g / sqrt(n_g), precomputed

    def group_losses(self, losses: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss_g [G], count_g [G])``: per-group mean of ``losses`` (0 where a group is absent)."""
        groups = groups.long()
        if groups.numel() and (groups.min() < 0 or groups.max() >= self.num_groups):
            raise ValueError(
                f"GroupDROLoss: group ids must lie in 0..{self.num_groups - 1}, got values in "
                f"{int(groups.min())}..{int(groups.max())} (GroupDRO needs a group for every sample)"
            )
        count = torch.bincount(groups, minlength=self.num_groups).to(losses.dtype)
        total = torch.zeros(self.num_groups, dtype=losses.dtype, device=losses.device).index_add(
            0, groups, losses
        )
        return total / count.clamp(min=1), count

    def forward(self, losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Update ``q`` from this batch and return the robust loss.

        Args:
            losses: ``[B]`` per-sample losses (with gradient).
            groups: ``[B]`` group ids in ``0 .. G-1``.
        """
        if losses.dim() != 1 or losses.shape != groups.shape:
            raise ValueError(
                f"GroupDROLoss: expected losses [B] and groups [B], got {tuple(losses.shape)} and "
                f"{tuple(groups.shape)}"
            )
        loss_g, count = self.group_losses(losses, groups)
        if self.training:
            with torch.no_grad():
                present = count > 0
                step = self.eta * (loss_g.detach().float() + self.adjust)
                q = self.q * torch.where(present, torch.exp(step), torch.ones_like(step))
                self.q.copy_(q / q.sum())
        return (self.q.to(loss_g.dtype) * loss_g).sum()


class GroupDROModule(ERMModule):
    """ERM with the GroupDRO objective over the **training group labels** (the label-using oracle baseline).

    Args:
        eta: step size of the group weights (:class:`GroupDROLoss`).
        adjustment: generalisation adjustment ``C`` (0: off, the default here and in most reported runs).
        **kwargs: :class:`~sebra.methods.erm.ERMModule`'s (``sampling``: ``uniform`` or ``group_balanced``, the
            reference code's ``--reweight_groups``, used together with ``--robust`` in its published commands).
    """

    def __init__(self, eta: float = 0.01, adjustment: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_args(type(self).__name__, eta=eta, adjustment=adjustment)
        self.dro: GroupDROLoss | None = None

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.dro is not None:
            return
        dm = self.datamodule
        if dm is None:
            raise ValueError("GroupDROModule needs a datamodule (it reads the training group labels)")
        if not hasattr(dm, "train_dataset"):
            dm.setup("fit")
        train = dm.train_dataset
        groups = train.groups
        if len(groups) == 0 or (groups < 0).any():
            raise ValueError(
                f"GroupDROModule: training split of {train.name!r} has samples without a group label "
                "(group -1); GroupDRO needs a group for every training sample"
            )
        num_groups = max(int(dm.num_groups), int(groups.max()) + 1)
        counts = torch.bincount(groups, minlength=num_groups)
        self.dro = GroupDROLoss(
            num_groups, eta=self.hparams.eta, adjustment=self.hparams.adjustment, group_counts=counts
        )

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The group-DRO objective over the batch's per-sample losses."""
        losses = F.cross_entropy(logits, batch["label"], reduction="none")
        return self.dro(losses, batch["group"])

    @override
    def on_train_epoch_end(self) -> None:
        self.log_dict(
            {f"dro_q{g}": float(v) for g, v in enumerate(self.dro.q.tolist())}, on_step=False, on_epoch=True
        )
        super().on_train_epoch_end()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The loss module is built in setup(); a checkpoint loaded before it (LightningModule.load_from_checkpoint)
        # carries its buffers, so build it from their shapes.
        super().on_load_checkpoint(checkpoint)  # ERM's state (the sampling generator), then BaseMethod's
        state = checkpoint.get("state_dict", {})
        if self.dro is None and "dro.q" in state:
            self.dro = GroupDROLoss(int(state["dro.q"].numel()), eta=self.hparams.eta)

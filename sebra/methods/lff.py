r"""LfF, Learning from Failure (Nam et al., NeurIPS 2020), in the same harness as ERM.

Two networks train side by side on the same batches, from the same data, without bias labels:

* the **biased** network minimises the generalised cross-entropy (GCE, :func:`generalized_ce`, ``q = 0.7``), which
  up-weights the samples it already finds easy, so it latches onto the shortcut;
* the **debiased** network minimises cross-entropy weighted per sample by the *relative difficulty*
  ``W(x) = L_b(x) / (L_b(x) + L_d(x))``, where ``L_b``, ``L_d`` are exponential moving averages over the epochs
  (``ema_alpha = 0.7``) of each network's cross-entropy on that sample, each divided by its class's largest average
  (:class:`SampleLossEMA`). Samples the biased network fails on (bias-conflicting ones) get weights near 1.

This follows the official code (``alinlab/LfF``, ``train.py``, ``util.py::EMA``, ``module/loss.py``): the weights are
computed from the averages *after* this batch's update and carry no gradient, the GCE is ``CE * q * p_y^q`` with
``p_y`` detached (the gradient of ``(1 - p_y^q) / q`` times ``q``), and both losses are summed and stepped together.
One optimizer over both networks: Adam and AdamW keep per-parameter state, so this equals the code's two optimizers
with the same settings. The network evaluated, selected and tested is the debiased one.

Under data parallelism each process averages the losses of the samples it sees, and the class maxima are that
process's; the published protocol is single-process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import Optimizer, require
from sebra.methods.erm import ERMModule

__all__ = ["LfFModule", "SampleLossEMA", "generalized_ce", "relative_difficulty"]


def generalized_ce(logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """LfF's generalised cross-entropy per sample, as its code computes it: ``CE * q * sg(p_y)^q``.

    Args:
        logits: ``[B, C]``.
        targets: ``[B]`` class ids.
        q: the GCE exponent (LfF: 0.7); ``q -> 0`` approaches plain cross-entropy (times ``q``).

    Returns:
        ``[B]`` losses; their gradient is ``q`` times that of ``(1 - p_y^q) / q``.
    """
    p_y = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1).detach()
    return F.cross_entropy(logits, targets, reduction="none") * (p_y**q) * q


def relative_difficulty(loss_b: torch.Tensor, loss_d: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``W = L_b / (L_b + L_d + eps)`` per sample (``[B]``): near 1 where the biased network fails and the debiased
    one does not."""
    return loss_b / (loss_b + loss_d + eps)


class SampleLossEMA(nn.Module):
    """Per-sample exponential moving average of a loss, keyed by dataset index, with per-class maxima.

    ``update`` sets ``ema[i] = alpha * ema[i] + (1 - alpha * seen[i]) * loss`` (the first value is taken as is), as
    LfF's ``EMA`` class; the state lives in buffers, so checkpoints keep it.

    Args:
        indices: ``[N]`` dataset indices of the training samples.
        labels: ``[N]`` their classes.
        num_classes: number of classes.
        alpha: the averaging factor (LfF: 0.7).
    """

    def __init__(
        self, indices: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 0.7
    ) -> None:
        super().__init__()
        size = int(indices.max()) + 1 if len(indices) else 0
        slot_labels = torch.full((size,), -1, dtype=torch.long)
        slot_labels[indices.long()] = labels.long()
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)
        self.register_buffer("loss", torch.zeros(size))
        self.register_buffer("seen", torch.zeros(size))
        self.register_buffer("labels", slot_labels)

    @torch.no_grad()
    def update(self, losses: torch.Tensor, indices: torch.Tensor) -> None:
        """Fold a batch's losses ``[B]`` into the averages of dataset indices ``[B]``."""
        i = indices.long()
        self.loss[i] = self.alpha * self.loss[i] + (1 - self.alpha * self.seen[i]) * losses.detach().float()
        self.seen[i] = 1.0

    def class_max(self) -> torch.Tensor:
        """``[C]``: the largest average of each class's training samples (0 where none is seen yet)."""
        train = self.labels >= 0
        out = torch.zeros(self.num_classes, device=self.loss.device)
        return out.scatter_reduce(0, self.labels[train], self.loss[train], reduce="amax", include_self=True)

    def normalized(self, indices: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The averages of ``indices`` ``[B]``, each divided by the maximum of its class ``labels`` ``[B]``."""
        return self.loss[indices.long()] / self.class_max()[labels.long()].clamp(min=1e-8)


class LfFModule(ERMModule):
    """LfF: a GCE-trained biased network and a debiased network trained on relative-difficulty weights.

    Args:
        q: GCE exponent of the biased network (LfF: 0.7).
        ema_alpha: per-sample loss averaging factor (LfF: 0.7).
        optimizer, weight_decay: the optimizer of both networks (LfF's code: Adam, no weight decay).
        **kwargs: :class:`~sebra.methods.erm.ERMModule`'s; ``epochs`` count epochs of both networks (trained
            together), ``sampling`` must stay ``uniform`` (LfF uses no group labels), and ``seed`` initialises the
            debiased network as ``ERMModule(seed=seed)`` and the biased one from ``seed + 1``.
    """

    def __init__(
        self,
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        q: float = 0.7,
        ema_alpha: float = 0.7,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("sampling", "uniform") != "uniform":
            raise ValueError(
                f"LfFModule: sampling must be 'uniform' (LfF uses no group labels), got {kwargs['sampling']!r}"
            )
        kwargs.pop("sampling", None)
        super().__init__(optimizer=optimizer, weight_decay=weight_decay, sampling="uniform", **kwargs)
        owner = type(self).__name__
        require(owner, "q", q, low=0, high=1, low_open=True, note="the GCE exponent")
        require(owner, "ema_alpha", ema_alpha, low=0, high=1, note="per-sample loss averaging factor")
        self.bias_net: Classifier | None = None
        self.ema_b: SampleLossEMA | None = None
        self.ema_d: SampleLossEMA | None = None

    @override
    def configure_model(self) -> None:
        if self.net is None:
            self.net = self.make_classifier(self.hparams.seed)  # the debiased network: ERM's initialisation
            self.bias_net = self.make_classifier(self.hparams.seed + 1)
            self._apply_gpu_options(self.net, self.bias_net)

    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.ema_b is not None:
            return
        dm = self.datamodule
        if dm is None:
            raise ValueError("LfFModule needs a datamodule (it averages losses per training sample)")
        if not hasattr(dm, "train_dataset"):
            dm.setup("fit")
        train = dm.train_dataset
        self._make_emas(train.indices, train.labels)

    def _make_emas(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        alpha, c = self.hparams.ema_alpha, int(self.num_classes)
        self.ema_b = SampleLossEMA(indices, labels, c, alpha)
        self.ema_d = SampleLossEMA(indices, labels, c, alpha)

    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x, y, idx = batch["image"], batch["label"], batch["index"]
        logits_b, logits_d = self.bias_net(x), self.net(x)
        ce_d = F.cross_entropy(logits_d, y, reduction="none")
        with torch.no_grad():
            self.ema_b.update(F.cross_entropy(logits_b, y, reduction="none"), idx)
            self.ema_d.update(ce_d, idx)
            weight = relative_difficulty(self.ema_b.normalized(idx, y), self.ema_d.normalized(idx, y))
        loss_b = generalized_ce(logits_b, y, self.hparams.q).mean()
        loss_d = (ce_d * weight.to(ce_d.dtype)).mean()
        loss = loss_b + loss_d
        self.log_dict(
            {"train_loss": loss_d, "bias_loss": loss_b, "lff_weight": weight.mean()},
            prog_bar=True,
            on_step=False,
            on_epoch=True,
        )
        return loss

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        # Built in setup(); a checkpoint loaded before it (LightningModule.load_from_checkpoint) carries the
        # buffers, so build them from their shapes (the values are loaded next).
        state = checkpoint.get("state_dict", {})
        if self.ema_b is None and "ema_b.labels" in state:
            labels = state["ema_b.labels"]
            indices = torch.nonzero(labels >= 0).squeeze(1)
            if self.num_classes is None:
                self.num_classes = int(labels.max()) + 1
            self._make_emas(indices, labels[indices])

r"""JTT, Just Train Twice (Liu et al., ICML 2021), in one ``trainer.fit``.

1. *Identification*: ERM for ``id_epochs`` (T) epochs.
2. *Error set*: the training samples the identification network misclassifies, predicted on
   ``dm.train_eval_dataset`` (same samples, evaluation transform) in eval mode. Exposed as ``module.error_set``
   (dataset indices); every training sample's prediction and ``p_y`` is kept in ``module.id_scores``, the input of
   :func:`sebra.scoring.error_set_rankings`. With a logger, both are written to its folder (``jtt_error_set.csv``,
   ``jtt_scores.csv``).
3. *Retraining*: a fresh network, with the error set upsampled: each epoch draws N (training-set size) samples with
   replacement, with weight ``upweight`` (lambda_up) for errors and 1 otherwise, from a seeded generator.

One Lightning epoch is one identification epoch, then one retraining epoch; the module ends the fit itself, so use
``Trainer(max_epochs=-1)``. As in :class:`~sebra.methods.sebra.SebraModule` (both are
:class:`~sebra.methods.two_phase.TwoPhaseMethod`\ s), validation selects the checkpoint only during retraining
(``selectable``). JTT uses no group labels for training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torch.utils.data import DataLoader
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods._args import Optimizer
from sebra.methods._network_args import NetworkArgs
from sebra.methods._optim import cosine_lr, make_optimizer
from sebra.methods._sampling import shuffled_loader, weighted_loader
from sebra.methods.phase import Phase, as_int
from sebra.methods.two_phase import TwoPhaseMethod
from sebra.scoring import dataset_scores, error_set_rankings
from sebra.utils.files import atomic_write

__all__ = ["JTTModule", "error_set_from_predictions", "upsampling_weights"]

IDENTIFY, RETRAIN = "identify", "retrain"


def error_set_from_predictions(
    preds: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """Dataset indices of the **misclassified** samples (``pred != label``), in ascending order.

    Args:
        preds: ``[N]`` predicted classes (or ``[N, C]`` logits, argmax taken).
        labels: ``[N]`` true classes.
        indices: ``[N]`` dataset index of each row.
    """
    if preds.dim() == 2:
        preds = preds.argmax(dim=1)
    if not (preds.shape == labels.shape == indices.shape and preds.dim() == 1):
        raise ValueError(
            f"error_set_from_predictions: expected [N] preds, labels and indices, got "
            f"{tuple(preds.shape)}, {tuple(labels.shape)}, {tuple(indices.shape)}"
        )
    wrong = preds.long().cpu() != labels.long().cpu()
    return torch.sort(indices.long().cpu()[wrong]).values


def upsampling_weights(errors: torch.Tensor, upweight: float) -> torch.Tensor:
    """Sampling weight per training position: ``upweight`` where ``errors`` is true, 1 elsewhere (float64 ``[N]``)."""
    errors = torch.as_tensor(errors, dtype=torch.bool)
    return torch.where(
        errors, torch.tensor(float(upweight), dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    )


class JTTModule(NetworkArgs, TwoPhaseMethod):
    """JTT: ERM identification, error set, upsampled retraining of a fresh network.

    Args:
        id_epochs: identification epochs T (the reference code calls it ``final_epoch``; a short, early-stopped ERM).
        upweight: lambda_up, sampling weight of an error-set sample relative to 1 for the others (>= 1).
        epochs: retraining epochs.
        optimizer, weight_decay: the optimizer of both phases (retraining: these values; ``lr`` and ``momentum``:
            :class:`~sebra.methods._network_args.NetworkArgs`).
        id_lr, id_weight_decay: identification optimizer's learning rate and weight decay (default: ``lr``,
            ``weight_decay``); the optimizer kind and momentum are shared.
        **kwargs: the network of both phases, ``lr``, ``lr_schedule`` (applied per phase: over ``id_epochs``, then
            over ``epochs``), ``seed`` (the networks' initialisation: identification ``seed``, as ERM, retraining
            ``seed + 1``; the identification shuffling and the retraining draws) and the GPU options
            (:class:`~sebra.methods._network_args.NetworkArgs`); ``selection`` (during retraining) and
            ``num_classes`` (:class:`~sebra.methods.base.BaseMethod`).
    """

    FIRST, FINAL = IDENTIFY, RETRAIN
    EPOCHS_NEEDED = "id_epochs + epochs"

    def __init__(
        self,
        id_epochs: int = 1,
        upweight: float = 20.0,
        epochs: int = 15,
        optimizer: Optimizer = "adamw",
        weight_decay: float = 0.05,
        id_lr: float | None = None,
        id_weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # saves every argument: NetworkArgs collects the whole chain
        self.check_hparams()
        self.sample_generator = torch.Generator().manual_seed(self.hparams.seed)
        self.id_epoch = 0  # identification epochs completed
        self.id_net: Classifier | None = None
        self.error_set: torch.Tensor | None = None  # dataset indices
        self.id_scores: pd.DataFrame | None = None
        self.error_set_path: Path | None = None

    # --- networks and optimizers -------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        if self.net is None:
            self.id_net = self.make_classifier(
                self.hparams.seed
            )  # the same initialisation as ERMModule(seed=seed)
            self.net = self.make_classifier(
                self.hparams.seed + 1
            )  # the fresh network of the retraining phase
            self._apply_gpu_options(self.id_net, self.net)

    @override
    def phase(self) -> Phase:
        h = self.hparams
        if self.stage == IDENTIFY:
            return Phase("JTT identification", "epoch", self.id_epoch + 1, as_int(h.get("id_epochs")))
        return Phase("JTT retraining", "epoch", self.final_epoch + 1, as_int(h.get("epochs")))

    def first_network(self) -> nn.Module:
        """The identification network."""
        return self.id_net

    def first_optimizer(self) -> torch.optim.Optimizer:
        """The identification optimizer: ``id_lr`` and ``id_weight_decay`` (default ``lr``, ``weight_decay``)."""
        h = self.hparams
        id_lr = h.lr if h.id_lr is None else h.id_lr
        id_wd = h.weight_decay if h.id_weight_decay is None else h.id_weight_decay
        return make_optimizer(h.optimizer, self.id_net.parameters(), id_lr, h.momentum, id_wd)

    def epochs_needed(self) -> int:
        """``id_epochs + epochs`` (``epochs`` once identification is over)."""
        h = self.hparams
        return h.id_epochs + h.epochs if self.stage == IDENTIFY else h.epochs

    # --- what the fit produced ---------------------------------------------------------------------------------
    def produced_rankings(self) -> dict[str, pd.DataFrame]:
        """The error set as a two-level ranking (result rows ``jtt_error_set``), once identified."""
        return {"error_set": error_set_rankings(self.id_scores)} if self.id_scores is not None else {}

    def extra_metrics(self) -> dict[str, float]:
        """``error_set_size``: the number of misclassified training samples, once identified."""
        return {"error_set_size": float(len(self.error_set))} if self.id_scores is not None else {}

    # --- loaders and training ----------------------------------------------------------------------------------
    def train_loader(self, dm: Any) -> DataLoader:
        """Called by :class:`SebraDataModule.train_dataloader` every epoch: seeded shuffling, then upsampled draws."""
        if self.stage == IDENTIFY:
            return shuffled_loader(dm, self.sample_generator)
        return weighted_loader(dm, self.sampling_weights(dm.train_dataset), self.sample_generator)

    def sampling_weights(self, train: Any) -> torch.Tensor:
        """Retraining weight per position of ``train``: ``upweight`` for error-set samples, 1 for the others."""
        if self.error_set is None:
            raise RuntimeError("JTT: the error set is not known yet (identification has not finished)")
        is_error = torch.isin(train.indices, self.error_set)
        return upsampling_weights(is_error, self.hparams.upweight)

    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        id_opt, opt = self.optimizers()
        if self.stage == IDENTIFY:
            loss = F.cross_entropy(self.id_net(batch["image"]), batch["label"])
            optimizer, name = id_opt, "id_loss"
        else:
            loss = F.cross_entropy(self.net(batch["image"]), batch["label"])
            optimizer, name = opt, "train_loss"
        self.optimizer_step_on(optimizer, loss)
        self.log(name, loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def end_first_phase_epoch(self) -> None:
        """Count the identification epoch; after the last, find the error set and start retraining."""
        self.id_epoch += 1
        h = self.hparams
        if h.lr_schedule == "cosine":
            cosine_lr(self.optimizers()[0], self.id_epoch, h.id_epochs)
        if self.id_epoch < h.id_epochs:
            return
        self.identify(self.datamodule)
        self.start_final_phase()
        rank_zero_info(
            f"JTT: error set of {len(self.error_set)} samples after {h.id_epochs} identification "
            f"epoch(s); retraining with upweight {h.upweight}"
        )

    # --- identification ----------------------------------------------------------------------------------------
    def identify(self, dm: Any) -> pd.DataFrame:
        """Predict every training sample with the identification network (eval mode, evaluation transform) and set
        ``error_set`` (dataset indices of the misclassified samples) and ``id_scores``; writes both CSVs into the
        logger's folder when there is one.

        Returns:
            ``id_scores``: one row per training sample, in dataset order: ``index``, ``label``, ``pred``, ``p_y``,
            ``error`` (bool), then ``group`` when the data has it (for inspection only; never used).
        """
        ds = dm.train_eval_dataset
        context = self.trainer.precision_plugin.forward_context if self._trainer is not None else None
        scored = dataset_scores(self.id_net, dm, ds, forward_context=context)
        pred = scored.pred
        self.error_set = error_set_from_predictions(pred, ds.labels, ds.indices)
        scores = pd.DataFrame(
            {
                "index": ds.indices.numpy(),
                "label": ds.labels.numpy(),
                "pred": pred.numpy(),
                "p_y": scored.p_y.double().numpy(),
            }
        )
        scores["error"] = scores["pred"] != scores["label"]
        if (ds.groups >= 0).any():
            scores["group"] = ds.groups.numpy()
        self.id_scores = scores
        n = len(self.error_set)
        if n == 0:
            rank_zero_warn(
                "JTT: the identification network classifies every training sample correctly, so the "
                "error set is empty and retraining is plain ERM; shorten id_epochs or lower id_lr"
            )
        elif n == len(ds):
            rank_zero_warn(
                "JTT: the identification network misclassifies every training sample; upweighting "
                "them all is plain ERM; lengthen id_epochs"
            )
        self._write_error_set()
        return scores

    def _write_error_set(self) -> None:
        log_dir = self.side_file_dir()
        if log_dir is None:
            return
        errors = self.id_scores[self.id_scores["error"]].drop(columns=["error"]).sort_values("index")
        self.error_set_path = atomic_write(
            log_dir / "jtt_error_set.csv", lambda tmp: errors.to_csv(tmp, index=False, float_format="%.6g")
        )
        atomic_write(
            log_dir / "jtt_scores.csv",
            lambda tmp: self.id_scores.to_csv(tmp, index=False, float_format="%.6g"),
        )

    # --- checkpoints -------------------------------------------------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["jtt"] = {
            "stage": self.stage,
            "id_epoch": self.id_epoch,
            "final_epoch": self.final_epoch,
            "error_set": self.error_set,
            "id_scores": self.id_scores.to_dict("list") if self.id_scores is not None else None,
            "sample_generator": self.sample_generator.get_state(),
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("jtt")
        if state is not None:
            self.stage, self.id_epoch, self.final_epoch = (
                state["stage"],
                state["id_epoch"],
                state["final_epoch"],
            )
            self.error_set = state["error_set"]
            self.id_scores = pd.DataFrame(state["id_scores"]) if state["id_scores"] is not None else None
            self.sample_generator.set_state(state["sample_generator"])
        super().on_load_checkpoint(checkpoint)

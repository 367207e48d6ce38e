"""JTT, Just Train Twice (Liu et al., ICML 2021), in one ``trainer.fit``.

1. *Identification*: ERM for ``id_epochs`` (T) epochs.
2. *Error set*: the training samples the identification network misclassifies, predicted on
   ``dm.train_eval_dataset`` (same samples, evaluation transform) in eval mode. Exposed as ``module.error_set``
   (dataset indices) and written to ``<log_dir>/jtt_error_set.csv``; every training sample's prediction and ``p_y``
   goes to ``<log_dir>/jtt_scores.csv`` (``module.id_scores``), the input of :func:`sebra.rankers.error_set_rankings`.
3. *Retraining*: a fresh network, with the error set upsampled: each epoch draws N (training-set size) samples with
   replacement, with weight ``upweight`` (lambda_up) for errors and 1 otherwise, from a seeded generator.

One Lightning epoch is one identification epoch, then one retraining epoch; the module ends the fit itself, so use
``Trainer(max_epochs=-1)``. As in :class:`~sebra.methods.sebra.SebraModule`, validation selects the checkpoint only
during retraining (``selectable``). JTT uses no group labels for training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader
from typing_extensions import override

from sebra.backbones import Classifier
from sebra.methods.base import Selection, check_args, make_optimizer
from sebra.methods.erm import ERMModule
from sebra.scoring import batch_transform_of, error_set_rankings, score_loader
from sebra.utils.files import atomic_write

__all__ = ["JTTModule", "error_set_from_predictions", "upsampling_weights"]

IDENTIFY, RETRAIN, DONE = "identify", "retrain", "done"


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


class JTTModule(ERMModule):
    """JTT: ERM identification, error set, upsampled retraining of a fresh network.

    Args:
        id_epochs: identification epochs T (the reference code calls it ``final_epoch``; a short, early-stopped ERM).
        upweight: lambda_up, sampling weight of an error-set sample relative to 1 for the others (>= 1).
        epochs: retraining epochs.
        id_lr, id_weight_decay: identification optimizer's learning rate and weight decay (default: ``lr``,
            ``weight_decay``); the optimizer kind and momentum are shared.
        lr_schedule: ``none`` or ``cosine``, applied per phase (over ``id_epochs``, then over ``epochs``).
        selection: checkpoint selection during retraining (``val_wga``, ``val_acc`` or ``last``).
        seed: seeds the networks' initialisation (identification: ``seed``, as ERM; retraining: ``seed + 1``), the
            identification shuffling and the retraining draws.
        Others: see :class:`~sebra.methods.erm.ERMModule` (``sampling`` is fixed to ``uniform``).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        weights_file: str | None = None,
        id_epochs: int = 1,
        upweight: float = 20.0,
        epochs: int = 15,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.05,
        id_lr: float | None = None,
        id_weight_decay: float | None = None,
        lr_schedule: str = "none",
        selection: Selection = "val_wga",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            pretrained=pretrained,
            weights_file=weights_file,
            epochs=epochs,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            sampling="uniform",
            selection=selection,
            seed=seed,
            num_classes=num_classes,
        )
        check_args(
            type(self).__name__,
            id_epochs=id_epochs,
            upweight=upweight,
            id_lr=id_lr,
            id_weight_decay=id_weight_decay,
        )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.phase = IDENTIFY
        self.phase_epoch = 0  # epochs completed in the current phase
        self.id_net: Classifier | None = None
        self.error_set: torch.Tensor | None = None  # dataset indices
        self.id_scores: pd.DataFrame | None = None
        self.error_set_path: Path | None = None

    # --- networks and optimizers -------------------------------------------------------------------------------
    @override
    def configure_model(self) -> None:
        if self.net is None:
            h = self.hparams

            def make():
                return Classifier(
                    h.backbone, self.num_classes, pretrained=h.pretrained, weights_file=h.weights_file
                )

            with torch.random.fork_rng(
                devices=[]
            ):  # initialisation from `seed`, whatever the global RNG holds
                torch.manual_seed(h.seed)
                self.id_net = make()  # the same initialisation as ERMModule(seed=seed)
                torch.manual_seed(h.seed + 1)
                self.net = make()  # the fresh network of the retraining phase

    @override
    def configure_optimizers(self):
        h = self.hparams
        id_lr = h.lr if h.id_lr is None else h.id_lr
        id_wd = h.weight_decay if h.id_weight_decay is None else h.id_weight_decay
        id_opt = make_optimizer(h.optimizer, self.id_net.parameters(), id_lr, h.momentum, id_wd)
        opt = make_optimizer(h.optimizer, self.net.parameters(), h.lr, h.momentum, h.weight_decay)
        return [id_opt, opt]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the identification network while identifying, of the retrained network after."""
        return (self.id_net if self.phase == IDENTIFY else self.net)(x)

    def in_final_phase(self) -> bool:
        """True in the retraining phase, the only one whose checkpoints are selectable."""
        return self.phase == RETRAIN

    def produced_rankings(self) -> dict[str, pd.DataFrame]:
        """The error set as a two-level ranking (result rows ``jtt_error_set``), once identified."""
        return {"error_set": error_set_rankings(self.id_scores)} if self.id_scores is not None else {}

    def extra_metrics(self) -> dict[str, float]:
        """``error_set_size``: the number of misclassified training samples, once identified."""
        return {"error_set_size": float(len(self.error_set))} if self.id_scores is not None else {}

    # --- set-up and loaders ------------------------------------------------------------------------------------
    @override
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            h = self.hparams
            need = h.id_epochs + h.epochs if self.phase == IDENTIFY else h.epochs
            max_epochs = self.trainer.fit_loop.max_epochs
            if max_epochs is not None and max_epochs != -1 and max_epochs < need:
                raise ValueError(
                    f"Trainer(max_epochs={max_epochs}) is too small for id_epochs + epochs = {need}; "
                    "use Trainer(max_epochs=-1): JTTModule ends the fit itself"
                )
            self.trainer.reload_dataloaders_every_n_epochs = 1  # the loader changes at the phase switch

    def train_loader(self, dm: Any) -> DataLoader:
        """Called by :class:`SebraDataModule.train_dataloader` every epoch: seeded shuffling, then upsampled draws."""
        train = dm.train_dataset
        if self.phase == IDENTIFY:
            return dm.loader(train, batch_size=dm.batch_size, shuffle=True, generator=self.sample_generator)
        weights = self.sampling_weights(train)
        sampler = torch.utils.data.WeightedRandomSampler(
            weights, len(train), replacement=True, generator=self.sample_generator
        )
        return dm.loader(train, batch_size=dm.batch_size, sampler=sampler)

    def sampling_weights(self, train: Any) -> torch.Tensor:
        """Retraining weight per position of ``train``: ``upweight`` for error-set samples, 1 for the others."""
        if self.error_set is None:
            raise RuntimeError("JTT: the error set is not known yet (identification has not finished)")
        is_error = torch.isin(train.indices, self.error_set)
        return upsampling_weights(is_error, self.hparams.upweight)

    # --- training ----------------------------------------------------------------------------------------------
    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        id_opt, opt = self.optimizers()
        if self.phase == IDENTIFY:
            loss = F.cross_entropy(self.id_net(batch["image"]), batch["label"])
            optimizer, name = id_opt, "id_loss"
        else:
            loss = self.loss(self.net(batch["image"]), batch)
            optimizer, name = opt, "train_loss"
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        self.log(name, loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    @override
    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.log("stage", 1.0 if self.phase == IDENTIFY else 2.0, on_step=False, on_epoch=True)

    @override
    def on_train_epoch_end(self) -> None:
        self.phase_epoch += 1
        h = self.hparams
        total = h.id_epochs if self.phase == IDENTIFY else h.epochs
        if h.lr_schedule == "cosine":
            self._cosine(self.optimizers()[0 if self.phase == IDENTIFY else 1], self.phase_epoch, total)
        if self.phase_epoch < total:
            return
        if self.phase == IDENTIFY:
            self.identify(self.datamodule)
            self.phase, self.phase_epoch = RETRAIN, 0
            rank_zero_info(
                f"JTT: error set of {len(self.error_set)} samples after {h.id_epochs} identification "
                f"epoch(s); retraining with upweight {h.upweight}"
            )
        else:
            self.phase = DONE
            self.trainer.should_stop = True

    def fit_finished(self) -> bool:
        """True once the retraining phase has run its epochs."""
        return self.phase == DONE

    @staticmethod
    def _cosine(opt: Any, epoch: int, total: int) -> None:
        for g in opt.param_groups:
            g.setdefault("initial_lr", g["lr"])
            g["lr"] = (
                0.5 * g["initial_lr"] * (1 + torch.cos(torch.tensor(torch.pi * epoch / max(1, total))).item())
            )

    # --- identification ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def identify(self, dm: Any) -> pd.DataFrame:
        """Predict every training sample with the identification network (eval mode, evaluation transform) and set
        ``error_set`` (dataset indices of the misclassified samples) and ``id_scores``; writes both CSVs when
        a trainer with a log directory is attached.

        Returns:
            ``id_scores``: one row per training sample, in dataset order: ``index``, ``label``, ``pred``, ``p_y``,
            ``error`` (bool), then ``group`` when the data has it (for inspection only; never used).
        """
        ds = dm.train_eval_dataset
        context = self.trainer.precision_plugin.forward_context if self._trainer is not None else None
        scored = score_loader(
            self.id_net,
            dm.loader(ds),
            device=next(self.id_net.parameters()).device,
            transform=batch_transform_of(dm),
            forward_context=context,
        )
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
        if self._trainer is None or self.trainer.log_dir is None or not self.trainer.is_global_zero:
            return
        log_dir = Path(self.trainer.log_dir)
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
            "phase": self.phase,
            "phase_epoch": self.phase_epoch,
            "error_set": self.error_set,
            "id_scores": self.id_scores.to_dict("list") if self.id_scores is not None else None,
            "sample_generator": self.sample_generator.get_state(),
        }

    @override
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("jtt")
        if state is None:
            return
        self.phase, self.phase_epoch = state["phase"], state["phase_epoch"]
        super().on_load_checkpoint(checkpoint)
        self.error_set = state["error_set"]
        self.id_scores = pd.DataFrame(state["id_scores"]) if state["id_scores"] is not None else None
        self.sample_generator.set_state(state["sample_generator"])

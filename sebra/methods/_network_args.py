"""The constructor arguments every method that trains its own timm network shares, declared once.

ERM, GroupDRO, JTT, LfF and Sebra each train one or two networks of the same kind, built, optimised and seeded the
same way; their constructors used to repeat these arguments (and their checks) line by line. A method now declares
only what is its own (and any shared argument it gives another default) and hands the rest on with
``super().__init__(**kwargs)``: jsonargparse, the one schema of every command (LightningCLI for ``sebra fit``,
:mod:`sebra.cli.schema` for the others), follows ``**kwargs`` up the MRO, so the dotted keys
(``model.init_args.backbone``, ``--set methods.sebra.model.init_args.seed=...``) stay what they were.
"""

from __future__ import annotations

from typing import ClassVar

from sebra.methods._args import LRSchedule, Selection

__all__ = ["NetworkArgs"]


class NetworkArgs:
    """Mixin for a method (a :class:`~sebra.methods.base.BaseMethod`) that trains its own network; it goes first
    in the bases (``class ERMModule(NetworkArgs, EpochLimited)``) and saves the hyper-parameters of the whole
    constructor chain, so a subclass reads them in ``self.hparams`` after ``super().__init__``.

    Args:
        backbone, pretrained, weights_file: the timm network (see :class:`sebra.backbones.Classifier`).
        lr, momentum: the optimizer's learning rate and momentum (momentum: SGD only; the optimizer kind, weight
            decay and epochs are each method's, as their defaults differ).
        lr_schedule: ``none`` or ``cosine`` (over each phase's epochs).
        seed: seeds the networks' initialisation and the method's draws (each method says how).
        channels_last, compile: GPU options: keep the networks and their inputs in ``channels_last`` memory format
            (faster convolutions with mixed precision on recent GPUs), and ``torch.compile`` the backbones (in
            place: checkpoints keep their keys; the first steps are slow while it compiles).
        selection, num_classes: see :class:`~sebra.methods.base.BaseMethod`.
    """

    #: constructor arguments kept out of ``hparams`` (a DataFrame is no hyper-parameter)
    HPARAMS_IGNORE: ClassVar[tuple[str, ...]] = ("rankings",)

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        weights_file: str | None = None,
        lr: float = 1e-3,
        momentum: float = 0.9,
        lr_schedule: LRSchedule = "none",
        seed: int = 0,
        channels_last: bool = False,
        compile: bool = False,
        selection: Selection = "val_wga",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(selection=selection, num_classes=num_classes)  # type: ignore[call-arg]
        # collects the arguments of every constructor in the chain still running (this one and the subclasses')
        self.save_hyperparameters(ignore=list(self.HPARAMS_IGNORE))  # type: ignore[attr-defined]

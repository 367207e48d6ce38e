"""The LightningDataModule every sebra data set is served by.

Subclasses only parse their layout (``build_splits``); this base adds the transforms, the loaders and one hook
through which a method controls what the training loader draws: if the LightningModule being fitted defines
``train_loader(datamodule)``, ``train_dataloader()`` returns what it builds (Sebra's active-set sampler in Stage 1,
its pair table in Stage 2). Such modules ask the trainer to reload the training loader every epoch.
"""

from __future__ import annotations

from typing import Callable, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from sebra.datasets.base import BiasSpec, ImageDataset

__all__ = ["SebraDataModule", "make_transform", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Augment = Literal["none", "flip", "crop_flip", "resized_crop_flip"]


def make_transform(
    image_size: int | None,
    augment: Augment = "none",
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    pad: int | None = None,
) -> Callable:
    """A v2 transform from a uint8 ``[3, H, W]`` tensor to a normalised float tensor.

    ``crop_flip`` is the CIFAR recipe (reflect-pad by ``image_size // 8``, random crop, horizontal flip);
    ``resized_crop_flip`` is the ImageNet recipe (BAR's Stage 2 augmentation).
    """
    ops: list = []
    if augment == "resized_crop_flip":
        ops.append(v2.RandomResizedCrop(image_size, antialias=True))
    elif image_size is not None:
        ops.append(v2.Resize((image_size, image_size), antialias=True))
    if augment == "crop_flip":
        p = pad if pad is not None else max(1, (image_size or 32) // 8)
        ops.append(v2.RandomCrop(image_size, padding=p, padding_mode="reflect"))
    if augment in ("flip", "crop_flip", "resized_crop_flip"):
        ops.append(v2.RandomHorizontalFlip())
    elif augment != "none":
        raise ValueError(f"augment must be one of none, flip, crop_flip, resized_crop_flip; got {augment!r}")
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(ops)


class SebraDataModule(L.LightningDataModule):
    """Base data module: ``train`` / ``val`` / ``test`` splits of :class:`ImageDataset` with sebra's transforms.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size of evaluation and Stage 1 scoring (defaults to ``2 * batch_size``).
        num_workers: DataLoader workers.
        image_size: side of the (square) network input; images are resized to it on decode.
        augment: training augmentation (``none``, ``flip``, ``crop_flip``, ``resized_crop_flip``).
        pin_memory: pin host memory (useful on GPU).
        mean, std: normalisation.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        image_size: int | None = None,
        augment: Augment = "none",
        pin_memory: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.augment = augment
        self.pin_memory = pin_memory
        self.mean, self.std = tuple(mean), tuple(std)
        self.splits: dict[str, ImageDataset] = {}

    # --- what subclasses provide -------------------------------------------------------------------------------
    def build_splits(self) -> dict[str, ImageDataset]:
        """Parse the data set into ``{"train", "val", "test"}`` :class:`ImageDataset` (no transform set)."""
        raise NotImplementedError

    # --- transforms and datasets -------------------------------------------------------------------------------
    @property
    def train_transform(self) -> Callable:
        return make_transform(self.image_size, self.augment, self.mean, self.std)

    @property
    def eval_transform(self) -> Callable:
        return make_transform(self.image_size, "none", self.mean, self.std)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.build_splits()
        self.train_dataset = self.splits["train"].with_transform(self.train_transform)
        # Same samples and cache, evaluation transform: Stage 1 scoring, ranking inspection, JTT error sets.
        self.train_eval_dataset = self.splits["train"].with_transform(self.eval_transform)
        self.val_dataset = self.splits["val"].with_transform(self.eval_transform) if "val" in self.splits else None
        self.test_dataset = self.splits["test"].with_transform(self.eval_transform) if "test" in self.splits else None

    # --- facts methods and metrics need ------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        self._ensure()
        return self.splits["train"].num_classes

    @property
    def bias(self) -> BiasSpec | None:
        self._ensure()
        return self.splits["train"].bias

    @property
    def num_groups(self) -> int:
        """Number of group ids (``max + 1`` over all splits; 0 when the data set has no groups)."""
        self._ensure()
        m = max(int(ds.groups.max()) if len(ds) else -1 for ds in self.splits.values())
        return m + 1

    def _ensure(self) -> None:
        if not self.splits:
            self.splits = self.build_splits()

    # --- loaders -----------------------------------------------------------------------------------------------
    def loader(self, dataset, *, batch_size: int | None = None, shuffle: bool = False, sampler=None,
               drop_last: bool = False, generator: torch.Generator | None = None) -> DataLoader:
        """A DataLoader with this module's worker and memory settings."""
        return DataLoader(
            dataset,
            batch_size=batch_size or self.eval_batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        module = self.trainer.lightning_module if self.trainer is not None else None
        hook = getattr(module, "train_loader", None)
        if callable(hook):
            return hook(self)
        return self.loader(self.train_dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_dataset)

    def predict_dataloader(self) -> DataLoader:
        return self.loader(self.train_eval_dataset)

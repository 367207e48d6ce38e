"""The LightningDataModule every sebra data set is served by.

Subclasses only parse their layout (``build_splits``); this base adds the transforms, the loaders and one hook
through which a method controls what the training loader draws: if the LightningModule being fitted defines
``train_loader(datamodule)``, ``train_dataloader()`` returns what it builds (Sebra's active-set sampler in Stage 1,
its pair table in Stage 2). Such modules ask the trainer to reload the training loader every epoch.

By default (``batch_augment=True``) samples stay uint8 until they reach the device, and augmentation and
normalisation run once per batch as tensor operations (``on_after_batch_transfer``): per-sample torchvision
transforms cost ~1.7 ms per 32 px image on a CPU core, more than the network. Code that iterates a loader by hand
calls :meth:`SebraDataModule.batch_transform`.

Under data parallelism (``Trainer(devices=k, strategy="ddp"/"ddp_spawn")``) the loaders shard themselves: evaluation
splits are split by stride into equal-length shards whose padding rows carry ``valid=False`` (the methods leave them
out of the metrics, so the synced metrics equal a single-process evaluation), and every process draws its own
augmentation from a per-batch seed taken from the shared ``aug_generator``, which therefore stays in the same state on
every process (and in the checkpoint, through :meth:`SebraDataModule.state_dict`). All samplers are
:class:`~torch.utils.data.DistributedSampler` subclasses, so Lightning does not shard them a second time.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from sebra.datasets.base import BiasSpec, ImageDataset
from sebra.datasets.sharding import EvalShard, ShardSampler, shard_positions
from sebra.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, Augment, augment_batch, make_transform
from sebra.utils.rng import GeneratorPickling

__all__ = [  # the transforms and samplers live in sebra.datasets.transforms / .sharding; named here as before
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_IMAGE_SIZE",
    "Augment",
    "SebraDataModule",
    "ShardSampler",
    "augment_batch",
    "make_transform",
    "shard_positions",
]


class _DecodeRows(Dataset):
    """``(row, uint8 image)`` of a file-based split, decoded without touching its cache (for :meth:`warm_cache`)."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor]:
        return row, self.dataset._decode_row(row)


#: The smallest ``image_size``: below it an image holds too little to learn or rank anything (a ResNet halves its side
#: five times), so a smaller value is a typo (``3`` for ``32``) rather than a setting.
MIN_IMAGE_SIZE = 8


def _positive_int(
    owner: str, name: str, value: object, *, low: int = 1, none_ok: bool = False, note: str = ""
) -> None:
    """Refuse a data module argument that is not an integer ``>= low``, in one line naming the class and the field
    (a raw ``DataLoader`` or ``torch.Generator`` error would name neither)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        alt = " or None" if none_ok else ""
        extra = f" ({note})" if note else ""
        raise ValueError(f"{owner}: {name} must be an integer >= {low}{alt}{extra}, got {value!r}")


#: The splits each ``setup`` stage reads, decoded up front when the loaders use worker processes.
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("train",)}


class SebraDataModule(GeneratorPickling, L.LightningDataModule):
    """Base data module: ``train`` / ``val`` / ``test`` splits of :class:`ImageDataset` with sebra's transforms.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size of evaluation and Stage 1 scoring (defaults to ``2 * batch_size``).
        num_workers: DataLoader workers.
        image_size: side of the (square) network input; images are resized to it on decode.
        augment: training augmentation (``none``, ``flip``, ``crop_flip``, ``resized_crop_flip``).
        pin_memory: pin host memory (useful on GPU).
        mean: normalisation mean per channel.
        std: normalisation standard deviation per channel.
        batch_augment: augment and normalise whole batches after transfer (fast); ``False`` uses per-sample
            torchvision transforms in the loader instead.
        seed: seeds the batch augmentation's generator.
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
        batch_augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _positive_int(owner, "batch_size", batch_size)
        _positive_int(owner, "eval_batch_size", eval_batch_size, none_ok=True)
        _positive_int(owner, "num_workers", num_workers, low=0)
        _positive_int(
            owner,
            "image_size",
            image_size,
            low=MIN_IMAGE_SIZE,
            none_ok=True,
            note="the side in pixels; None keeps the files' size",
        )
        _positive_int(owner, "seed", seed, low=0)
        self.batch_augment = batch_augment
        self.aug_generator = torch.Generator().manual_seed(seed)
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
    def train_transform(self) -> Callable | None:
        """Per-image training transform (None when augmentation runs on the batch)."""
        if self.batch_augment:
            return None
        return make_transform(self.image_size, self.augment, self.mean, self.std)

    @property
    def eval_transform(self) -> Callable | None:
        """Per-image evaluation transform (None when batches are normalised on device)."""
        if self.batch_augment:
            return None
        return make_transform(self.image_size, "none", self.mean, self.std)

    def batch_transform(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> normalised float, augmented when ``train``; float input passes unchanged."""
        if images.dtype != torch.uint8:
            return images
        x = images.float().div_(255)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        if train:
            x = augment_batch(x, self.augment, self.image_size, self._augment_generator())
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype)[:, None, None]
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype)[:, None, None]
        return (x - mean) / std

    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.world_size), int(trainer.global_rank)) if trainer is not None else (1, 0)

    def _augment_generator(self) -> torch.Generator:
        """``aug_generator`` itself in one process; under data parallelism a per-batch generator for this process.

        Every process draws the same ``world_size`` seeds from ``aug_generator`` (same state everywhere: one draw per
        batch, and all processes run the same number of batches) and uses its own, so the processes augment
        independently while the shared state still resumes exactly from a checkpoint.
        """
        world, rank = self._replicas()
        if world == 1 or self.augment == "none":
            return self.aug_generator
        seeds = torch.randint(0, 2**62, (world,), generator=self.aug_generator)
        return torch.Generator().manual_seed(int(seeds[rank]))

    # --- checkpointing: the augmentation stream resumes where it stopped ---------------------------------------
    @override
    def state_dict(self) -> dict:
        return {"aug_generator": self.aug_generator.get_state()}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        if "aug_generator" in state_dict:
            self.aug_generator.set_state(state_dict["aug_generator"])

    def _transform_nested(self, batch, train: bool):
        if isinstance(batch, dict):
            return {
                k: (self.batch_transform(v, train) if k == "image" else self._transform_nested(v, train))
                for k, v in batch.items()
            }
        return batch

    @override
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        train = self.trainer is not None and self.trainer.training
        return self._transform_nested(batch, train)

    @override
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.build_splits()
        self.train_dataset = self.splits["train"].with_transform(self.train_transform)
        # Same samples and cache, evaluation transform: Stage 1 scoring, ranking inspection, JTT error sets.
        self.train_eval_dataset = self.splits["train"].with_transform(self.eval_transform)
        self.val_dataset = (
            self.splits["val"].with_transform(self.eval_transform) if "val" in self.splits else None
        )
        self.test_dataset = (
            self.splits["test"].with_transform(self.eval_transform) if "test" in self.splits else None
        )
        if self.num_workers > 0:
            for name in _STAGE_SPLITS.get(stage or "fit", tuple(self.splits)):
                if name in self.splits:
                    self.warm_cache(self.splits[name])

    def warm_cache(self, dataset: ImageDataset) -> None:
        """Decode a file-based split into its uint8 cache now, in parallel in the loader workers, stored here.

        A DataLoader worker decodes into *its own* copy of the cache, which is gone when the worker ends (every
        epoch, every scoring pass): with ``num_workers > 0`` a lazily filled cache would decode every image again each
        time. ``setup`` calls this for the splits its stage reads when ``num_workers > 0``; the workers forked later
        share the filled cache.
        """
        cache = getattr(dataset, "_cache", None)
        if cache is None:
            return
        rows = torch.unique(torch.as_tensor(dataset._rows, dtype=torch.long))  # cache rows of this view
        rows = rows[~cache.filled[rows]].tolist()
        if not rows:
            return
        loader = DataLoader(_DecodeRows(dataset), sampler=rows, batch_size=64, num_workers=self.num_workers)
        for batch_rows, images in loader:
            for row, image in zip(batch_rows.tolist(), images):
                cache.get(row, lambda _row, image=image: image)

    # --- facts methods and metrics need ------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes in the training split."""
        self._ensure()
        return self.splits["train"].num_classes

    @property
    def bias(self) -> BiasSpec | None:
        """The bias attributes of the training split, if the data set declares them."""
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
    def loader(
        self,
        dataset,
        *,
        batch_size: int | None = None,
        shuffle: bool = False,
        sampler=None,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> DataLoader:
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

    @override
    def train_dataloader(self) -> DataLoader:
        module = self.trainer.lightning_module if self.trainer is not None else None
        hook = getattr(module, "train_loader", None)
        if callable(hook):
            return hook(self)
        return self.loader(self.train_dataset, batch_size=self.batch_size, shuffle=True)

    def eval_loader(self, dataset) -> DataLoader:
        """An evaluation loader; under data parallelism this process's padded shard (rows with ``valid``)."""
        world, rank = self._replicas()
        if world == 1:
            return self.loader(dataset)
        positions, valid = shard_positions(len(dataset), world, rank)
        shard = EvalShard(dataset, positions, valid)
        return self.loader(shard, sampler=ShardSampler(range(len(shard)), world, rank))

    def _split_for(self, split: str):
        dataset = getattr(self, f"{split}_dataset", None)
        if dataset is None:  # not a raw TypeError from the sampler
            hint = "; add a test/ folder, or give test_fraction > 0" if split == "test" else ""
            raise ValueError(f"{type(self).__name__}: the data has no {split} split{hint}")
        return dataset

    @override
    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self._split_for("val"))

    @override
    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self._split_for("test"))

    @property
    def has_test_split(self) -> bool:
        """Whether the data has a non-empty test split (own data split by seed has none by default)."""
        self._ensure()
        test = self.splits.get("test")
        return test is not None and len(test) > 0

    @override
    def predict_dataloader(self) -> DataLoader:
        return self.loader(self.train_eval_dataset)

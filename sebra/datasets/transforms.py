"""Image transforms of the data modules: per-sample torchvision pipelines and the batched augmentation.

By default (``batch_augment=True``) samples stay uint8 until they reach the device and :func:`augment_batch` runs once
per batch as tensor operations: per-sample torchvision transforms cost ~1.7 ms per 32 px image on a CPU core, more than
the network. :func:`make_transform` is the per-sample path (``batch_augment=False``, and evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Augment", "augment_batch", "make_transform"]

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


def augment_batch(
    x: torch.Tensor, augment: Augment, size: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Batched random augmentation of float images ``[B, C, H, W]`` (one independent draw per image).

    ``crop_flip``: reflect-pad by ``size // 8``, random crop, horizontal flip; ``flip``: flip only;
    ``resized_crop_flip``: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, via ``roi_align``) and flip.
    """
    b, _, h, w = x.shape
    dev = x.device
    if augment == "crop_flip":
        p = max(1, (size or h) // 8)
        xp = F.pad(x, (p, p, p, p), mode="reflect")
        oy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(dev)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(dev)
        windows = xp.unfold(2, h, 1).unfold(3, w, 1)  # [B, C, 2p+1, 2p+1, H, W], a view
        x = windows[torch.arange(b, device=dev), :, oy, ox]
    elif augment == "resized_crop_flip":
        area = h * w * torch.empty(b).uniform_(0.08, 1.0, generator=generator)
        logr = torch.empty(b).uniform_(
            torch.log(torch.tensor(3 / 4)).item(), torch.log(torch.tensor(4 / 3)).item(), generator=generator
        )
        ratio = torch.exp(logr)
        cw = torch.sqrt(area * ratio).clamp(max=w)
        ch = torch.sqrt(area / ratio).clamp(max=h)
        x0 = torch.rand(b, generator=generator) * (w - cw)
        y0 = torch.rand(b, generator=generator) * (h - ch)
        boxes = torch.stack([torch.arange(b, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], 1).to(
            dev, x.dtype
        )
        out = size or h
        x = roi_align(x, boxes, output_size=(out, out), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    elif augment not in ("flip", "none"):
        raise ValueError(f"augment must be one of none, flip, crop_flip, resized_crop_flip; got {augment!r}")
    if augment != "none":
        flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x

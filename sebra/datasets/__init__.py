"""Data sets in their real on-disk formats, all following one sample contract (see :mod:`sebra.datasets.base`)."""

from sebra.datasets.base import BiasSpec, DatasetError, DatasetNotFoundError, ImageDataset, decode_image
from sebra.datasets.builtin import BUILTIN_BIAS, BuiltinDataModule, BuiltinSpec, ensure_builtin
from sebra.datasets.datamodule import SebraDataModule, make_transform
from sebra.datasets.urbancars import UrbanCarsDataModule, read_urbancars

__all__ = [
    "BUILTIN_BIAS",
    "BiasSpec",
    "BuiltinDataModule",
    "BuiltinSpec",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageDataset",
    "SebraDataModule",
    "UrbanCarsDataModule",
    "decode_image",
    "ensure_builtin",
    "make_transform",
    "read_urbancars",
]

"""Every data module takes every base option, with the base's meaning, and LightningCLI lists each with its default;
a subclass that leaves one out fails at construction, naming it."""

from __future__ import annotations

import inspect

import pytest
from jsonargparse import ArgumentParser

from sebra.datasets.bar import BARDataModule
from sebra.datasets.builtin import BuiltinDataModule
from sebra.datasets.celeba import CelebADataModule
from sebra.datasets.csv_manifest import CSVDataModule
from sebra.datasets.datamodule import BASE_ARGUMENTS, SebraDataModule, base_arguments
from sebra.datasets.family import FamilyDataModule
from sebra.datasets.folder import ImageFolderDataModule
from sebra.datasets.urbancars import UrbanCarsDataModule

#: Each data module with the arguments it needs besides the base ones.
DATA_MODULES = {
    UrbanCarsDataModule: {"root": "u"},
    BARDataModule: {"root": "b"},
    CelebADataModule: {"root": "c"},
    BuiltinDataModule: {},
    FamilyDataModule: {},
    ImageFolderDataModule: {"root": "f"},
    CSVDataModule: {"csv_path": "m.csv"},
}
#: Base arguments whose default a data module may set to suit its data (image size, batch, recipe).
OWN_DEFAULTS = {"batch_size", "image_size", "augment"}
#: A value other than the default for every base argument.
VALUES = {
    "batch_size": 3,
    "eval_batch_size": 5,
    "num_workers": 1,
    "image_size": 16,
    "augment": "flip",
    "pin_memory": True,
    "mean": (0.1, 0.2, 0.3),
    "std": (0.4, 0.5, 0.6),
    "batch_augment": False,
    "seed": 7,
}
BASE = inspect.signature(SebraDataModule.__init__).parameters


def test_values_cover_every_base_argument() -> None:
    assert set(VALUES) == set(BASE_ARGUMENTS) == set(BASE) - {"self"}


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_signature_has_every_base_argument(cls: type) -> None:
    params = inspect.signature(cls.__init__).parameters
    for name in BASE_ARGUMENTS:
        assert name in params, f"{cls.__name__} lacks {name}"
        if name not in OWN_DEFAULTS:
            assert params[name].default == BASE[name].default, name
            assert params[name].annotation == BASE[name].annotation, name


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_base_arguments_reach_the_base(cls: type) -> None:
    dm = cls(**DATA_MODULES[cls], **VALUES)
    for name, value in VALUES.items():
        if name != "seed":
            assert getattr(dm, name) == value, name
    assert dm.aug_generator.initial_seed() == 7
    assert dm.train_transform is not None  # batch_augment=False: per-sample transforms


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_cli_lists_every_base_option_with_its_default(cls: type) -> None:
    """What ``sebra fit --print_config`` shows for ``data``: jsonargparse reads the same signature."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data")
    defaults = parser.get_defaults().data
    params = inspect.signature(cls.__init__).parameters
    for name in BASE_ARGUMENTS:
        assert defaults[name] == params[name].default, name


def test_a_subclass_missing_a_base_argument_fails_naming_it() -> None:
    class Partial(SebraDataModule):
        def __init__(self, batch_size: int = 8, seed: int = 0) -> None:
            super().__init__(**base_arguments(locals()))

    with pytest.raises(
        TypeError, match=r"^Partial.__init__ lacks the SebraDataModule argument\(s\) eval_batch_size, "
    ):
        Partial()

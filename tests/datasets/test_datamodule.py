"""Every data module takes every base option (declared by the base, handed on with ``**kwargs``), with the base's
meaning; :func:`datamodule_arguments` and LightningCLI see each with its default, and the config readers use it."""

from __future__ import annotations

import inspect

import pytest
from jsonargparse import ArgumentParser

from sebra.cli.config import ConfigError, apply_overrides
from sebra.datasets.bar import BARDataModule
from sebra.datasets.builtin import BuiltinDataModule
from sebra.datasets.celeba import CelebADataModule
from sebra.datasets.csv_manifest import CSVDataModule
from sebra.datasets.datamodule import SebraDataModule, datamodule_arguments
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
BASE = datamodule_arguments(SebraDataModule)


def test_values_cover_every_base_argument() -> None:
    assert set(VALUES) == set(BASE) == set(inspect.signature(SebraDataModule.__init__).parameters) - {"self"}


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_every_base_argument_is_taken_with_the_base_default(cls: type) -> None:
    params = datamodule_arguments(cls)
    for name in BASE:
        assert name in params, f"{cls.__name__} lacks {name}"
        if name not in OWN_DEFAULTS:
            assert params[name].default == BASE[name].default, name
            assert params[name].annotation == BASE[name].annotation, name
    # a base argument is declared again only to give it another default
    own = set(inspect.signature(cls.__init__).parameters) & set(BASE)
    assert own <= OWN_DEFAULTS | {"seed"}, own
    assert all(params[n].default != BASE[n].default for n in own - {"seed"}), own


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_base_arguments_reach_the_base(cls: type) -> None:
    dm = cls(**DATA_MODULES[cls], **VALUES)
    for name, value in VALUES.items():
        if name != "seed":
            assert getattr(dm, name) == value, name
    assert dm.aug_generator.initial_seed() == 7
    assert dm.train_transform is not None  # batch_augment=False: per-sample transforms


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_defaults_apply_as_listed(cls: type) -> None:
    dm = cls(**DATA_MODULES[cls])
    params = datamodule_arguments(cls)
    for name in set(BASE) - {"seed", "eval_batch_size"}:
        assert getattr(dm, name) == params[name].default, name
    assert dm.eval_batch_size == 2 * params["batch_size"].default
    assert dm.aug_generator.initial_seed() == params["seed"].default == 0


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_cli_lists_every_option_with_its_default(cls: type) -> None:
    """What ``sebra fit --print_config`` shows under ``data``: jsonargparse resolves ``**kwargs`` the same way."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SebraDataModule, "data")
    required = DATA_MODULES[cls]
    args = [f"--data={cls.__module__}.{cls.__name__}"] + [f"--data.{k}={v}" for k, v in required.items()]
    init = parser.parse_args(args).data.init_args
    params = datamodule_arguments(cls)
    assert list(init.keys()) == list(params)  # every option, in the order datamodule_arguments gives
    for name, p in params.items():
        assert init[name] == required.get(name, p.default), name


def test_datamodule_arguments_follow_kwargs_up_to_a_class_without_them() -> None:
    class Middle(SebraDataModule):
        def __init__(self, size: int = 1, batch_size: int = 8, **kwargs) -> None:
            super().__init__(batch_size=batch_size, **kwargs)

    class Leaf(Middle):
        def __init__(self, name: str, *args, size: int = 2, **kwargs) -> None:
            super().__init__(size=size, **kwargs)

    class Closed(Middle):
        def __init__(self, size: int = 3) -> None:
            super().__init__(size=size)

    params = datamodule_arguments(Leaf)
    assert list(params)[:3] == ["name", "size", "batch_size"] and set(BASE) <= set(params)
    assert params["size"].default == 2 and params["batch_size"].default == 8
    assert params["seed"].default == 0 and params["name"].default is inspect.Parameter.empty
    assert list(datamodule_arguments(Closed)) == ["size"]


@pytest.mark.parametrize(
    "cls", [BuiltinDataModule, UrbanCarsDataModule, ImageFolderDataModule], ids=lambda c: c.__name__
)
def test_overrides_accept_base_arguments_and_refuse_typos(cls: type) -> None:
    """``--set`` (sebra bench / rank) sees the arguments behind ``**kwargs`` and still refuses an unknown one."""
    cfg = {"data": {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": {}}}
    out = apply_overrides(cfg, ["data.init_args.seed=3", "data.init_args.pin_memory=true"])
    assert out["data"]["init_args"] == {"seed": 3, "pin_memory": True}
    with pytest.raises(ConfigError, match=r"unknown key 'data.init_args.batchsize'"):
        apply_overrides(cfg, ["data.init_args.batchsize=3"])


@pytest.mark.parametrize("cls", [UrbanCarsDataModule, FamilyDataModule], ids=lambda c: c.__name__)
def test_sebra_fit_seeds_a_data_module_whose_seed_it_hands_on(cls: type) -> None:
    """``sebra fit``'s ``seed_everything`` replaces the default seed LightningCLI filled in, and refuses another."""
    from jsonargparse import Namespace

    from sebra.cli.fit import SeedConflict, follow_seed

    def config(seed: int) -> Namespace:
        data = Namespace(
            class_path=f"{cls.__module__}.{cls.__name__}", init_args=Namespace(root="r", seed=seed)
        )
        return Namespace(seed_everything=453, data=data)

    cfg = config(0)
    follow_seed(cfg)
    assert cfg.data.init_args.seed == 453
    with pytest.raises(SeedConflict, match="data.init_args.seed is 5"):
        follow_seed(config(5))

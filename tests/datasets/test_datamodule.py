"""Every data module takes every base option (declared by the base, handed on with ``**kwargs``), with the base's
meaning; the one schema (:func:`sebra.cli.schema.class_defaults`, jsonargparse) and LightningCLI see each with its
default, and the config readers use it."""

from __future__ import annotations

import inspect

import pytest
from jsonargparse import ArgumentParser

from sebra.cli.config import ConfigError, apply_overrides
from sebra.cli.schema import check_block, class_defaults
from sebra.datasets.bar import BARDataModule
from sebra.datasets.builtin import BuiltinDataModule
from sebra.datasets.celeba import CelebADataModule
from sebra.datasets.csv_manifest import CSVDataModule
from sebra.datasets.datamodule import SebraDataModule
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
BASE = class_defaults(SebraDataModule)
BASE_SIGNATURE = inspect.signature(SebraDataModule.__init__).parameters


def test_values_cover_every_base_argument() -> None:
    assert set(VALUES) == set(BASE) == set(inspect.signature(SebraDataModule.__init__).parameters) - {"self"}


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_every_base_argument_is_taken_with_the_base_default(cls: type) -> None:
    params = class_defaults(cls)
    for name in BASE:
        assert name in params, f"{cls.__name__} lacks {name}"
        if name not in OWN_DEFAULTS:
            assert params[name] == BASE[name], name
    # a base argument is declared again only to give it another default, with the base's type
    signature = inspect.signature(cls.__init__).parameters
    own = set(signature) & set(BASE)
    assert own <= OWN_DEFAULTS | {"seed"}, own
    assert all(params[n] != BASE[n] for n in own - {"seed"}), own
    assert all(signature[n].annotation == BASE_SIGNATURE[n].annotation for n in own), own


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
    params = class_defaults(cls)
    for name in set(BASE) - {"seed", "eval_batch_size"}:
        assert getattr(dm, name) == params[name], name
    assert dm.eval_batch_size == 2 * params["batch_size"]
    assert dm.aug_generator.initial_seed() == params["seed"] == 0


@pytest.mark.parametrize("cls", list(DATA_MODULES), ids=lambda c: c.__name__)
def test_cli_lists_every_option_with_its_default(cls: type) -> None:
    """What ``sebra fit --print_config`` shows under ``data``: jsonargparse resolves ``**kwargs`` the same way."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SebraDataModule, "data")
    required = DATA_MODULES[cls]
    args = [f"--data={cls.__module__}.{cls.__name__}"] + [f"--data.{k}={v}" for k, v in required.items()]
    init = parser.parse_args(args).data.init_args
    params = class_defaults(cls)
    assert list(init.keys()) == list(params)  # every option, in the order of the signatures
    for name, default in params.items():
        assert init[name] == required.get(name, default), name


def test_the_schema_follows_kwargs_up_to_a_class_without_them() -> None:
    class Middle(SebraDataModule):
        def __init__(self, size: int = 1, batch_size: int = 8, **kwargs) -> None:
            super().__init__(batch_size=batch_size, **kwargs)

    class Leaf(Middle):
        def __init__(self, name: str, *args, size: int = 2, **kwargs) -> None:
            super().__init__(size=size, **kwargs)

    class Closed(Middle):
        def __init__(self, size: int = 3) -> None:
            super().__init__(size=size)

    params = class_defaults(Leaf)
    assert list(params)[:3] == ["name", "size", "batch_size"] and set(BASE) <= set(params)
    assert params["size"] == 2 and params["batch_size"] == 8 and params["seed"] == 0
    assert list(class_defaults(Closed)) == ["size"]


@pytest.mark.parametrize(
    "cls", [BuiltinDataModule, UrbanCarsDataModule, ImageFolderDataModule], ids=lambda c: c.__name__
)
def test_overrides_accept_base_arguments_and_refuse_typos(cls: type) -> None:
    """``--set`` (sebra bench / rank) sees the arguments behind ``**kwargs`` and the schema still refuses an unknown
    one, naming the nearest."""
    cfg = {"data": {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": dict(DATA_MODULES[cls])}}
    out = apply_overrides(cfg, ["data.init_args.seed=3", "data.init_args.pin_memory=true"])
    assert out["data"]["init_args"] == {**DATA_MODULES[cls], "seed": 3, "pin_memory": True}
    check_block(out["data"], "data", "data", "b.yaml")
    typo = apply_overrides(cfg, ["data.init_args.batchsize=3"])
    with pytest.raises(
        ConfigError,
        match=rf"^b.yaml: data.init_args: {cls.__name__} got an unexpected argument 'batchsize' "
        r"\(did you mean 'batch_size'\?\)$",
    ):
        check_block(typo["data"], "data", "data", "b.yaml")


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

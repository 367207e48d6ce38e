"""sebra.cli.schema: the one schema (jsonargparse reading the typed constructors) that builds every command's
modules; each refusal is one line naming the file, the key, the class and the problem."""

from __future__ import annotations

import pytest

from sebra.cli.config import ConfigError, apply_overrides
from sebra.cli.schema import build_block, check_block, check_trainer, class_defaults, short_parse_error
from sebra.methods.erm import ERMModule
from sebra.methods.sebra import SebraModule

ERM = {"class_path": "sebra.methods.erm.ERMModule", "init_args": {"backbone": "test_resnet", "lr": 0.1}}
DATA = {"class_path": "sebra.datasets.builtin.BuiltinDataModule", "init_args": {"batch_size": 128}}


def test_class_defaults_follow_kwargs_and_the_nearest_default() -> None:
    erm = class_defaults(ERMModule)
    assert (
        erm["seed"] == 0 and erm["backbone"] == "resnet18"
    )  # declared by NetworkArgs, passed on in **kwargs
    assert class_defaults("sebra.methods.sebra.SebraModule")["epochs"] != erm["epochs"]  # Sebra's own default
    with pytest.raises(ConfigError, match="no class 'Nope'"):
        class_defaults("sebra.methods.Nope")


def test_a_block_is_built_with_its_arguments_and_the_defaults() -> None:
    model = build_block(
        {**ERM, "init_args": {**ERM["init_args"], "seed": 4}}, "model", "methods.erm.model", "b.yaml"
    )
    assert isinstance(model, ERMModule) and model.hparams.lr == 0.1 and model.hparams.seed == 4
    assert model.hparams.epochs == class_defaults(ERMModule)["epochs"]
    dm = build_block(DATA, "data", "data", "b.yaml")
    assert type(dm).__name__ == "BuiltinDataModule" and dm.batch_size == 128


@pytest.mark.parametrize(
    "init_args, message",
    [
        ({"lrr": 1}, "b.yaml: m.init_args: ERMModule got an unexpected argument 'lrr' (did you mean 'lr'?)"),
        ({"lr": "abc"}, "b.yaml: m.init_args.lr (ERMModule): Expected a float. Got value: abc"),
        ({"epochs": True}, "b.yaml: m.init_args.epochs (ERMModule): Expected an int. Got value: True"),
        ({"lr_schedule": "step"}, "b.yaml: m.init_args.lr_schedule (ERMModule): Expected a typing.Literal"),
        ({"batch_size": [1]}, "b.yaml: m.init_args: ERMModule got an unexpected argument 'batch_size'"),
    ],
)
def test_a_refused_name_or_type_is_one_line_naming_key_and_class(init_args: dict, message: str) -> None:
    """Issue 19: --set p_critical=abc reached the class, which compared it with a number (a raw TypeError)."""
    with pytest.raises(ConfigError) as e:
        check_block({**ERM, "init_args": init_args}, "model", "m", "b.yaml")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_value_the_constructor_refuses_keeps_its_own_message() -> None:
    block = {"class_path": "sebra.methods.sebra.SebraModule", "init_args": {"p_critical": 2.0}}
    check_block(block, "model", "methods.sebra.model", "b.yaml")  # a float: the schema's part holds
    with pytest.raises(
        ConfigError, match=r"^b.yaml: methods.sebra.model.init_args: p_critical must lie in \(0, 1\)"
    ):
        build_block(block, "model", "methods.sebra.model", "b.yaml")


def test_a_class_of_the_wrong_kind_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"^b.yaml: data.class_path sebra.methods.erm.ERMModule is not a data module"
    ):
        check_block(ERM, "data", "data", "b.yaml")
    with pytest.raises(
        ConfigError, match=r"^b.yaml: m.class_path: module 'sebra.methods' has no class 'Nope'"
    ):
        check_block({"class_path": "sebra.methods.Nope"}, "model", "m", "b.yaml")


def test_trainer_arguments_are_checked_against_lightning() -> None:
    check_trainer({"accelerator": "auto", "devices": 1, "precision": "32-true"}, "trainer", "b.yaml")
    with pytest.raises(
        ConfigError,
        match=r"^b.yaml: trainer: lightning.Trainer takes no argument 'max_epoch' "
        r"\(did you mean 'max_epochs'\?\)$",
    ):
        check_trainer({"max_epoch": 3}, "trainer", "b.yaml")
    with pytest.raises(ConfigError, match=r"^b.yaml: trainer.precision: .*Given value: bogus"):
        check_trainer({"precision": "bogus"}, "trainer", "b.yaml")


def test_overrides_then_the_schema_is_what_bench_and_demo_do() -> None:
    cfg = {"model": ERM, "data": DATA}
    out = apply_overrides(cfg, ["model.init_args.lr=1e-3", "model.init_args.weight_decay=0.05"])
    assert build_block(out["model"], "model", "model", "b.yaml").hparams.weight_decay == 0.05
    assert SebraModule.__name__ in short_parse_error(
        "Parser key \"model\":\n  Problem with given class_path 'sebra.methods.sebra.SebraModule':\n"
        "    Parser key \"gap\":\n      Expected a <class 'int'>. Got value: x\n  - Expected a NoneType"
    )

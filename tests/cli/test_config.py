"""sebra.cli.config: YAML files and dotted overrides with LightningCLI's keys; every error names the file or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sebra.cli.config import (
    ConfigError,
    apply_overrides,
    import_class,
    mapping_at,
    parse_overrides,
    read_yaml,
)

FIT_LIKE = {
    "model": {
        "class_path": "sebra.methods.erm.ERMModule",
        "init_args": {"backbone": "test_resnet", "lr": 0.1},
    },
    "data": {"class_path": "sebra.datasets.builtin.BuiltinDataModule", "init_args": {"batch_size": 128}},
    "trainer": {"max_epochs": -1},
}


def test_read_yaml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"benchmark config .*none.yaml does not exist"):
        read_yaml(tmp_path / "none.yaml", "benchmark config")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        read_yaml(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: expected a mapping .*got list"):
        read_yaml(bad)
    bad.write_text("a:\n  b: 1\n")
    assert read_yaml(bad) == {"a": {"b": 1}}


def test_values_are_read_as_yaml() -> None:
    got = parse_overrides(
        ["model.init_args.lr=0.01", "a=1e-3", "b=true", "c=null", "d=[val_acc]", "e=full", "f=", "g=-2"]
    )
    assert got == {
        "model.init_args.lr": 0.01,
        "a": 0.001,  # YAML 1.1 would keep 1e-3 as text
        "b": True,
        "c": None,
        "d": ["val_acc"],
        "e": "full",
        "f": "",
        "g": -2,
    }
    assert parse_overrides(["lr=0.5", "trainer.max_epochs=3"], short="model.init_args") == {
        "model.init_args.lr": 0.5,
        "trainer.max_epochs": 3,
    }
    for bad in ("lr", "=1", "a..b=1"):
        with pytest.raises(ConfigError, match=r"--set: expected key=value"):
            parse_overrides([bad])


def test_overrides_are_the_keys_sebra_fit_takes() -> None:
    out = apply_overrides(
        FIT_LIKE,
        [
            "model.init_args.lr=0.01",  # sebra fit --model.init_args.lr 0.01
            "model.init_args.weight_decay=0.05",  # absent from the config, an ERMModule argument
            "data.init_args.batch_size=64",
            "trainer.precision=bf16-mixed",  # a lightning.Trainer argument
        ],
    )
    assert out["model"]["init_args"] == {"backbone": "test_resnet", "lr": 0.01, "weight_decay": 0.05}
    assert out["data"]["init_args"]["batch_size"] == 64 and out["trainer"]["precision"] == "bf16-mixed"
    assert FIT_LIKE["model"]["init_args"]["lr"] == 0.1  # the input is left alone


@pytest.mark.parametrize(
    "override, match",
    [
        ("modle.init_args.lr=1", r"unknown key 'modle' \(there: model, data, trainer\)"),
        ("model.lr=1", r"unknown key 'model.lr' \(there: class_path, init_args\)"),
        ("model.init_args.lr.x=1", r"model.init_args.lr is 0.1, not a mapping"),
        ("model.class_path.x=1", r"not a mapping"),
    ],
)
def test_unknown_keys_are_refused(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--set {override.split('=')[0]}: .*{match}"):
        apply_overrides(FIT_LIKE, [override])


def test_a_missing_init_args_section_is_made_and_aliases_stay_apart() -> None:
    cfg = {"model": {"class_path": "sebra.methods.erm.ERMModule"}, "a": {"x": 1}}
    cfg["b"] = cfg["a"]  # a YAML alias (*anchor) shares one object
    out = apply_overrides(cfg, {"model.init_args.lr": 0.5, "a.x": 2})
    assert out["model"]["init_args"] == {"lr": 0.5}
    assert out["a"] == {"x": 2} and out["b"] == {"x": 1}


def test_mapping_at_and_import_class() -> None:
    assert mapping_at(FIT_LIKE, "model.init_args", "f.yaml") == FIT_LIKE["model"]["init_args"]
    assert mapping_at(FIT_LIKE, "missing", "f.yaml") == {}
    with pytest.raises(ConfigError, match=r"f.yaml: missing must be a non-empty mapping"):
        mapping_at(FIT_LIKE, "missing", "f.yaml", required=True)
    with pytest.raises(ConfigError, match=r"f.yaml: model.class_path must be a mapping"):
        mapping_at(FIT_LIKE, "model.class_path", "f.yaml")
    assert import_class("sebra.methods.erm.ERMModule", "x").__name__ == "ERMModule"
    with pytest.raises(ConfigError, match=r"here: class_path 'ERMModule' is not a dotted path"):
        import_class("ERMModule", "here")
    with pytest.raises(
        ConfigError, match=r"here: cannot import module 'sebra.nope' of class_path 'sebra.nope.X'"
    ):
        import_class("sebra.nope.X", "here")
    with pytest.raises(ConfigError, match=r"here: module 'sebra.methods' has no class 'Nope'"):
        import_class("sebra.methods.Nope", "here")


def test_an_argument_a_file_leaves_out_is_placed_for_the_schema_to_check() -> None:
    """Whether the class takes it (and its type) is the schema's to say (tests/cli/test_schema.py), not this
    placement's: an init_args or trainer key absent from the file is added where it belongs."""
    out = apply_overrides(FIT_LIKE, ["model.init_args.lrr=1", "trainer.max_epoch=3"])
    assert out["model"]["init_args"]["lrr"] == 1 and out["trainer"]["max_epoch"] == 3


def test_the_internal_path_key_is_neither_listed_nor_settable() -> None:
    cfg = {**FIT_LIKE, "_path": "bench.yaml"}
    with pytest.raises(
        ConfigError, match=r"^--set nope: unknown key 'nope' \(there: model, data, trainer\)$"
    ):
        apply_overrides(cfg, ["nope=1"])
    with pytest.raises(ConfigError, match=r"unknown key '_path'"):
        apply_overrides(cfg, ["_path=elsewhere.yaml"])

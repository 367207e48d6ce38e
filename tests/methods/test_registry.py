"""``sebra.methods.METHODS``: every registered method fits and tests on the tiny data, and shows its whole
configuration (every argument typed, no ``**kwargs``) to LightningCLI."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

from sebra.cli.schema import class_defaults
from sebra.methods import METHODS, BaseMethod

#: A few training steps of each method (a new method needs its entry here).
SMOKE = {
    "erm": {"epochs": 1},
    "groupdro": {"epochs": 1},
    "jtt": {"id_epochs": 1, "epochs": 1},
    "lff": {"epochs": 1},
    "sebra": {"max_steps": 1, "epochs": 1, "gap": 1, "rank_optimizer": "adam", "rank_lr": 1e-2},
}


def test_every_method_has_smoke_settings() -> None:
    assert set(SMOKE) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_fits_and_tests(name: str, tiny_dm, make_trainer) -> None:
    model = METHODS[name](backbone="test_resnet", **SMOKE[name])
    assert isinstance(model, BaseMethod)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    assert model.fit_finished()
    trainer.test(
        model, datamodule=tiny_dm, ckpt_path=trainer.checkpoint_callback.best_model_path, verbose=False
    )
    assert 0.0 <= model.test_results["test_wga"] <= model.test_results["test_acc"] <= 1.0
    n = len(tiny_dm.train_dataset)
    for rankings in model.produced_rankings().values():
        assert isinstance(rankings, pd.DataFrame) and len(rankings) == n
        assert {"index", "label", "rank", "position", "p_y"} <= set(rankings.columns)
    assert all(isinstance(v, float) for v in model.extra_metrics().values())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_init_argument_is_typed_and_named(name: str) -> None:
    # what a method declares plus what it hands on in **kwargs (to NetworkArgs), as jsonargparse resolves it
    names = set(class_defaults(METHODS[name]))
    assert {"backbone", "seed", "selection", "epochs", "optimizer", "lr"} <= names
    declared = {}  # each name's nearest declaration, up the classes that take **kwargs
    for klass in METHODS[name].__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        ps = list(inspect.signature(klass.__init__).parameters.values())[1:]
        for p in ps:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                declared.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in ps):
            break
    assert names <= set(declared)  # less where a class fixes a parent's argument (LfF: sampling="uniform")
    for p in (declared[n] for n in names):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, p.name  # no *args
        assert p.annotation is not inspect.Parameter.empty, p.name
        assert p.default is not inspect.Parameter.empty, p.name

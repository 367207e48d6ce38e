"""Constructor choices are read from the ``Literal`` types of the signatures, so the allowed values are written once."""

from __future__ import annotations

from typing import Literal

import pytest

from sebra.methods import ERMModule, GroupDROModule, JTTModule, SebraModule
from sebra.methods._args import check_choices, literal_choices


class _Base:
    def __init__(self, mode: Literal["a", "b"] = "a", size: int = 1) -> None: ...


class _Child(_Base):
    def __init__(self, kind: Literal["x", "y"] | None = None, mode: Literal["a", "b"] = "a") -> None: ...


def test_literal_choices_come_from_every_signature_of_the_class() -> None:
    assert literal_choices(_Child) == {"mode": ("a", "b"), "kind": ("x", "y", None)}
    check_choices(
        _Child, {"kind": None, "mode": "b", "size": 99}
    )  # None allowed where typed; size is no choice
    with pytest.raises(ValueError, match=r"_Child: kind must be one of x, y, None, got 'z'"):
        check_choices(_Child, {"kind": "z"})


def test_every_methods_typed_choices_are_checked() -> None:
    sebra = literal_choices(SebraModule)
    assert sebra["rank_by"] == ("elimination", "confidence", "fused")
    assert sebra["optimizer"] == sebra["rank_optimizer"] == ("sgd", "adam", "adamw")
    assert literal_choices(GroupDROModule)["sampling"] == ("uniform", "group_balanced")
    for cls, name, bad in [
        (SebraModule, "confidence_score", "median"),
        (SebraModule, "rank_optimizer", "SGD"),
        (ERMModule, "sampling", "balanced"),
        (JTTModule, "lr_schedule", "step"),
        (GroupDROModule, "optimizer", "lbfgs"),
        (ERMModule, "selection", "best"),
    ]:
        with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be one of .*, got '{bad}'"):
            cls(**{name: bad})

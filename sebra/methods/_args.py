"""Checking the methods' constructor arguments: each bad value is refused when the module is built, with a message
that names the class, the argument, what is allowed and the value given."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import types
import typing
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "ARG_RULES",
    "SELECTIONS",
    "LRSchedule",
    "Optimizer",
    "Sampling",
    "Selection",
    "check_args",
    "check_backbone",
    "check_choices",
    "literal_choices",
    "require",
]

Selection = Literal["val_wga", "val_acc", "last"]
SELECTIONS: tuple[str, ...] = get_args(Selection)
#: The optimizers :func:`sebra.methods._optim.make_optimizer` builds.
Optimizer = Literal["sgd", "adam", "adamw"]
LRSchedule = Literal["none", "cosine"]
#: ``uniform`` draws, or each (class, bias attributes) group equally often (uses group labels).
Sampling = Literal["uniform", "group_balanced"]


@functools.cache
def literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """The allowed values of every constructor argument of ``cls`` typed as a ``Literal`` (also ``Literal | None``,
    where ``None`` is then allowed), read from the signatures of ``cls.__init__`` and its bases'.

    The type is the one statement of what an argument may be: jsonargparse checks it for ``sebra fit`` and
    :func:`check_choices` checks it for Python callers, so no list of allowed values is written twice.
    """
    out: dict[str, tuple[Any, ...]] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or not inspect.isfunction(init):
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # an annotation that does not evaluate here: such a class is checked by hand
            continue
        for name in inspect.signature(init).parameters:
            allowed = _literal_values(hints.get(name))
            if allowed is not None:
                out[name] = allowed
    return out


def _literal_values(hint: Any) -> tuple[Any, ...] | None:
    if get_origin(hint) is Literal:
        return get_args(hint)
    if get_origin(hint) in (typing.Union, types.UnionType):
        parts = [_literal_values(a) if a is not type(None) else (None,) for a in get_args(hint)]
        if all(p is not None for p in parts) and any(p != (None,) for p in parts):
            return tuple(v for p in parts for v in p)  # type: ignore[union-attr]
    return None


def check_choices(owner: type, values: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a value outside its argument's ``Literal`` (:func:`literal_choices`), naming the
    class, the argument, the allowed values and the value given."""
    choices = literal_choices(owner)
    for name, value in values.items():
        allowed = choices.get(name)
        if allowed is not None and not any(value == a and type(value) is type(a) for a in allowed):
            shown = ", ".join("None" if a is None else str(a) for a in allowed)
            raise ValueError(f"{owner.__name__}: {name} must be one of {shown}, got {value!r}")


def require(
    owner: str,
    name: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    none_ok: bool = False,
    note: str = "",
) -> None:
    """Raise ``ValueError`` unless ``value`` is a number (an integer with ``integer``) in the allowed range.

    The message names the class, the argument, the allowed range and the value, e.g.
    ``SebraModule: gap must be >= 1 (an integer), got 2.5``.

    Args:
        owner: the class whose constructor checks (shown first).
        name: the argument.
        low, high: inclusive bounds (``low_open``: ``low`` itself is excluded).
        none_ok: ``None`` is allowed too.
        note: appended in parentheses (what the value means).
    """
    if value is None and none_ok:
        return
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None:
        rng = f"in {'(' if low_open else '['}{low}, {high}]"
    elif low is not None:
        rng = f"{'>' if low_open else '>='} {low}"
    elif high is not None:
        rng = f"<= {high}"
    else:
        rng = ""
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)  # nan and inf (lr=inf) are never a setting
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        alt = " or None" if none_ok else ""
        what = f"{rng}{alt} ({kind}{'; ' + note if note else ''})" if rng else f"{kind}{alt}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}")


def check_backbone(owner: str, name: Any) -> None:
    """Raise ``ValueError`` when ``name`` is not a timm model name (``resnet50``, ``resnet50.tv_in1k``, ...).

    Names with a scheme (``hf-hub:...``, ``local-dir:...``) are left to ``timm.create_model`` at fit time.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{owner}: backbone must be a timm model name such as 'resnet50', got {name!r}")
    from sebra.backbones import close_model_names  # timm only when a backbone is checked

    close = close_model_names(name)
    if close is None:
        return
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ValueError(
        f"{owner}: unknown model: backbone {name!r} is not a timm model name{hint} "
        "(timm.list_models('pattern*') lists them)"
    )


#: The allowed range of each constructor argument the methods share (``require``'s keywords), by name.
ARG_RULES: dict[str, dict[str, Any]] = {
    "epochs": {"integer": True, "low": 1},
    "id_epochs": {"integer": True, "low": 1},
    "max_steps": {"integer": True, "low": 1, "note": "ranking steps"},
    "gap": {"integer": True, "low": 1, "note": "positives come from rank r + gap or higher"},
    "batch_size": {"integer": True, "low": 1, "none_ok": True},
    "rank_bins": {"integer": True, "low": 2, "none_ok": True},
    "num_classes": {"integer": True, "low": 2, "none_ok": True},
    "seed": {"integer": True, "low": 0},
    "lr": {"low": 0, "low_open": True},
    "rank_lr": {"low": 0, "low_open": True},
    "id_lr": {"low": 0, "low_open": True, "none_ok": True},
    "momentum": {"low": 0},
    "rank_momentum": {"low": 0},
    "weight_decay": {"low": 0},
    "rank_weight_decay": {"low": 0},
    "id_weight_decay": {"low": 0, "none_ok": True},
    "temperature": {"low": 0, "low_open": True},
    "ce_weight": {"low": 0, "note": "the weight lambda of the cross-entropy term"},
    "contrastive_weight": {"low": 0, "note": "0 switches the contrastive term off"},
    "mean_window": {"integer": True, "low": 1, "none_ok": True},
    "rank_repeats": {"integer": True, "low": 1},
    "confidence_steps": {"integer": True, "low": 1},
    "second_look_epochs": {"integer": True, "low": 0},
    "second_look_max_epochs": {"integer": True, "low": 0},
    "first_step_passes": {"low": 0, "low_open": True},
    "retain_eliminated": {"low": 0, "high": 1},
    "upweight": {"low": 1, "note": "1 = plain ERM retraining"},
    "eta": {"low": 0},
    "adjustment": {"low": 0},
}


def check_args(owner: str, rules: dict[str, dict[str, Any]] | None = None, /, **values: Any) -> None:
    """Check numeric constructor arguments against :data:`ARG_RULES` (``rules`` overrides them); ``backbone`` must
    be a timm model name (:func:`check_backbone`). Raises ``ValueError`` naming ``owner``, the argument, what is
    allowed and the value given. Choices (``Literal`` types) are :func:`check_choices`'."""
    rules = {**ARG_RULES, **(rules or {})}
    for name, value in values.items():
        if name == "backbone":
            check_backbone(owner, value)
        else:
            require(owner, name, value, **rules[name])

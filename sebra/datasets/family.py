"""A family of two-shortcut benchmarks built like the built-in one: same images, same UrbanCars layout, other shortcuts.

A *variant* picks the class grouping of the ``animal-mnist`` animals and, for each of the two bias attributes (A and
B), one shortcut *kind* and its strength. Every variant has UrbanCars' cell sizes (3610 / 190 / 190 / 10 per class in
train, 95% aligned on each attribute; 125 per cell in val and test), is written in UrbanCars' folder layout and read
back by the UrbanCars reader, and is a deterministic function of its spec.

Shortcut kinds (``strength`` in 0..1; the two values of an attribute are the class-aligned looks of class 0 and 1):

* ``tint``: background colour, blue-ish vs orange-ish (the built-in's attribute A).
* ``symbol``: a 7 px corner symbol, plus vs ring (the built-in's attribute B).
* ``border``: a 2 px frame, cyan vs red.
* ``stripes``: a grey background texture, horizontal vs vertical lines.
* ``objcolor``: the animal itself tinted, yellow-ish vs violet-ish.
* ``patch``: a 5 px coloured square at a random place, green vs magenta.
* ``blur``: the animal sharp vs blurred (Gaussian, sigma ``1.5 * strength`` px).
* ``gradient``: a grey background ramp, brightening top to bottom vs bottom to top (vertical, so the
  horizontal flip of the augmentation keeps it).
* ``dot``: a 2 px grey dot near the top-right vs the bottom-left corner (small, so learned slowly).

The two attributes of a variant must be of different kinds. The built-in benchmark is the variant ``builtin``
(tint 0.3 / symbol 0.4, large vs small animals): :mod:`sebra.datasets.builtin` renders and caches it as this
variant, in the same folder.

Which variants tune settings and which only evaluate is fixed in :data:`VARIANTS` (``role``): see BENCHMARKS.md §7.
``spent`` marks held-out variants that have been looked at more than once: their rows stay, but they no longer count as
unseen data (settings are still never chosen on them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from sebra.datasets.animal_mnist import ANIMAL_CLASSES, load_animal_mnist
from sebra.datasets.base import BiasSpec
from sebra.datasets.generated import GeneratedDataModule, data_home, is_generated, write_generated

__all__ = [
    "GROUPINGS",
    "KINDS",
    "ROLES",
    "VARIANTS",
    "FamilyDataModule",
    "Shortcut",
    "VariantSpec",
    "ensure_variant",
    "render_variant",
    "variant",
    "variant_bias",
    "variants",
    "write_variant",
]

FORMAT_VERSION = 1
KINDS = ("tint", "symbol", "border", "stripes", "objcolor", "patch", "blur", "gradient", "dot")
ROLES = ("dev", "heldout", "spent")
#: Target groupings of the ten animal-mnist classes (calibration, docs/calibration: core task ~96% / ~90%).
GROUPINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "large_small": (
        ("bear", "cow", "elephant", "giraffe", "horse"),
        ("bird", "cat", "dog", "sheep", "zebra"),
    ),
    "farm_wild": (("cat", "cow", "dog", "horse", "sheep"), ("bear", "bird", "elephant", "giraffe", "zebra")),
}
_TINTS = np.array([[0.25, 0.45, 1.0], [1.0, 0.55, 0.15]], dtype=np.float32)  # blue-ish, orange-ish
_SYMBOL_SIZE = 7
_SYMBOL_COLOURS = np.array([[0.3, 1.0, 0.3], [1.0, 0.3, 1.0]], dtype=np.float32)  # green plus, magenta ring
_BORDER = np.array([[0.2, 0.9, 0.9], [0.95, 0.2, 0.2]], dtype=np.float32)  # cyan, red
_OBJ = np.array([[1.0, 0.85, 0.2], [0.7, 0.35, 1.0]], dtype=np.float32)  # yellow-ish, violet-ish
_PATCH = np.array([[0.2, 1.0, 0.2], [1.0, 0.2, 1.0]], dtype=np.float32)  # green, magenta
_PATCH_SIZE = 5


@dataclass(frozen=True)
class Shortcut:
    """One spurious attribute: how it is drawn (``kind``, one of :data:`KINDS`) and how visible it is (0..1)."""

    kind: str
    strength: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"shortcut kind must be one of {KINDS}, got {self.kind!r}")
        if not 0 < float(self.strength) <= 1:
            raise ValueError(
                f"shortcut strength must lie in (0, 1], got {self.strength} for kind {self.kind!r}"
            )


@dataclass(frozen=True)
class VariantSpec:
    """What a variant's data depends on (written next to it; a mismatch triggers regeneration).

    ``stronger`` (0 = A, 1 = B) records which attribute costs ERM more (measured, BENCHMARKS.md §7); it only feeds the
    4-level ranking ground truth. ``speed`` records how fast each attribute is learned alone: optimizer steps (A, B)
    until a network predicting that attribute reaches 95% on validation (:mod:`sebra.bench.learning_speed`, seed 0;
    one training pass is 60 steps), ``None`` where not measured. ``role``, ``note``, ``stronger`` and ``speed``
    describe the variant and do not change the data.
    """

    name: str
    a: Shortcut
    b: Shortcut
    grouping: str = "large_small"
    stronger: int = 0
    role: str = "dev"
    note: str = ""
    speed: tuple[float, float] | None = None
    seed: int = 0
    image_size: int = 32
    tint_jitter: float = 0.05
    ratio: float = 0.95
    counts_train: tuple[int, int, int, int] = (3610, 190, 190, 10)
    per_cell_eval: int = 125
    attr_names: tuple[str, str] = field(default=("bg", "coobj"))
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.a.kind == self.b.kind:
            raise ValueError(
                f"variant {self.name!r}: both attributes are {self.a.kind!r}; use two different kinds"
            )
        if self.grouping not in GROUPINGS:
            raise ValueError(
                f"variant {self.name!r}: grouping must be one of {sorted(GROUPINGS)}, got {self.grouping!r}"
            )
        if self.role not in ROLES:
            raise ValueError(f"variant {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if self.stronger not in (0, 1):
            raise ValueError(f"variant {self.name!r}: stronger must be 0 (A) or 1 (B), got {self.stronger!r}")

    def data_key(self) -> dict:
        """The fields the rendered data depends on (not role, note or stronger)."""
        d = asdict(self)
        for k in ("role", "note", "stronger", "name", "speed"):
            d.pop(k)
        return d


def variant_bias(spec: VariantSpec) -> BiasSpec:
    """The variant's :class:`BiasSpec`: attribute value ``c`` is aligned with class ``c`` on both attributes."""
    return BiasSpec(
        attr_names=tuple(spec.attr_names),
        aligned_value=((0, 0), (1, 1)),
        train_ratios=(spec.ratio, spec.ratio),
        stronger=spec.stronger,
    )


# --------------------------------------------------------------------------------------------------- rendering
def _symbol(kind: int) -> np.ndarray:
    """Binary mask: 0 = plus, 1 = ring."""
    k = _SYMBOL_SIZE
    m = np.zeros((k, k), dtype=np.float32)
    if kind == 0:
        m[k // 2 - 1 : k // 2 + 2, :] = 1
        m[:, k // 2 - 1 : k // 2 + 2] = 1
    else:
        m[:2, :] = m[-2:, :] = m[:, :2] = m[:, -2:] = 1
    return m


def _cells(counts: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(n, A aligned, B aligned) per training cell, rarest cell first (the order images are assigned)."""
    aligned, a_conf, b_conf, both = counts
    return [(both, 0, 0), (b_conf, 1, 0), (a_conf, 0, 1), (aligned, 1, 1)]


def _stripes(value: int, size: int) -> np.ndarray:
    """1 on the lines of a period-4 pattern: horizontal lines for value 0, vertical for 1."""
    line = (np.arange(size) % 4 < 2).astype(np.float32)
    return np.repeat(line[:, None], size, 1) if value == 0 else np.repeat(line[None, :], size, 0)


def _render_one(
    sil: np.ndarray, values: dict[str, int], spec: VariantSpec, rng: np.random.Generator
) -> np.ndarray:
    """One RGB uint8 image. ``values`` maps each of the variant's two kinds to its attribute value (0/1).

    Random draws happen in a fixed order (tint jitter, then patch position), and only for the kinds present; the
    built-in benchmark (``tint`` + ``symbol``) is rendered by this function too (a test pins its bytes).
    """
    s = spec.image_size
    strength = {spec.a.kind: spec.a.strength, spec.b.kind: spec.b.strength}
    img = Image.fromarray(sil)
    if "blur" in values and values["blur"] == 1:
        img = img.filter(ImageFilter.GaussianBlur(1.5 * strength["blur"]))
    if s != 32:
        img = img.resize((s - 4, s - 4), Image.BILINEAR)
    m = np.asarray(img, dtype=np.float32) / 255.0
    m = np.pad(m, ((2, 2), (2, 2)))[:s, :s]
    bg = np.zeros(
        (s, s, 3), np.float64
    )  # float64 like the built-in renderer, so its variant stays bit-identical
    if "tint" in values:
        bg += np.clip(_TINTS[values["tint"]] + rng.normal(0, spec.tint_jitter, 3), 0, 1) * strength["tint"]
    if "stripes" in values:
        bg += _stripes(values["stripes"], s)[..., None] * strength["stripes"] * 0.6
    if "gradient" in values:
        ramp = np.linspace(0.0, 1.0, s, dtype=np.float64)
        ramp = ramp if values["gradient"] == 0 else ramp[::-1]
        bg += np.repeat(ramp[:, None], s, 1)[..., None] * strength["gradient"] * 0.7
    obj = np.ones(3, np.float32)
    if "objcolor" in values:
        obj = (1 - strength["objcolor"]) * obj + strength["objcolor"] * _OBJ[values["objcolor"]]
    x = m[..., None] * obj + (1 - m[..., None]) * bg
    if "border" in values:
        c = _BORDER[values["border"]] * strength["border"]
        x[:2], x[-2:], x[:, :2], x[:, -2:] = c, c, c, c
    if "symbol" in values:
        k = _SYMBOL_SIZE
        x[1 : 1 + k, 1 : 1 + k][_symbol(values["symbol"]) > 0] = (
            _SYMBOL_COLOURS[values["symbol"]] * strength["symbol"]
        )
    if "patch" in values:
        k = _PATCH_SIZE
        r, c = rng.integers(2, s - 2 - k, size=2)
        x[r : r + k, c : c + k] = _PATCH[values["patch"]] * strength["patch"]
    if "dot" in values:
        r, c = (3, s - 6) if values["dot"] == 0 else (s - 6, 3)
        x[r : r + 2, c : c + 2] = strength["dot"]
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_variant(spec: VariantSpec) -> dict[str, dict[str, np.ndarray]]:
    """Render a variant in memory: ``{split: {"images", "label", "bg", "coobj", "animal"}}`` (attribute A is stored
    as ``bg`` and B as ``coobj``, UrbanCars' names, whatever their kind)."""
    images, animals = load_animal_mnist()
    rng = np.random.default_rng(spec.seed)
    out: dict[str, dict[str, list]] = {
        k: {"images": [], "label": [], "bg": [], "coobj": [], "animal": []} for k in ("train", "val", "test")
    }
    eval_cells = [(spec.per_cell_eval, a, b) for a in (1, 0) for b in (1, 0)]
    for label, names in enumerate(GROUPINGS[spec.grouping]):
        ids = [ANIMAL_CLASSES.index(n) for n in names]
        per_animal = [rng.permutation(np.flatnonzero(animals == a)) for a in ids]
        order = np.stack(per_animal, axis=1).reshape(
            -1
        )  # interleaved: every cell gets an even mix of animals
        start = 0
        for split, cells in (("val", eval_cells), ("test", eval_cells), ("train", _cells(spec.counts_train))):
            for n, a_al, b_al in cells:
                take = order[start : start + n]
                start += n
                a = label if a_al else 1 - label
                b = label if b_al else 1 - label
                for i in take:
                    out[split]["images"].append(
                        _render_one(images[i], {spec.a.kind: a, spec.b.kind: b}, spec, rng)
                    )
                    out[split]["label"].append(label)
                    out[split]["bg"].append(a)
                    out[split]["coobj"].append(b)
                    out[split]["animal"].append(int(animals[i]))
        if start > len(order):
            raise ValueError(
                f"variant {spec.name!r}: class {label} needs {start} images but has {len(order)}"
            )
    return {
        k: {f: np.stack(v) if f == "images" else np.asarray(v, dtype=np.int64) for f, v in d.items()}
        for k, d in out.items()
    }


def write_variant(root: str | Path, spec: VariantSpec) -> Path:
    """Render and write a variant under ``root/urbancars/`` in UrbanCars' layout (atomically); returns ``root``."""
    return write_generated(root, render_variant(spec), spec.ratio, "variant.json", spec.data_key())


def default_root(name: str) -> Path:
    """Where a variant is cached: ``<data home>/family/<name>`` (:func:`~sebra.datasets.generated.data_home`), except
    ``builtin``, the built-in benchmark, which is cached in that benchmark's own folder ``<data home>/builtin``."""
    return data_home() / "builtin" if name == "builtin" else data_home() / "family" / name


def ensure_variant(spec: VariantSpec, root: str | Path | None = None) -> Path:
    """Write the variant under ``root`` unless the same data is already there; returns ``root``."""
    root = Path(root) if root is not None else default_root(spec.name)
    return root if is_generated(root, "variant.json", spec.data_key()) else write_variant(root, spec)


# --------------------------------------------------------------------------------------------------- registry
# fmt: off
#: The registered variants. The dev / held-out split was fixed before the first trial and is not to be changed:
#: settings of any method may be chosen on ``dev`` variants only; ``heldout`` variants are only evaluated.
VARIANTS: dict[str, VariantSpec] = {v.name: v for v in (
    VariantSpec("builtin", Shortcut("tint", 0.3), Shortcut("symbol", 0.4), role="dev", speed=(5, 50), note="the built-in benchmark (the demo): background tint (stronger) and corner symbol"),
    VariantSpec("stripes-objcolor", Shortcut("stripes", 0.5), Shortcut("objcolor", 0.35), stronger=0, role="dev", speed=(10, 20), note="background texture and animal colour; A (texture) measured the stronger"),
    VariantSpec("farm-border-blur", Shortcut("border", 0.5), Shortcut("blur", 0.8), grouping="farm_wild", stronger=1, role="dev", note="farm vs wild animals (core ~90%); coloured frame and blurred animal; B (blur) measured the stronger"),
    # added for issue 17 (learning speed): one shortcut learned within the first pass, the other >= 5x more slowly
    VariantSpec("gradient-dot", Shortcut("gradient", 0.6), Shortcut("dot", 0.6), role="dev", speed=(10, 250), note="background brightness ramp (learned in 10 steps) and a 2 px corner dot (250 steps: 4 passes); the fast shortcut is A"),
    VariantSpec("farm-dot-border", Shortcut("dot", 0.8), Shortcut("border", 0.9), grouping="farm_wild", stronger=1, role="dev", speed=(175, 5), note="farm vs wild; a 2 px corner dot (175 steps) and a strong coloured frame (5 steps); the fast shortcut is B"),
    # added in the tenth session (issue 17): the slow shortcut learned just beyond the first pass (1-2 passes), as on
    # the spent second held-out set, which the dev set above (4 passes or within the first) did not represent
    VariantSpec("stripes-faintpatch", Shortcut("stripes", 0.8), Shortcut("patch", 0.2), role="dev", speed=(5, 100), note="strong background stripes (5 steps) and a faint randomly placed square (100 steps: 1.7 passes); the fast shortcut is A"),
    VariantSpec("farm-faintgradient-border", Shortcut("gradient", 0.15), Shortcut("border", 0.7), grouping="farm_wild", stronger=1, role="dev", speed=(75, 5), note="farm vs wild; a faint background ramp (75 steps: 1.25 passes) and a coloured frame (5 steps); the fast shortcut is B"),
    # added in the fifteenth session (issue 17): the spent fourth set's failure in dev: an imperfect core (farm vs
    # wild), a fast shortcut and a faint, randomly placed one that ERM needs about 3 passes for
    VariantSpec("farm-faintpatch-stripes", Shortcut("patch", 0.1), Shortcut("stripes", 0.8), grouping="farm_wild", role="dev", speed=(185, 5), note="farm vs wild; a very faint randomly placed square (185 steps: 3.1 passes) and strong background stripes (5 steps); the fast shortcut is B"),
    VariantSpec("farm-objcolor-faintpatch", Shortcut("objcolor", 0.7), Shortcut("patch", 0.1), grouping="farm_wild", role="dev", speed=(5, 140), note="farm vs wild; the animal's colour (5 steps) and a very faint randomly placed square (140 steps: 2.3 passes); the fast shortcut is A (the spent farm-faintpatch-objcolor's kinds, mirrored)"),
    VariantSpec("farm-tint-faintpatch", Shortcut("tint", 0.6), Shortcut("patch", 0.09), grouping="farm_wild", role="dev", speed=(5, 100), note="farm vs wild; a background tint (5 steps) and a very faint randomly placed square (100 steps: 1.7 passes); the fast shortcut is A"),
    # the first held-out set: looked at twice (issues 11 and 17), so spent; kept for its rows, not for new claims
    VariantSpec("patch-tint", Shortcut("patch", 0.6), Shortcut("tint", 0.3), stronger=1, role="spent", note="spent held-out; randomly placed coloured square and background tint; B (tint) the stronger"),
    VariantSpec("border-stripes", Shortcut("border", 0.4), Shortcut("stripes", 0.4), role="spent", note="spent held-out; coloured frame and background texture; A (frame) measured the stronger"),
    VariantSpec("farm-objcolor-symbol", Shortcut("objcolor", 0.3), Shortcut("symbol", 0.5), grouping="farm_wild", role="spent", note="spent held-out; farm vs wild animals; animal colour and corner symbol, measured about equally strong"),
    # the second held-out set (issue 17), registered before any trial on the new dev variants; looked at four times
    # (BENCHMARKS.md §7.5, §7.8, §9.1, §7.9), so spent
    VariantSpec("tint-faintpatch", Shortcut("tint", 0.8), Shortcut("patch", 0.15), role="spent", speed=(10, 75), note="spent held-out; strong background tint (10 steps) and a faint randomly placed square (75 steps); the fast shortcut is A"),
    VariantSpec("farm-faintsymbol-stripes", Shortcut("symbol", 0.12), Shortcut("stripes", 0.9), grouping="farm_wild", stronger=1, role="spent", speed=(105, 5), note="spent held-out; farm vs wild; a faint corner symbol (105 steps) and strong background stripes (5 steps); the fast shortcut is B"),
    VariantSpec("objcolor-gradient", Shortcut("objcolor", 0.5), Shortcut("gradient", 0.3), role="spent", speed=(5, 25), note="spent held-out; animal colour (5 steps) and a weak background ramp (25 steps): both learned within the first pass"),
    # the third held-out set (issue 17, tenth session), registered in a commit of its own before any Sebra run of that
    # session; looked at twice (BENCHMARKS.md §7.10, §7.12), so spent
    VariantSpec("objcolor-faintdot", Shortcut("objcolor", 0.7), Shortcut("dot", 0.5), role="spent", speed=(5, 210), note="spent held-out; strong animal colour (5 steps) and a faint 2 px corner dot (210 steps: 3.5 passes); the fast shortcut is A"),
    VariantSpec("farm-faintsymbol-tint", Shortcut("symbol", 0.15), Shortcut("tint", 0.6), grouping="farm_wild", stronger=1, role="spent", speed=(70, 5), note="spent held-out; farm vs wild; a faint corner symbol (70 steps) and a background tint (5 steps); the fast shortcut is B"),
    VariantSpec("blur-patch", Shortcut("blur", 0.6), Shortcut("patch", 0.35), role="spent", speed=(25, 50), note="spent held-out; blurred animal (25 steps) and a randomly placed square (50 steps): both learned within the first pass (a control)"),
    # the fourth held-out set (issue 17, thirteenth session), registered in a commit of its own before any method run
    # on it (learning speeds measured first, seed 0); kinds or strengths no dev variant uses; two with a large
    # learning-speed difference (the fast one A in one, B in the other), one control; looked at twice (the shipped
    # configuration and its fused ablation, BENCHMARKS.md §7.14), so spent: the next trial registers a fresh set first
    VariantSpec("border-faintblur", Shortcut("border", 0.6), Shortcut("blur", 0.3), role="spent", speed=(10, 100), note="spent held-out; a coloured frame (10 steps) and a faintly blurred animal (100 steps: 1.7 passes); the fast shortcut is A"),
    VariantSpec("farm-faintpatch-objcolor", Shortcut("patch", 0.1), Shortcut("objcolor", 0.6), grouping="farm_wild", role="spent", speed=(210, 5), note="spent held-out; farm vs wild; a very faint randomly placed square (210 steps: 3.5 passes) and the animal's colour (5 steps); the fast shortcut is B"),
    VariantSpec("symbol-gradient", Shortcut("symbol", 0.25), Shortcut("gradient", 0.25), role="spent", speed=(40, 20), note="spent held-out; a corner symbol (40 steps) and a background ramp (20 steps): both learned within the first pass (a control)"),
    # the fifth held-out set, registered in the fifteenth session before any method ran on it (candidates' speeds:
    # benchmarks/results/heldout5/candidate_speeds.jsonl); kinds at strengths no dev variant uses
    # (farm-faintdot-symbol first had dot 0.4 / symbol 0.7: ERM worst-group 45.6 at seed 0, above the bound of 40,
    # so it was made stronger before any method but ERM and group-balanced ran: results/heldout5/calibration_rejected.csv)
    VariantSpec("farm-faintdot-symbol", Shortcut("dot", 0.5), Shortcut("symbol", 0.8), grouping="farm_wild", role="spent", speed=(130, 25), note="farm vs wild; a faint 2 px corner dot (130 steps: 2.2 passes) and a corner symbol (25 steps); the fast shortcut is B"),
    VariantSpec("gradient-faintsymbol", Shortcut("gradient", 0.4), Shortcut("symbol", 0.1), role="spent", speed=(15, 100), note="a background ramp (15 steps) and a faint corner symbol (100 steps: 1.7 passes); the fast shortcut is A"),
    VariantSpec("blur-border", Shortcut("blur", 0.5), Shortcut("border", 0.3), role="spent", speed=(30, 10), note="a blurred animal (30 steps) and a thin coloured frame (10 steps): both learned within the first pass (a control)"),
    # the sixth held-out set, registered in the nineteenth session before any method ran on it (candidates' speeds:
    # benchmarks/results/heldout6/candidate_speeds.jsonl); kinds at strengths no dev variant uses; two with an
    # imperfect core (farm vs wild) like the dev failure variants, the fast shortcut B in one and A in the other
    VariantSpec("farm-faintpatch-gradient", Shortcut("patch", 0.12), Shortcut("gradient", 0.5), grouping="farm_wild", role="heldout", speed=(145, 10), note="farm vs wild; a faint randomly placed square (145 steps: 2.4 passes) and a background ramp (10 steps); the fast shortcut is B"),
    VariantSpec("farm-border-faintgradient", Shortcut("border", 0.65), Shortcut("gradient", 0.1), grouping="farm_wild", role="heldout", speed=(5, 105), note="farm vs wild; a coloured frame (5 steps) and a very faint background ramp (105 steps: 1.75 passes); the fast shortcut is A"),
    VariantSpec("objcolor-faintsymbol", Shortcut("objcolor", 0.55), Shortcut("symbol", 0.08), role="heldout", speed=(5, 75), note="the animal's colour (5 steps) and a very faint corner symbol (75 steps: 1.25 passes); the fast shortcut is A"),
)}
# fmt: on


def variant(name: str) -> VariantSpec:
    """A registered variant by name (a clear error listing the names otherwise)."""
    return _lookup(name)


def _lookup(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark variant {name!r}; registered: {', '.join(VARIANTS)}") from None


def variants(role: str | None = None) -> list[str]:
    """Names of the registered variants, optionally only those of one role (``dev`` / ``heldout``)."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return [n for n, v in VARIANTS.items() if role is None or v.role == role]


class FamilyDataModule(GeneratedDataModule):
    """A registered benchmark variant, generated on first use and read back through the UrbanCars reader.

    Args:
        variant: name of a registered variant (:data:`VARIANTS`).
        root: where to write it (default :func:`default_root`; ``builtin`` shares the built-in benchmark's folder).

    Other arguments: see :class:`~sebra.datasets.generated.GeneratedDataModule`; ``seed`` seeds the batch
    augmentation (vary it with the training seed).
    """

    def __init__(self, variant: str = "builtin", root: str | None = None, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        self.spec = _lookup(variant)

    def ensure_data(self) -> Path:
        """Write the variant unless it is already there; returns its folder."""
        return ensure_variant(self.spec, self.data_root)

    def data_bias(self) -> BiasSpec:
        """The variant's :func:`variant_bias`."""
        return variant_bias(self.spec)

    def data_class_names(self) -> list[str]:
        """The grouping's two names, e.g. ``["large", "small"]``."""
        return self.spec.grouping.split("_")

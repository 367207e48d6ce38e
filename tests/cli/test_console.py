"""sebra/cli/console.py: Lightning's chatter muted (sebra's own messages kept), and the per-phase progress lines."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info
from tiny_data import TINY_SEBRA, TinyDataModule

from sebra.cli.console import Phase, PhaseProgress, current_phase, format_duration, quiet_lightning
from sebra.methods import ERMModule, JTTModule, SebraModule


# ------------------------------------------------------------------------------------------------- quiet_lightning
def _device_banner() -> None:
    L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)  # "GPU available: ...", tips


def test_lightning_banner_and_tips_are_muted_and_sebras_messages_kept(caplog) -> None:
    caplog.set_level(logging.INFO)
    with quiet_lightning():
        _device_banner()
        rank_zero_info(
            "ranking step 1: eliminated 3, 5 active"
        )  # logged from outside Lightning, as sebra does
    text = caplog.text
    assert "GPU available" not in text and "TPU available" not in text and "Tip:" not in text
    assert "ranking step 1: eliminated 3, 5 active" in text


def test_verbose_changes_nothing(caplog) -> None:
    caplog.set_level(logging.INFO)
    with quiet_lightning(verbose=True):
        _device_banner()
    assert "GPU available" in caplog.text


def test_own_messages_can_be_muted_too(caplog) -> None:
    caplog.set_level(logging.INFO)
    with quiet_lightning(own_messages=False):
        rank_zero_info("ranking step 1: eliminated 3, 5 active")
    assert "ranking step" not in caplog.text


def test_logger_levels_and_filters_are_restored(caplog) -> None:
    names = ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero")
    before = [(logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names]
    with quiet_lightning():
        pass
    assert [(logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names] == before
    caplog.set_level(logging.INFO)
    _device_banner()
    assert "GPU available" in caplog.text  # muted inside the block only


def test_noise_warnings_are_dropped_and_real_ones_kept() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn(
                "The number of training batches (2) is smaller than ...", PossibleUserWarning, stacklevel=1
            )
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)
            warnings.warn(
                "Starting from v1.9.0, `tensorboardX` has been removed as a dependency", stacklevel=1
            )
            warnings.warn("JTT: the error set is empty", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["JTT: the error set is empty"]


# ---------------------------------------------------------------------------------------------------- the phases
def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 9.6, 75, 3725)] == ["0:00", "0:10", "1:15", "1:02:05"]


def _sebra(stage: str, rank_repeats: int = 1, **counters: object) -> SebraModule:
    model = SebraModule(backbone="test_resnet", max_steps=12, epochs=8, rank_repeats=rank_repeats)
    model.stage = stage
    for k, v in counters.items():  # the ranking counters are the Stage 1 component's
        setattr(model.ranking if k in ("controller", "repeat") else model, k, v)
    return model


def test_phase_of_each_method_stage() -> None:
    assert current_phase(_sebra("rank", controller=SimpleNamespace(step=1), repeat=0)) == Phase(
        "Stage 1", "ranking step", 2, 12, early_end=True
    )
    assert current_phase(_sebra("rank", 3, controller=SimpleNamespace(step=0), repeat=1)).name == (
        "Stage 1 run 2/3"
    )
    assert current_phase(_sebra("rank")) == Phase(
        "Stage 1", "ranking step", 1, 12, early_end=True
    )  # before setup
    assert current_phase(_sebra("mitigate", final_epoch=2)) == Phase("Stage 2", "epoch", 3, 8)
    jtt = JTTModule(backbone="test_resnet", id_epochs=2, epochs=10)
    jtt.id_epoch = 1
    assert current_phase(jtt) == Phase("JTT identification", "epoch", 2, 2)
    jtt.stage, jtt.final_epoch = "retrain", 3
    assert current_phase(jtt) == Phase("JTT retraining", "epoch", 4, 10)
    erm = ERMModule(backbone="test_resnet", epochs=10)
    assert current_phase(erm) == Phase("ERM", "epoch", 1, 10) == erm.phase()


def test_phase_of_a_module_without_one_is_its_epoch() -> None:
    class MyNetModule:  # a user's LightningModule: the class name is what the line shows
        hparams = {"epochs": 10}
        current_epoch = 3

    assert current_phase(MyNetModule()) == Phase("MyNet", "epoch", 4, 10)


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _drive(progress: PhaseProgress, clock: _Clock, module: SimpleNamespace, epochs: list[str]) -> None:
    """Run ``epochs`` (each a stage of ``module``) of 4 batches, 1 s per batch, through the callback's hooks."""
    trainer = SimpleNamespace(is_global_zero=True, num_training_batches=4, sanity_checking=False)
    for stage in epochs:
        if module.stage == "rank" and stage == "mitigate":
            module.stage = stage
        progress.on_train_epoch_start(trainer, module)
        for b in range(4):
            clock.t += 1
            progress.on_train_batch_end(trainer, module, None, None, b)
        progress.on_validation_start(trainer, module)
        progress.on_train_epoch_end(trainer, module)
        if module.stage == "rank":
            module.controller.step += 1
        else:
            module.final_epoch += 1
    progress.on_train_end(trainer, module)


def test_plain_lines_without_a_terminal() -> None:
    clock, out = _Clock(), _Stream(tty=False)
    module = _sebra("rank", controller=SimpleNamespace(step=0), repeat=0, final_epoch=0)
    module.hparams["epochs"] = 2
    _drive(PhaseProgress(stream=out, clock=clock), clock, module, ["rank", "rank", "mitigate", "mitigate"])
    assert out.getvalue().splitlines() == [
        "Stage 1 ranking step 1/12 · batch 4/4 · 0:04 elapsed · ETA ≤ 0:44",
        "Stage 1 ranking step 2/12 · batch 4/4 · 0:08 elapsed · ETA ≤ 0:40",
        "Stage 1: 2 ranking steps in 0:08",
        "Stage 2 epoch 1/2 · batch 4/4 · 0:04 elapsed · ETA 0:04",
        "Stage 2 epoch 2/2 · batch 4/4 · 0:08 elapsed · ETA 0:00",
        "Stage 2: 2 epochs in 0:08",
    ]
    assert "\r" not in out.getvalue()


def test_plain_lines_within_a_long_epoch_at_most_every_interval() -> None:
    clock, out = _Clock(), _Stream(tty=False)
    module = _sebra("mitigate", final_epoch=0)
    _drive(PhaseProgress(stream=out, clock=clock, every=2.0), clock, module, ["mitigate"])
    assert out.getvalue().splitlines()[:2] == [
        "Stage 2 epoch 1/8 · batch 2/4 · 0:02 elapsed · ETA 0:30",
        "Stage 2 epoch 1/8 · batch 4/4 · 0:04 elapsed · ETA 0:28",
    ]


def test_terminal_line_is_redrawn_in_place_and_cleared_for_the_modules_messages() -> None:
    clock, out = _Clock(), _Stream(tty=True)
    module = _sebra("mitigate", final_epoch=0)
    module.hparams["epochs"] = 2
    _drive(PhaseProgress(stream=out, clock=clock, refresh=0.0), clock, module, ["mitigate", "mitigate"])
    text = out.getvalue()
    assert "\r\x1b[KStage 2 epoch 1/2 · batch 3/4 · 0:03 elapsed · ETA 0:05" in text
    assert "\r\x1b[KStage 2 epoch 2/2 · validating · 0:08 elapsed" in text
    assert text.count("\n") == 1 and text.endswith("\r\x1b[KStage 2: 2 epochs in 0:08\n")
    # at each epoch end the line is cleared before the module's own epoch-end messages
    assert "ETA 0:04\r\x1b[K\r\x1b[KStage 2 epoch 2/2" in text


def test_terminal_check_once_per_epoch_not_per_batch() -> None:
    class Counting(_Stream):
        calls = 0

        def isatty(self) -> bool:
            Counting.calls += 1
            return super().isatty()

    clock, out = _Clock(), Counting(tty=True)
    module = _sebra("mitigate", final_epoch=0)
    module.hparams["epochs"] = 2
    _drive(PhaseProgress(stream=out, clock=clock, refresh=0.0), clock, module, ["mitigate", "mitigate"])
    assert Counting.calls == 2  # 2 epochs of 4 batches
    assert "batch 3/4" in out.getvalue()  # still drawn in place


def test_eta_extrapolates_the_phases_time_per_unit() -> None:
    clock = _Clock()
    p = PhaseProgress(stream=_Stream(False), clock=clock)
    trainer = SimpleNamespace(is_global_zero=True, num_training_batches=10, sanity_checking=False)
    module = _sebra("mitigate", final_epoch=4)  # a resumed fit: epoch 5 of 8 is the first this process runs
    p.on_train_epoch_start(trainer, module)
    assert p.eta(clock.t) is None  # nothing measured yet
    clock.t += 5
    p.on_train_batch_end(trainer, module, None, None, 4)  # half of epoch 5 in 5 s: 10 s per epoch
    assert p.eta(clock.t) == pytest.approx(35.0)  # 3.5 epochs left


def test_only_global_rank_zero_prints() -> None:
    clock, out = _Clock(), _Stream(tty=False)
    p = PhaseProgress(stream=out, clock=clock)
    trainer = SimpleNamespace(is_global_zero=False, num_training_batches=4, sanity_checking=False)
    module = _sebra("mitigate", final_epoch=0)
    p.on_train_epoch_start(trainer, module)
    p.on_train_batch_end(trainer, module, None, None, 0)
    p.on_train_epoch_end(trainer, module)
    p.on_train_end(trainer, module)
    assert out.getvalue() == ""


# ------------------------------------------------------------------------------------------ a real fit, unchanged
def _fit(tmp_path: Path, name: str, callbacks: list) -> torch.nn.Module:
    L.seed_everything(0, verbose=False)
    model = SebraModule(**TINY_SEBRA)
    trainer = L.Trainer(
        max_epochs=-1,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name=name, version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=str(tmp_path / name),
    )
    trainer.fit(model, datamodule=TinyDataModule(batch_size=8))
    return model


def test_progress_on_a_sebra_fit_changes_nothing_it_trains(tmp_path: Path) -> None:
    out = _Stream(tty=False)
    shown = _fit(tmp_path, "shown", [PhaseProgress(stream=out)])
    plain = _fit(tmp_path, "plain", [])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Stage 1 ranking step 1/2 · batch 2/2 · ")
    assert [ln.split(" in ")[0] for ln in lines if ": " in ln and " in " in ln] == [
        "Stage 1: 2 ranking steps",
        "Stage 2: 2 epochs",
    ]
    assert any(ln.startswith("Stage 2 epoch 2/2 · batch 2/2") for ln in lines)
    for a, b in zip(shown.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert shown.rankings.equals(plain.rankings)


@pytest.mark.parametrize(
    ("cls", "args", "first"),
    [
        (ERMModule, {"backbone": "test_resnet", "epochs": 2}, "ERM epoch 1/2"),
        (JTTModule, {"backbone": "test_resnet", "id_epochs": 1, "epochs": 1}, "JTT identification epoch 1/1"),
    ],
)
def test_progress_names_the_other_methods_phases(
    make_trainer, tiny_dm, cls: type, args: dict, first: str
) -> None:
    out = _Stream(tty=False)
    model = cls(**args)
    trainer = make_trainer(logger=False, enable_checkpointing=False, callbacks=[PhaseProgress(stream=out)])
    trainer.fit(model, datamodule=tiny_dm)
    assert out.getvalue().startswith(first + " · batch 2/2 · ")
    if cls is JTTModule:
        assert "JTT identification: 1 epoch in" in out.getvalue()
        assert "JTT retraining: 1 epoch in" in out.getvalue()

"""Resuming: a fit interrupted after ranking step k (or during Stage 2) and resumed from ``last.ckpt`` ends exactly
where the uninterrupted fit ends: same rankings, same draws, same pair tables, same weights. The same holds for ERM,
JTT and GroupDRO.

The interruption is a crash (an exception at the start of epoch k, after ``last.ckpt`` of epoch k-1 was written);
the resumed fit builds a new module, data module and trainer, as a restarted job would. Training uses augmentation
(``crop_flip``), so the data module's augmentation generator must resume too.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from tiny_data import TinyDataModule
from trainers import quiet_trainer

from sebra import SebraModule
from sebra.methods import BaseMethod, ERMModule, GroupDROModule, JTTModule
from sebra.methods.checkpoints import LastCheckpoint, SelectionCheckpoint

SETTINGS = {
    "backbone": "test_resnet",
    "rank_optimizer": "adam",
    "rank_lr": 1e-2,
    "p_critical": 0.9,
    "max_steps": 4,
    "epochs": 3,
    "gap": 1,
    "temperature": 0.1,
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_schedule": "cosine",
}


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    """Raises at the start of epoch ``epoch``, as a killed job would stop (``last.ckpt`` holds epoch - 1)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Crash(f"interrupted at epoch {self.epoch}")


class Trace(Callback):
    """Every training batch's dataset indices (Stage 1 draws or Stage 2 anchors), per epoch."""

    def __init__(self) -> None:
        self.batches: dict[int, list[list[int]]] = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_idx: int
    ) -> None:
        idx = batch["anchor"]["index"] if "anchor" in batch else batch["index"]
        self.batches.setdefault(trainer.current_epoch, []).append(idx.tolist())


def _trainer(root: Path, *callbacks: Callback, **kwargs: object) -> L.Trainer:
    return quiet_trainer(root, callbacks=list(callbacks), **kwargs)


def _dm() -> TinyDataModule:
    return TinyDataModule(batch_size=4, augment="crop_flip", seed=11)


def _state(module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("uninterrupted")
    trace = Trace()
    model = SebraModule(**SETTINGS)
    trainer = _trainer(root, trace)
    trainer.fit(model, datamodule=_dm())
    return {
        "model": model,
        "trace": trace.batches,
        "epochs": trainer.current_epoch,
        "history": model.controller.history,
    }


def _interrupt_and_resume(root: Path, epoch: int, last: bool = False) -> tuple[SebraModule, dict, dict]:
    """Crash at ``epoch``, then resume in a new trainer: from the file, or (``last``) in the same folder with
    ``ckpt_path="last"``."""
    first = SebraModule(**SETTINGS)
    with pytest.raises(Crash):
        _trainer(root / "first", CrashAt(epoch)).fit(first, datamodule=_dm())
    ckpt = root / "first" / "logs" / "v" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    assert saved["epoch"] == epoch - 1
    trace = Trace()
    resumed = SebraModule(**SETTINGS)
    second = _trainer(root / ("first" if last else "second"), trace)
    second.fit(resumed, datamodule=_dm(), ckpt_path="last" if last else ckpt)
    return resumed, trace.batches, saved


def test_uninterrupted_run_ranks_over_several_steps(uninterrupted: dict) -> None:
    steps = [rec["eliminated"] for rec in uninterrupted["history"]]
    # The resume points below (after steps 1 and 2) fall mid-ranking: something was eliminated by step 2 and
    # samples are still active. (How the eliminations spread over the steps depends on the CPU's float results.)
    assert len(steps) == 4 and sum(steps[:2]) > 0 and uninterrupted["history"][1]["active"] > 0, steps
    assert uninterrupted["model"].final_epoch == 3


@pytest.mark.parametrize("k,last", [(1, False), (2, True)])
def test_resume_after_ranking_step_k_gives_identical_rankings(
    tmp_path: Path, uninterrupted: dict, k: int, last: bool
) -> None:
    resumed, trace, saved = _interrupt_and_resume(tmp_path, epoch=k, last=last)
    state = saved["sebra"]
    assert (
        state["stage"] == "rank" and state["controller"]["step"] == k
    )  # a checkpoint written by a ranking step
    ref = uninterrupted["model"]
    pd.testing.assert_frame_equal(resumed.rankings, ref.rankings, check_exact=True)
    assert resumed.controller.history == uninterrupted["history"]
    assert {
        e: b for e, b in uninterrupted["trace"].items() if e >= k
    } == trace  # the same draws and pairs after k
    for key, value in _state(ref).items():  # ranker and Stage 2 network: the same weights at the end
        assert torch.equal(resumed.state_dict()[key], value), key
    assert resumed.final_epoch == 3 and resumed.stage == "done"


def test_interrupted_stage_two_resumes_from_its_epoch(tmp_path: Path, uninterrupted: dict) -> None:
    first_mitigation_epoch = uninterrupted["epochs"] - 3 + 1  # ranking steps, then one Stage 2 epoch done
    resumed, trace, saved = _interrupt_and_resume(tmp_path, epoch=first_mitigation_epoch + 1)
    state = saved["sebra"]
    assert state["stage"] == "mitigate" and state["mitigation_epoch"] == 2
    assert sorted(trace) == [first_mitigation_epoch + 1]  # only the last Stage 2 epoch was run again
    assert trace[first_mitigation_epoch + 1] == uninterrupted["trace"][first_mitigation_epoch + 1]
    ref = uninterrupted["model"]
    for key, value in _state(ref).items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert resumed.final_epoch == 3
    lr = [m.optimizers()[1].param_groups[0]["lr"] for m in (resumed, ref)]  # the cosine schedule resumed too
    assert lr[0] == lr[1]


#: ERM, JTT and GroupDRO, each with a cosine schedule or seeded draws that a resumed fit must continue.
OTHERS = {
    "erm": lambda: ERMModule(
        backbone="test_resnet", epochs=3, optimizer="adam", lr=1e-2, lr_schedule="cosine", seed=4
    ),
    "jtt": lambda: JTTModule(
        backbone="test_resnet",
        id_epochs=2,
        epochs=2,
        upweight=5,
        optimizer="adam",
        lr=1e-2,
        id_lr=1e-3,
        lr_schedule="cosine",
        seed=4,
    ),
    "groupdro": lambda: GroupDROModule(
        backbone="test_resnet", epochs=3, optimizer="adam", lr=1e-2, eta=0.5, seed=4
    ),
}


@pytest.mark.parametrize(
    "name,crash_at",
    [("erm", 2), ("jtt", 1), ("jtt", 3), ("groupdro", 2)],  # JTT: during identification, then retraining
)
def test_erm_jtt_and_group_dro_resume_mid_fit_as_if_uninterrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, crash_at: int
) -> None:
    make = OTHERS[name]
    ref_trace, ref = Trace(), make()
    _trainer(tmp_path / "ref", ref_trace).fit(ref, datamodule=_dm())
    with pytest.raises(Crash):
        _trainer(tmp_path / "first", CrashAt(crash_at)).fit(make(), datamodule=_dm())
    ckpt = tmp_path / "first" / "logs" / "v" / "checkpoints" / "last.ckpt"

    loaded = []  # the checkpoint hooks chain down to BaseMethod's (ERMModule's once stopped short of it)
    base_hook = BaseMethod.on_load_checkpoint
    monkeypatch.setattr(
        BaseMethod, "on_load_checkpoint", lambda self, c: (loaded.append(type(self)), base_hook(self, c))[1]
    )
    trace, resumed = Trace(), make()
    _trainer(tmp_path / "second", trace).fit(resumed, datamodule=_dm(), ckpt_path=ckpt)
    assert loaded == [type(resumed)]
    ref_batches = ref_trace.batches
    assert trace.batches == {
        e: b for e, b in ref_batches.items() if e >= crash_at
    }  # the same draws after the crash
    assert ref_batches[crash_at] != ref_batches[0]  # ... which the epoch-0 state would not have drawn
    for key, value in _state(ref).items():  # every network (and GroupDRO's q) ends with the same values
        assert torch.equal(resumed.state_dict()[key], value), key
    assert resumed.fit_finished()
    if name == "jtt":
        assert resumed.stage == "done" and 0 < len(ref.error_set) < 16  # a non-empty error set was upweighted
        assert torch.equal(resumed.error_set, ref.error_set)
        pd.testing.assert_frame_equal(resumed.id_scores, ref.id_scores)


# --- which checkpoint callbacks a fit ends up with ----------------------------------------------------------------
def test_last_checkpoint_every_epoch_selection_only_in_stage_two(tmp_path: Path) -> None:
    model = SebraModule(**{**SETTINGS, "max_steps": 2, "p_critical": 0.999999, "epochs": 1})
    trainer = _trainer(tmp_path)
    trainer.fit(model, datamodule=_dm())
    cbs = trainer.checkpoint_callbacks
    assert [type(c) for c in cbs] == [SelectionCheckpoint, LastCheckpoint]
    assert trainer.checkpoint_callback is cbs[0]  # "best" still means the selected checkpoint
    assert torch.load(cbs[0].best_model_path, weights_only=False)["epoch"] == 2  # the only Stage 2 epoch
    last = torch.load(cbs[1].last_model_path, weights_only=False)
    assert Path(cbs[1].last_model_path).name == "last.ckpt" and last["epoch"] == 2


def test_configure_callbacks_replaces_a_plain_model_checkpoint_but_keeps_a_subclass(tmp_path: Path) -> None:
    class MyCheckpoint(ModelCheckpoint):
        pass

    settings = {**SETTINGS, "max_steps": 1, "rank_only": True}
    plain = ModelCheckpoint(dirpath=tmp_path / "mine")
    trainer = _trainer(tmp_path / "a", plain)
    trainer.fit(SebraModule(**settings), datamodule=_dm())
    assert plain not in trainer.callbacks
    assert [type(c) for c in trainer.checkpoint_callbacks] == [SelectionCheckpoint, LastCheckpoint]

    mine = MyCheckpoint(dirpath=tmp_path / "mine", save_last=True)
    trainer = _trainer(tmp_path / "b", mine)
    trainer.fit(SebraModule(**settings), datamodule=_dm())
    assert mine in trainer.callbacks and (tmp_path / "mine" / "last.ckpt").exists()

    trainer = _trainer(tmp_path / "c", enable_checkpointing=False)
    trainer.fit(SebraModule(**settings), datamodule=_dm())
    assert trainer.checkpoint_callbacks == [] and not list((tmp_path / "c").rglob("*.ckpt"))


@pytest.mark.parametrize("draws", ["uniform", "balanced"])
def test_rank_repeats_resume_inside_the_second_stage_one_run(tmp_path: Path, draws: str) -> None:
    settings = {**SETTINGS, "rank_repeats": 2, "max_steps": 2, "epochs": 1, "repeat_draws": draws}
    ref = SebraModule(**settings)
    _trainer(tmp_path / "ref").fit(ref, datamodule=_dm())
    assert ref.repeat == 1 and len(ref.ranking.repeat_tables) == 2
    first = SebraModule(**settings)
    crash_at = ref.ranking._repeat_history[0]["step"].max() + 1  # the first epoch of the second Stage 1 run
    with pytest.raises(Crash):
        _trainer(tmp_path / "first", CrashAt(int(crash_at))).fit(first, datamodule=_dm())
    ckpt = tmp_path / "first" / "logs" / "v" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)["sebra"]
    assert saved["repeat"] == 1 and len(saved["repeat_tables"]) == 1 and saved["stage"] == "rank"
    resumed = SebraModule(**settings)
    _trainer(tmp_path / "second").fit(resumed, datamodule=_dm(), ckpt_path=ckpt)
    pd.testing.assert_frame_equal(resumed.rankings, ref.rankings, check_exact=True)


@pytest.mark.parametrize(("rank_by", "score"), [("fused", "last"), ("confidence", "last"), ("fused", "mean")])
def test_resume_inside_the_confidence_run(tmp_path: Path, rank_by: str, score: str) -> None:
    settings = {
        **SETTINGS,
        "max_steps": 2,
        "epochs": 1,
        "rank_by": rank_by,
        "confidence_steps": 2,
        "confidence_score": score,
        "rank_bins": 3,
    }
    ref = SebraModule(**settings)
    ref_trace = Trace()
    _trainer(tmp_path / "ref", ref_trace).fit(ref, datamodule=_dm())
    crash_at = ref.controller.step + 1  # the confidence run's second epoch
    first = SebraModule(**settings)
    with pytest.raises(Crash):
        _trainer(tmp_path / "first", CrashAt(crash_at)).fit(first, datamodule=_dm())
    ckpt = tmp_path / "first" / "logs" / "v" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)["sebra"]
    assert saved["confidence_run"] and saved["confidence_steps_done"] == 1 and saved["stage"] == "rank"
    assert (saved["stage1_table"] is not None) == (rank_by == "fused")
    assert (saved["confidence_sum"] is not None) == (score == "mean")  # the first epoch's scores, kept
    trace = Trace()
    resumed = SebraModule(**settings)
    _trainer(tmp_path / "second", trace).fit(resumed, datamodule=_dm(), ckpt_path=ckpt)
    assert trace.batches[crash_at] == ref_trace.batches[crash_at]  # the same confidence-run order
    pd.testing.assert_frame_equal(resumed.rankings, ref.rankings, check_exact=True)


@pytest.mark.parametrize("ema", [0.0, 2.0])
def test_resume_inside_the_second_look(tmp_path: Path, ema: float) -> None:
    # ema: the look scored through a weight average of its network, which the checkpoint must carry
    settings = {
        **SETTINGS,
        "max_steps": 2,
        "epochs": 1,
        "second_look_epochs": 2,
        "rank_bins": 3,
        "second_look_ema_epochs": ema,
    }
    ref = SebraModule(**settings)
    ref_trace = Trace()
    _trainer(tmp_path / "ref", ref_trace).fit(ref, datamodule=_dm())
    assert ref.ranking.second_look_moved is not None and "second_look_moved" in ref.extra_metrics()
    side = json.loads(next((tmp_path / "ref").rglob("ranking_diagnostics.json")).read_text())
    assert side["second_look"]["moved"] == ref.ranking.second_look_moved
    look = side["second_look"]
    assert 0 < look["first_wave"] <= len(ref.rankings) and look["epochs"] == 2
    assert look["moved_share"] == look["moved"] / look["first_wave"]
    # second_look.csv: one row per training sample, joined on the dataset index, agreeing with the summary
    scores = pd.read_csv(next((tmp_path / "ref").rglob("second_look.csv")))
    assert sorted(scores["index"]) == sorted(ref.rankings["index"])
    assert (
        int(scores["first_wave"].sum()) == look["first_wave"] and int(scores["moved"].sum()) == look["moved"]
    )
    assert ((scores["look_p_y"] >= 0) & (scores["look_p_y"] <= 1)).all()
    assert (scores["moved"] == (scores["first_wave"] & (scores["look_p_y"] < 0.5))).all()
    crash_at = ref.controller.step + 1  # the second look's second epoch
    first = SebraModule(**settings)
    with pytest.raises(Crash):
        _trainer(tmp_path / "first", CrashAt(crash_at)).fit(first, datamodule=_dm())
    ckpt = tmp_path / "first" / "logs" / "v" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)["sebra"]
    look = saved["second_look"]
    assert look["run"] and look["done"] == 1 and len(look["recent"]) == 1 and saved["stage"] == "rank"
    assert (look["ema"] is not None) == bool(ema) and side["second_look"]["ema_epochs"] == ema
    trace = Trace()
    resumed = SebraModule(**settings)
    _trainer(tmp_path / "second", trace).fit(resumed, datamodule=_dm(), ckpt_path=ckpt)
    assert trace.batches[crash_at] == ref_trace.batches[crash_at]  # the same second-look draws
    pd.testing.assert_frame_equal(resumed.rankings, ref.rankings, check_exact=True)
    # the resumed look writes the same per-sample scores as the uninterrupted one
    again = pd.read_csv(next((tmp_path / "second").rglob("second_look.csv")))
    pd.testing.assert_frame_equal(again, scores)

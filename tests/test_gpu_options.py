"""GPU options, checked on the CPU: mixed precision through ``Trainer(precision=...)`` (the manual Stage 1/2 steps and
the hand-written scoring loop run under it), ``channels_last`` and ``compile`` module flags."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tiny_data import TinyDataModule
from torch import nn
from trainers import quiet_trainer

from sebra import SebraModule
from sebra.methods import ERMModule, GroupDROModule, JTTModule

TINY = {
    "backbone": "test_resnet",
    "rank_optimizer": "adam",
    "rank_lr": 1e-2,
    "p_critical": 0.9,
    "max_steps": 2,
    "epochs": 1,
    "gap": 1,
    "temperature": 0.1,
    "optimizer": "adam",
    "lr": 1e-3,
}

#: Each method and the attributes holding its networks.
NETWORKS = (
    (SebraModule, ("ranker", "net")),
    (JTTModule, ("id_net", "net")),
    (ERMModule, ("net",)),
    (GroupDROModule, ("net",)),
)


def _trainer(root: Path, **kwargs: object) -> L.Trainer:
    return quiet_trainer(root, logger=False, enable_checkpointing=False, **kwargs)


class Probe(SebraModule):
    """Records the dtype of the head's output in each phase (Stage 1 training, scoring, Stage 2 training) and
    whether the backbone's first convolution received ``channels_last`` input."""

    def configure_model(self) -> None:
        super().configure_model()
        self.seen: dict[str, set] = {}
        self.phase = "train"
        for name in ("ranker", "net"):
            net = getattr(self, name)
            net.head.register_forward_hook(self._record_dtype)
            conv = next(m for m in net.backbone.modules() if isinstance(m, nn.Conv2d))
            conv.register_forward_pre_hook(self._record_layout)

    def _record_dtype(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.seen.setdefault(f"{self.stage}/{self.phase}/dtype", set()).add(out.dtype)

    def _record_layout(self, module: nn.Module, args: tuple) -> None:
        nhwc = args[0].is_contiguous(memory_format=torch.channels_last)
        self.seen.setdefault(f"{self.stage}/{self.phase}/channels_last", set()).add(nhwc)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        score = self.ranking.score

        def probed_score(host, **kw):  # the ranker's scoring passes, marked as such
            self.phase = "score"
            try:
                return score(host, **kw)
            finally:
                self.phase = "train"

        self.ranking.score = probed_score


def test_bf16_mixed_runs_both_stages_and_scores_under_autocast(tmp_path: Path) -> None:
    # What is checked is sebra's side of mixed precision (each phase under autocast, float32 weights, float32
    # losses), not oneDNN's bf16 kernels. On 8-px inputs test_resnet's stride-2 3x3 convolutions (layer3, layer4)
    # see 1x1 inputs, and oneDNN's bf16 weight-gradient kernel for that shape (brgconv_bwd_w on AMX / AVX-512 CPUs,
    # e.g. Intel Xeon with amx_bf16) intermittently returns non-finite gradients: the weights become NaN after one
    # step, and sebra's NaN guard stops the fit. ATen's reference kernels (oneDNN off) are the same on every CPU.
    model = Probe(**TINY)
    trainer = _trainer(tmp_path, precision="bf16-mixed")
    with torch.backends.mkldnn.flags(enabled=False):
        trainer.fit(model, datamodule=TinyDataModule(batch_size=4, augment="crop_flip"))
    assert model.stage == "done" and model.controller.step == 2
    assert model.seen["rank/train/dtype"] == {torch.bfloat16}  # the manual Stage 1 step
    assert model.seen["rank/score/dtype"] == {
        torch.bfloat16
    }  # the scoring loop: the precision plugin's context
    assert model.seen["mitigate/train/dtype"] == {torch.bfloat16}  # the manual Stage 2 step
    assert np.isfinite(model.rankings["p_y"].to_numpy()).all()
    assert all(np.isfinite(float(trainer.callback_metrics[k])) for k in ("rank_loss", "train_loss"))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # mixed, not bf16 weights


def test_channels_last_converts_networks_and_inputs(tmp_path: Path) -> None:
    model = Probe(**{**TINY, "channels_last": True})
    _trainer(tmp_path).fit(model, datamodule=TinyDataModule(batch_size=4))
    conv = next(m for m in model.ranker.backbone.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    layouts = {k: v for k, v in model.seen.items() if k.endswith("channels_last")}
    assert set(layouts) == {
        "rank/train/channels_last",
        "rank/score/channels_last",
        "mitigate/train/channels_last",
    }
    assert all(v == {True} for v in layouts.values())

    default = Probe(**TINY)  # off by default: inputs stay NCHW
    _trainer(tmp_path / "default").fit(default, datamodule=TinyDataModule(batch_size=4))
    assert default.seen["rank/train/channels_last"] == {False}
    for cls, nets in NETWORKS:  # every method takes the option, for each of its networks
        module = cls(backbone="test_resnet", channels_last=True, num_classes=2)
        module.configure_model()
        for name in nets:
            conv = next(m for m in getattr(module, name).backbone.modules() if isinstance(m, nn.Conv2d))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last), (cls.__name__, name)


def test_compile_flag_is_off_by_default_and_compiles_the_backbones_in_place() -> None:
    # torch.compile is lazy: configure_model only wraps the backbones; nothing is compiled until the first forward.
    for cls, nets in NETWORKS:
        off = cls(backbone="test_resnet", num_classes=2)
        on = cls(backbone="test_resnet", num_classes=2, compile=True)
        assert off.hparams.compile is False and on.hparams.compile is True
        off.configure_model()
        on.configure_model()
        for name in nets:
            assert getattr(off, name).backbone._compiled_call_impl is None
            assert getattr(on, name).backbone._compiled_call_impl is not None
        assert list(on.state_dict()) == list(off.state_dict())  # checkpoints keep their keys


@pytest.mark.slow
def test_compiled_fit_runs_both_stages(tmp_path: Path) -> None:
    # Training amplifies float differences between compiled and eager kernels, so compare the compiled networks'
    # outputs with eager ones on the same weights instead of whole rankings.
    model = SebraModule(**{**TINY, "max_steps": 1, "compile": True})
    _trainer(tmp_path).fit(model, datamodule=TinyDataModule(batch_size=4))
    assert model.stage == "done" and np.isfinite(model.rankings["p_y"].to_numpy()).all()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for net in (model.ranker, model.net):
        net.eval()
        with torch.no_grad():
            compiled = net(x)
            eager = net.head(net.backbone._call_impl(x))
        torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)

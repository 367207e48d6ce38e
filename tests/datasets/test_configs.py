"""The shipped YAML configs parse with LightningCLI and instantiate (without data on disk or weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
EXPECTED = {
    "urbancars.yaml": "UrbanCarsDataModule",
    "bar.yaml": "BARDataModule",
    "celeba_multibias.yaml": "CelebADataModule",
    "celeba_blond.yaml": "CelebADataModule",
}


def test_all_dataset_configs_present() -> None:
    assert set(EXPECTED) <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_instantiates(name: str, tmp_path: Path) -> None:
    cli_mod = pytest.importorskip("lightning.pytorch.cli")
    import sebra

    path = Path(__file__).resolve().parents[2] / "configs" / name
    cfg = yaml.safe_load(path.read_text())
    assert cfg["trainer"]["max_epochs"] == -1 and cfg["model"]["class_path"] == "sebra.SebraModule"
    cli = cli_mod.LightningCLI(
        args=[
            "--config",
            str(path),
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.accelerator=cpu",
        ],
        run=False,
        save_config_callback=None,
    )
    assert isinstance(cli.model, sebra.SebraModule)
    assert type(cli.datamodule).__name__ == EXPECTED[name]
    for k, v in cfg["model"]["init_args"].items():  # every YAML value reached the module unchanged
        assert cli.model.hparams[k] == v, k
    for k, v in cfg["data"]["init_args"].items():
        got = getattr(cli.datamodule, k)
        assert (list(got) if isinstance(got, tuple) else got) == v, k

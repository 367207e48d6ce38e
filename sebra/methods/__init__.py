"""Training methods as LightningModules over one harness (data modules, backbones, metrics, selection)."""

from sebra.methods.base import BaseMethod, SelectionCheckpoint, make_optimizer
from sebra.methods.erm import ERMModule
from sebra.methods.sebra import PairDataset, SebraModule

METHODS = {"erm": ERMModule, "sebra": SebraModule}

__all__ = ["BaseMethod", "ERMModule", "METHODS", "PairDataset", "SebraModule", "SelectionCheckpoint", "make_optimizer"]

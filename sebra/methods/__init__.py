"""Training methods as LightningModules over one harness (data modules, backbones, metrics, selection)."""

from sebra.methods.base import BaseMethod, SelectionCheckpoint, make_optimizer
from sebra.methods.erm import ERMModule
from sebra.methods.group_dro import GroupDROLoss, GroupDROModule
from sebra.methods.jtt import JTTModule
from sebra.methods.sebra import PairDataset, SebraModule

METHODS = {"erm": ERMModule, "jtt": JTTModule, "groupdro": GroupDROModule, "sebra": SebraModule}

__all__ = [
    "METHODS",
    "BaseMethod",
    "ERMModule",
    "GroupDROLoss",
    "GroupDROModule",
    "JTTModule",
    "PairDataset",
    "SebraModule",
    "SelectionCheckpoint",
    "make_optimizer",
]

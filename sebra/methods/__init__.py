"""Training methods as LightningModules over one harness (data modules, backbones, metrics, selection).

:data:`METHODS` names every method a benchmark config or the command line can pick. The mitigations that consume a
ranking table (:class:`RankedHeadModule`, :class:`RankUpsampledModule`, :class:`RankGroupDROModule`; Sebra's Stage 2
is ``SebraModule(rankings=...)``) are built by the ranker x mitigation grid instead.
"""

from sebra.methods._optim import make_optimizer
from sebra.methods.base import BaseMethod
from sebra.methods.checkpoints import LastCheckpoint, SelectionCheckpoint
from sebra.methods.erm import ERMModule
from sebra.methods.group_dro import GroupDROLoss, GroupDROModule
from sebra.methods.jtt import JTTModule
from sebra.methods.lff import LfFModule
from sebra.methods.rank_group_dro import RankGroupDROModule
from sebra.methods.rank_upsampled import RankUpsampledModule
from sebra.methods.ranked_head import RankedHeadModule
from sebra.methods.sebra import SebraModule
from sebra.methods.sebra_stage2 import PairDataset
from sebra.methods.two_phase import TwoPhaseMethod

#: Every method by its short name.
METHODS: dict[str, type[BaseMethod]] = {
    "erm": ERMModule,
    "jtt": JTTModule,
    "groupdro": GroupDROModule,
    "sebra": SebraModule,
    "lff": LfFModule,
}

__all__ = [
    "METHODS",
    "BaseMethod",
    "ERMModule",
    "GroupDROLoss",
    "GroupDROModule",
    "JTTModule",
    "LastCheckpoint",
    "LfFModule",
    "PairDataset",
    "RankGroupDROModule",
    "RankUpsampledModule",
    "RankedHeadModule",
    "SebraModule",
    "SelectionCheckpoint",
    "TwoPhaseMethod",
    "make_optimizer",
]

"""sebra: unsupervised debiasing of image classifiers by Self-guided Bias Ranking (Sebra, ICLR 2025) on Lightning."""

from sebra.export import load_rankings, save_rankings
from sebra.methods import ERMModule, SebraModule
from sebra.metrics import GroupAccuracy, ranking_quality
from sebra.ranking import RankingController, confidence_weighted_loss

__version__ = "0.1.0"

__all__ = [
    "ERMModule",
    "GroupAccuracy",
    "RankingController",
    "SebraModule",
    "confidence_weighted_loss",
    "load_rankings",
    "ranking_quality",
    "save_rankings",
]
